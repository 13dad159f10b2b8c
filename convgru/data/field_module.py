"""LightningDataModule for gridded fields in NetCDF files or a Zarr store (data=fields): ERA5, WeatherBench,
CMIP, ocean and air-quality data, read lazily per batch through xarray."""

import hashlib
import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convgru._checks import OptionError
from convgru.atomic import atomic_write, size_text
from convgru.domain.fields import normalize

from . import resources
from .base import SequenceDataModule
from .cache import USER_CACHE
from .fields import (
    CACHE_BYTES,
    NO_GRID,
    Calendar,
    FieldSource,
    check_grid,
    expand,
    period_fields,
    window_starts,
    xarray,
)
from .missing import check_finite
from .resources import check_memory

SPLITS = ("train", "val", "test")
STATS_VERSION = 2  # bump when the statistics change, so cached ones are computed again
CHUNK_BYTES = 1 << 26  # bytes of field read at a time while computing the statistics
DAYS = 366  # days of year in the climatology's table (366: leap years' last day)
MONTHS = 12  # rows of a climatology by calendar month (steps of months)
WINDOW_DAYS = 61  # the climatology's smoothing window in days, as WeatherBench 2 (Rasp et al. 2024)
# (shortest, longest) year in days of each CF calendar (cftime's names); others: the standard's (365, 366)
YEAR_DAYS = {"360_day": (360, 360), "noleap": (365, 365), "365_day": (365, 365), "all_leap": (366, 366),
             "366_day": (366, 366)}
CHECKPOINT_CLIMATOLOGY = 1 << 16  # values of the climatology a checkpoint stores (data.climatology)
log = logging.getLogger(__name__)


class FieldDataset(Dataset):
    """Windows of a FieldSource: item i is (x (frames_in, C, H, W), y (frames_out, C, H, W), rows
    (frames_out,) int64): x and y float32, normalized (`convgru.domain.fields.normalize`: the training
    mean at 0.5, +-5 std at 0 and 1); rows[k] the row of the climatology's table (`climatology_rows`)
    at the valid time of target k, from `rows` (one per time step of the source; -1 without a table).

    Missing points (NaN in the files, with `missing`) are the training mean (0.5) in the inputs and NaN
    in the targets; without `missing`, NaN raises ValueError. `init_times[i]` is the time of the last input step.
    """

    def __init__(self, source: FieldSource, starts: np.ndarray, frames_in: int, frames_out: int, mean, std,
                 missing: bool = True, rows: np.ndarray | None = None):
        self.source, self.starts = source, np.asarray(starts, dtype=np.int64)
        self.frames_in, self.frames_out = frames_in, frames_out
        self.mean, self.std, self.missing = np.asarray(mean, np.float32), np.asarray(std, np.float32), missing
        self.rows = np.full(len(source.times), -1, np.int64) if rows is None else np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def init_times(self) -> np.ndarray:
        return self.source.times[self.starts + self.frames_in - 1]

    def __getitem__(self, i: int):
        start = int(self.starts[i])
        frames = self.source.read(start, start + self.frames_in + self.frames_out)
        valid = ~np.isnan(frames)
        if not self.missing:
            check_finite(frames, None, f"{self.source.paths[0]}, time {self.source.label(self.source.times[start])}", 0,
                         self.frames_in)
        x, y = to_pair(frames, self.frames_in, self.mean, self.std, valid)
        return x, y, torch.from_numpy(self.rows[start + self.frames_in:start + self.frames_in + self.frames_out])


def to_pair(frames: np.ndarray, frames_in: int, mean, std, valid: np.ndarray | None = None):
    """Normalize frames (T, C, H, W) in the files' units and split them into inputs and targets; where
    `valid` is False inputs are 0.5 (the training mean) and targets NaN."""
    video = torch.from_numpy(normalize(np.asarray(frames, dtype=np.float32), mean, std).astype(np.float32))
    x, y = video[:frames_in].clone(), video[frames_in:].clone()
    if valid is not None and not valid.all():
        missing = torch.from_numpy(~valid)
        x.masked_fill_(missing[:frames_in], 0.5)
        y.masked_fill_(missing[frames_in:], float("nan"))
    return x, y


@contextmanager
def data_options():
    """Name the options of OptionErrors raised while the files are read as the config does: data.levels."""
    try:
        yield
    except OptionError as error:
        if error.option.startswith("data"):  # data.levels, data=fields
            raise
        raise OptionError(f"data.{error.option}", error.message, error.sep) from None


def _time_range(value, option: str, calendar: Calendar | None = None):
    """[start, end] (dates or times in the files' `calendar`; each a whole period: 2015 is the year, 2015-12-31
    the day) as (first, last) counts of the calendar (`Calendar`: datetime64[us]), or None. Without `calendar`
    (before the files are opened) only the form is checked."""
    if value is None:
        return None
    bad = OptionError(option, f"expected [start, end] dates such as [1979-01-01, 2015-12-31] (or years "
                      f"[1979, 2015]), start before end, found {value!r}")
    try:
        start, end = [str(v) for v in value] if not isinstance(value, str) else ["", ""]
        fields = [[v if v is not None else fill for v in period_fields(t, option)]
                  for t, fill in ((start, 0), (end, 99))]
    except (ValueError, TypeError):
        raise bad from None
    if fields[1] < fields[0]:
        raise bad
    if calendar is None:
        return None
    try:
        first, last = calendar.period(start, option)[0], calendar.period(end, option)[1]
    except OptionError as error:
        raise OptionError(option, f"{error.message}; expected [start, end] dates of the files' calendar, found "
                          f"{value!r}") from None
    return first, last


class FieldDataModule(SequenceDataModule):
    """Gridded fields from NetCDF files (globs opened together along time) or a Zarr store, lazily.

    `variables` become the channels, in order; 4-d variables give one channel per level of `levels`
    (named e.g. z500); `channels` must equal their number. `dims` names the time / y / x / level
    dimensions when the CF conventions do not tell. `time_step` (e.g. 6h, or 3MS: calendar months; None: the
    data's own step, calendar months for monthly or yearly times) picks the sampling; windows of frames_in +
    frames_out steps that would cross a gap in time (a missing month too) are skipped.
    Splits are by time: `train_time`, `val_time`, `test_time` = [start, end] (whole windows inside),
    every `stride`-th window.

    Normalization: per channel mean and std of the training split (streamed in chunks, cached in
    `cache_dir`), or `normalization` = {name: {mean, std}} as a checkpoint stores it. After `setup`,
    `normalization` holds what was used. NaN in the fields are missing points when `missing_value` is
    nan (inputs the mean, targets NaN, left out of loss and scores); with null they raise ValueError.

    Grid: `grid` is the grid the model was trained on ({y, x, y_values, x_values, longitude}, as a
    checkpoint stores it; None: the files'). Files on the same coordinates in another order or longitude
    convention are read in its order (`FieldSource.align`, said in one log line); another size is warned
    about; the same size with other coordinates raises ValueError. After `open`, `grid` holds the grid read.

    Climatology (what ACC and the climatology baseline need): the mean of the training period by day
    of year and hour of day of the files' calendar (noleap, 360_day, ... too), smoothed over WINDOW_DAYS
    days around the calendar's year (WeatherBench 2; `field_stats`), computed with the statistics when the
    training period spans a year or more (with steps of calendar months: by calendar month, unsmoothed, when it
    holds all twelve), or `climatology` as a checkpoint stores it (`stored_climatology`:
    up to CHECKPOINT_CLIMATOLOGY values); either is on the grid in the order `read` gives (the training
    grid's). Each target is scored against the table's row at its valid time (the third item of a window).
    `climatology_note` says which climatology was used, or why there is none (then ACC and the climatology
    baseline are left out).
    """

    def __init__(self, files=None, variables=None, levels=None, dims: dict | None = None, time_step: str | None = None,
                 train_time=None, val_time=None, test_time=None, stride: int = 1,
                 missing_value: float | str | None = "nan", normalization: dict | None = None, grid: dict | None = None,
                 climatology: dict | None = None,
                 cache_dir=USER_CACHE, frames_in: int = 12, frames_out: int = 12,
                 channels: int = 1, batch_size: int = 16, num_workers: int = 2, pin_memory: bool = True,
                 persistent_workers: bool = True):
        super().__init__(frames_in, frames_out, channels, batch_size, num_workers, pin_memory, persistent_workers)
        if files is None:
            raise OptionError("files", "expected NetCDF files (globs allowed, e.g. [/data/era5/*.nc]) or a Zarr "
                              "store, found None")
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
            raise OptionError("stride", f"expected an integer >= 1, found {stride!r}")
        if missing_value is not None and not (isinstance(missing_value, (str, float)) and
                                              str(missing_value).lower() == "nan"):
            raise OptionError("missing_value", f"expected nan (NaN in the fields are missing points) or null (NaN is "
                              f"an error), found {missing_value!r}")
        self.files = [str(f) for f in ([files] if isinstance(files, str) else files)]
        self.variables = None if variables is None else list(variables) if not isinstance(variables, str) else variables
        self.levels = None if levels is None else list(levels) if not isinstance(levels, (str, int, float)) else levels
        self.dims = dict(dims) if dims is not None else None
        self.time_step, self.stride, self.missing = time_step, stride, missing_value is not None
        self.periods = dict(zip(SPLITS, (train_time, val_time, test_time)))
        for name, value in self.periods.items():
            _time_range(value, f"{name}_time")
        self._ranges: dict | None = None
        self.given = None if normalization is None else {str(k): dict(v) for k, v in dict(normalization).items()}
        self.grid = None if grid is None else check_grid(grid, "grid")
        self.given_climatology = None if climatology is None else dict(climatology)
        self.climatology_note = ""
        self._table: tuple | None = None  # (the climatology's table or None,) once known
        self._resized = False  # whether the files' grid has another size than `grid` (the checkpoint's)
        self.cache_dir = Path(cache_dir)
        self.source: FieldSource | None = None
        self.datasets: dict[str, FieldDataset] = {}
        self.normalization: dict | None = None
        self._stats: dict | None = None

    @property
    def ranges(self) -> dict:
        """{split: (first, last) counts (datetime64[us]) of the files' calendar, or None}: data.<split>_time."""
        if self._ranges is None:
            calendar = self.open().calendar
            with data_options():
                self._ranges = {name: _time_range(value, f"{name}_time", calendar)
                                for name, value in self.periods.items()}
        return self._ranges

    def _shown(self, name: str) -> list[str]:
        """data.<name>_time as the files' calendar shows it."""
        return [self.source.label(t) for t in self.ranges[name]]

    @property
    def length(self) -> int:
        return self.frames_in + self.frames_out

    def open(self) -> FieldSource:
        """The FieldSource of the files (opened once), its channels checked against `channels`."""
        if self.source is None:
            with data_options():
                source = FieldSource(expand(self.files), self.variables, self.levels, self.dims, self.time_step)
            if len(source.channels) != self.channels:
                raise OptionError("data.channels", f"expected {len(source.channels)}, the number of channels "
                                  f"{source.names} of data.variables (and data.levels), found {self.channels}: "
                                  f"set data.channels={len(source.channels)}")
            if self.grid is not None:
                if said := source.align(self.grid):
                    log.log(logging.WARNING if said[0] else logging.INFO, said[1])
                    self._resized = said[0]  # another size: read as it is
            elif self.given is not None:
                log.warning(NO_GRID)
            self.grid = source.plain_grid()
            self.source = source
        return self.source

    def starts(self, split: str) -> np.ndarray:
        source = self.open()
        bounds = self.ranges[split] or (None, None)
        return window_starts(source.times, source.step, self.length, *bounds, stride=self.stride)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        source = self.open()
        with data_options():
            stats = self.given_stats() if self.given is not None else self.stats()
        self.normalization = {name: {"mean": float(m), "std": float(s)}
                              for name, m, s in zip(source.names, stats["mean"], stats["std"])}
        frame = len(source.channels) * len(source.y) * len(source.x) * 4
        aligned = self.length * frame if source.order is not None else 0  # a window's reordered copy (`align`)
        check_memory(3 * self.batch_size * self.length * frame + aligned + chunk_cache_bytes(source),
                     f"{source.paths[0]}: a batch of {self.batch_size} windows of {self.length} steps of "
                     f"{len(source.y)}x{len(source.x)} frames of {len(source.channels)} channel(s) "
                     f"({size_text(frame)} a step)", "lower data.batch_size (or data.frames_in / frames_out), use "
                     "fewer data.variables, or regrid the files to a coarser grid")
        longest = source.longest_time_chunk()
        if longest > 4 * self.length:
            log.warning(f"{source.paths[0]}: its chunks hold {longest} time steps, more than four windows of "
                        f"{self.length}: each chunk is read whole once and kept (up to {size_text(CACHE_BYTES)} per "
                        f"DataLoader worker) to serve the windows inside it; a store chunked by about {self.length} "
                        "steps reads faster in shuffled order")
        table = self.climatology()
        rows = None if table is None else climatology_rows(source.calendar.dates(source.times), table["hours"],
                                                           table["by"])
        for split in SPLITS:
            starts = self.starts(split)
            if self.ranges[split] is None or len(starts) == 0:
                continue
            self.datasets[split] = FieldDataset(source, starts, self.frames_in, self.frames_out, stats["mean"],
                                                stats["std"], self.missing, rows)

    def given_stats(self) -> dict:
        """The `normalization` option as {mean (C,), std (C,)}; OptionError unless it names every channel."""
        names = self.open().names
        try:
            mean = [float(self.given[n]["mean"]) for n in names]
            std = [float(self.given[n]["std"]) for n in names]
        except (KeyError, TypeError, ValueError):
            mean = std = None
        if mean is None or not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
            raise OptionError("normalization", f"expected {{name: {{mean, std}}}} for the channels {names}, finite "
                              f"with std > 0, found {self.given!r}")
        return {"mean": np.array(mean), "std": np.array(std)}

    def _dataset(self, split: str) -> FieldDataset:
        if split not in self.datasets:
            if self.ranges[split] is None:
                raise OptionError(f"data.{split}_time", "expected [start, end] of the "
                                  f"{split} split (e.g. [2016-01-01, 2016-12-31]), found None")
            source = self.open()
            raise ValueError(f"the {split} split is empty: no window of {self.length} consecutive steps of "
                             f"{source.step.text} (data.frames_in + data.frames_out) lies "
                             f"within data.{split}_time={self._shown(split)} in "
                             f"{source.label(source.times[0])} .. {source.label(source.times[-1])} without a gap")
        return self.datasets[split]

    def train_dataloader(self):
        return self._loader(self._dataset("train"), shuffle=True)

    def val_dataloader(self):
        return self._loader(self._dataset("val"))

    def test_dataloader(self):
        return self._loader(self._dataset("test"))

    # --- statistics of the training split ------------------------------------------------------

    def stats_path(self) -> Path:
        """The cache file of the statistics: named by a digest of everything that changes them: the files
        (path, size, time), the channels, the dimensions (data.dims: y and x swapped transpose the
        climatology), the time step, train_time and the climatology's settings."""
        source = self.open()
        parts = [STATS_VERSION, source.names, [c.dims for c in source.channels], source.step.key,
                 [str(t) for t in self.ranges["train"] or ()], DAYS, WINDOW_DAYS]
        if source.calendar.epoch is not None:  # counts of another calendar (its days of year too)
            parts.append([source.calendar.name, source.calendar.epoch.isoformat()])
        if source.order is not None:  # the climatology is in the order read (the checkpoint's grid)
            parts.append([k.tolist() for k in source.order])
        for path in source.paths:
            stat = path.stat()
            parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
        return self.cache_dir / f"field_stats_{digest}.npz"

    def train_steps(self) -> np.ndarray:
        """The indices of the time steps within data.train_time; ValueError when none is in the files."""
        source = self.open()
        first, last = self.ranges["train"]
        steps = np.flatnonzero((source.times >= first) & (source.times <= last))
        if len(steps) == 0:
            raise ValueError(f"data.train_time={self._shown('train')}: no time step of the data "
                             f"({source.label(source.times[0])} .. {source.label(source.times[-1])}) lies within it")
        return steps

    def stats(self) -> dict:
        """{mean (C,), std (C,)} of the training split in the files' units, and its climatology
        (`field_stats`; "note" says why there is none), from the cache or computed (and cached)."""
        if self._stats is not None:
            return self._stats
        if self.ranges["train"] is None:
            raise OptionError("train_time", "expected [start, end] of the training period, whose mean and std "
                              "normalize the data (or data.normalization), found None")
        path = self.stats_path()
        if path.is_file():
            with np.load(path, allow_pickle=False) as cached:
                self._stats = {k: cached[k] for k in cached.files}
            self._stats["note"] = str(self._stats["note"])
            return self._stats
        source, steps = self.open(), self.train_steps()
        frame = len(source.channels) * len(source.y) * len(source.x)
        check_memory(stats_bytes(frame, 0, source.order is not None) + chunk_cache_bytes(source),
                     f"{source.paths[0]}: the statistics of data.train_time over {len(source.y)}x{len(source.x)} "
                     f"frames of {len(source.channels)} channel(s) ({size_text(frame * 4)} a step)",
                     "use fewer data.variables or data.levels, or regrid the files to a coarser grid")
        hours, by, note = self._climatology_plan(steps, frame)
        log.info(f"Computing the statistics of data.train_time: {len(steps)} steps of {len(source.channels)}x"
                 f"{len(source.y)}x{len(source.x)} ({size_text(len(steps) * frame * 4)}) from {source.paths[0]}"
                 f"{' and more files' if len(source.paths) > 1 else ''}")
        began = time.perf_counter()
        self._stats = field_stats(source, steps, hours, by=by)
        self._stats["note"] = note
        log.info(f"Computed the statistics in {time.perf_counter() - began:.1f} s")
        bad = [n for n, s in zip(source.names, self._stats["std"]) if not s > 0]
        if bad:
            raise ValueError(f"{source.paths[0]}: {', '.join(bad)} is constant (or missing everywhere) over "
                             "data.train_time: its std is 0 and it cannot be normalized; drop it from data.variables")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "statistics cache") as tmp:
                with open(tmp, "wb") as file:
                    np.savez(file, **self._stats)
        except OSError as error:
            raise type(error)(f"cannot write the statistics cache in {path.parent} ({error}); set "
                              "paths.cache_dir (or data.cache_dir) to a writable folder") from None
        return self._stats

    def _climatology_plan(self, steps: np.ndarray, frame: int) -> tuple[list[int] | None, str, str]:
        """(hours of day of the climatology's table, or None when there is none; what its rows are: "day" (of year
        and hour of day) or "month" (calendar months, for steps of months); the note that says which climatology
        it is or why there is none) for the training steps `steps`."""
        source = self.open()
        times = source.times[steps]
        first, last = _text(source.label(times[0])), _text(source.label(times[-1]))
        dates = source.calendar.dates(times)
        if source.step.months:  # 61 days around a monthly step's day of year would hold the months beside it
            months = len(set(calendar_months(dates).tolist()))
            if months < MONTHS:
                return None, "month", (f"ACC and the climatology baseline left out: the training period in the files "
                                       f"({first} .. {last}) holds {months} of the 12 calendar months, too few for a "
                                       "climatology by calendar month")
            return [], "month", climatology_text({"period": [first, last], "hours": [], "by": "month"})
        days = float((source.step.after(times[-1], 1) - times[0]) / np.timedelta64(1, "D"))  # the days the steps cover
        year = YEAR_DAYS.get(source.calendar.name, (365, 366))[0]
        if days < year:
            return None, "day", (f"ACC and the climatology baseline left out: the training period in the files "
                                 f"({first} .. {last}, {days:g} days) is under a year ({year} days in the "
                                 f"{source.calendar.name} calendar), too short for a climatology by day of year and "
                                 "hour of day")
        hours = sorted(set(day_and_hour(dates)[1].tolist()))
        needed = stats_bytes(frame, DAYS * len(hours), source.order is not None)
        available = resources.available_memory()
        if available is not None and needed > available:
            return None, "day", (f"ACC and the climatology baseline left out: the climatology by day of year and hour "
                                 f"of day ({DAYS} x {len(hours)} fields) needs about {size_text(needed)} of memory, "
                                 f"{size_text(available)} available; a coarser data.time_step or grid makes it fit")
        return hours, "day", climatology_text({"period": [first, last], "hours": hours, "by": "day"})

    def climatology(self) -> dict | None:
        """The climatology's table {values (rows, C, H, W) float32, hours, period, by: "day" or "month"} of the
        training period (see the class), None when there is none; sets `climatology_note`."""
        if self._table is None:
            self._table = (self._climatology(),)
        return self._table[0]

    def _climatology(self) -> dict | None:
        if self.given_climatology is not None:
            source = self.open()
            if self._resized:
                self.climatology_note = (f"ACC and the climatology baseline left out: the checkpoint's climatology is "
                                         f"on the grid it was trained on, the files' {len(source.y)}x{len(source.x)} "
                                         "grid has another size")
                return None
            table = parse_climatology(self.given_climatology, source)
            self.climatology_note = climatology_text(table)
            return table
        if self.ranges["train"] is None:
            self.climatology_note = ("ACC and the climatology baseline left out: they need the climatology of the "
                                     "training period, and data.train_time is null (the checkpoint stores none)")
            return None
        if self._stats is None and self.given is not None:
            try:
                self.train_steps()
            except ValueError as error:  # eval on new files: the normalization is the checkpoint's
                self.climatology_note = (f"ACC and the climatology baseline left out: they need the training files "
                                         f"(the checkpoint stores no climatology), and {error}")
                return None
        stats = self.stats()
        self.climatology_note = stats["note"]
        if "climatology" not in stats:
            return None
        return {"values": stats["climatology"], "hours": [int(h) for h in stats["hours"]],
                "period": [str(p) for p in stats["period"]], "by": str(stats.get("by", "day"))}

    def stored_climatology(self, folder=None) -> dict | None:
        """The climatology as a checkpoint stores it (data.climatology: hours, period, shape, and the values
        as a flat list of plain floats when there are at most CHECKPOINT_CLIMATOLOGY of them, else `file`:
        an .npz written once into `folder`, beside the checkpoints); None when there is none, or it is large
        and no `folder` is given (eval then needs the training files for ACC)."""
        table = self.climatology()
        if table is None:
            return None
        values = table["values"]
        stored = {"hours": list(table["hours"]), "period": list(table["period"]), "window_days": WINDOW_DAYS,
                  "shape": list(values.shape)} if table["by"] == "day" else \
            {"by": table["by"], "hours": [], "period": list(table["period"]), "shape": list(values.shape)}
        if values.size <= CHECKPOINT_CLIMATOLOGY:
            return {**stored, "values": [float(v) for v in values.ravel()]}
        if folder is None:
            return None
        path = Path(folder) / f"climatology_{hashlib.sha1(values.tobytes()).hexdigest()[:16]}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "climatology file", values.nbytes) as tmp:
                with open(tmp, "wb") as file:
                    np.savez(file, values=values)
        return {**stored, "file": str(path.resolve())}

    def scoring(self) -> dict:
        """What the weather scores need: channel names and units, the latitudes (None: not a latitude
        grid), the climatology's table (rows, C, H, W) (None: no ACC), `note` (which climatology, or why
        none), the normalization, the lead times `lead_times` in `lead_unit` (h, or mo: calendar months;
        `TimeStep.leads`)."""
        source = self.open()
        mean = [self.normalization[n]["mean"] for n in source.names]
        std = [self.normalization[n]["std"] for n in source.names]
        leads, unit = source.step.leads(self.frames_out)
        table = self.climatology()
        return {"names": source.names, "units": source.units, "height": len(source.y), "latitudes": source.latitudes,
                "climatology": None if table is None else table["values"], "note": self.climatology_note,
                "mean": mean, "std": std, "lead_times": leads, "lead_unit": unit}


def _text(time) -> str:
    """A time step as text, to the second."""
    return str(time).replace("T", " ")[:19]


def day_and_hour(dates) -> tuple[np.ndarray, np.ndarray]:
    """(day of year 1..366, hour of day 0..23) of `dates`: dates of the files' calendar (`Calendar.dates`:
    datetime64, or cftime dates, whose days of year are their calendar's: 1..360 in 360_day, 1..365 in
    noleap), through xarray's .dt; never a FieldSource's `times`, which are counts in other calendars."""
    dates = xarray().DataArray(np.asarray(dates), dims="time").dt
    return dates.dayofyear.values.astype(np.int64), dates.hour.values.astype(np.int64)


def calendar_months(dates) -> np.ndarray:
    """The calendar month 1..12 of each of `dates` (of the files' calendar, `Calendar.dates`), through xarray's .dt."""
    return xarray().DataArray(np.asarray(dates), dims="time").dt.month.values.astype(np.int64)


def climatology_rows(dates, hours, by: str = "day") -> np.ndarray:
    """The climatology's table row of each of `dates` (of the files' calendar, `Calendar.dates`): by "day",
    (day of year - 1) * len(hours) + the index of the nearest of `hours` (hours of day, around midnight too); by
    "month" (a table of steps of months), the calendar month - 1."""
    if by == "month":
        return calendar_months(dates) - 1
    day, hour = day_and_hour(dates)
    distance = np.abs(hour[:, None] - np.asarray(hours)[None, :])
    return (day - 1) * len(hours) + np.minimum(distance, 24 - distance).argmin(1)


def climatology_text(table: dict) -> str:
    """Which climatology ACC is against (the title of the fields' table says it)."""
    if table["by"] == "month":
        return f"ACC against the climatology of {table['period'][0]} .. {table['period'][1]} by calendar month"
    hours = ", ".join(f"{h:02d}" for h in table["hours"])
    return (f"ACC against the climatology of {table['period'][0]} .. {table['period'][1]} by day of year and hour "
            f"of day ({hours} h), smoothed over {WINDOW_DAYS} days (WeatherBench 2)")


def parse_climatology(given, source: FieldSource) -> dict:
    """data.climatology (as `FieldDataModule.stored_climatology` writes it: values, or the .npz `file` holding
    them; `by` month for a table of calendar months) as a table for `source`; OptionError unless it fits its
    channels and grid, FileNotFoundError naming a missing file."""
    expected = (len(source.channels), len(source.y), len(source.x))
    try:
        by = str(given.get("by", "day"))
        hours = [int(h) for h in given["hours"]]
        shape = tuple(int(n) for n in given["shape"])
        period = [str(p) for p in given["period"]]
        values = _climatology_values(given)
        found = f"shape {list(shape)} with {values.size} values"
    except (KeyError, TypeError, ValueError, AttributeError):
        by, hours, shape, values = "day", [], (), np.zeros(0)
        found = f"{sorted(given) if hasattr(given, 'keys') else given!r}"[:120]
    rows = MONTHS if by == "month" else DAYS * len(hours)
    if by not in ("day", "month") or not rows or shape != (rows, *expected) or values.size != math.prod(shape):
        raise OptionError("data.climatology", f"expected the climatology a checkpoint stores ({{hours, period, shape, "
                          f"values or file}}) of shape ({DAYS} x hours, C, H, W) (or {MONTHS} rows by calendar month) "
                          f"for {len(source.channels)} channel(s) {source.names} on the {expected[1]}x{expected[2]} "
                          f"grid, found {found}")
    return {"values": values.astype(np.float32, copy=False).reshape(shape), "hours": hours, "period": period, "by": by}


def _climatology_values(given) -> np.ndarray:
    """The flat values of data.climatology: its list, or the array `values` of its .npz `file` (never unpickled)."""
    if given.get("file") is None:
        return np.array([float(v) for v in given["values"]], np.float32)
    path = Path(str(given["file"]))
    if not path.is_file():
        raise FileNotFoundError(f"data.climatology.file {path}: not found; the checkpoint's climatology is written "
                                "beside it (copy it along), or set data.climatology=null to compute it from the "
                                "training files")
    with np.load(path, allow_pickle=False) as stored:
        return np.asarray(stored["values"], np.float32).ravel()


def chunk_cache_bytes(source: FieldSource) -> int:
    """The most memory `source`'s cache of time chunks takes (0 when no variable is chunked along time)."""
    return CACHE_BYTES if source.longest_time_chunk() > 1 else 0


def stats_bytes(frame: int, rows: int, aligned: bool = False) -> int:
    """About the peak memory of `field_stats` on frames of `frame` values with a climatology's table of
    `rows` rows: a chunk read (float32, its reordered copy when `aligned` (`FieldSource.align`), its float64
    copy and temporaries) and the table's float64 sums and counts and float32 result."""
    per_chunk = max(1, CHUNK_BYTES // (frame * 4))
    return per_chunk * frame * (4 * (1 + aligned) + 8 + 1 + 8 + 8) + rows * frame * (8 + 8 + 4)


def field_stats(source: FieldSource, steps: np.ndarray, hours=None, progress: bool = True, by: str = "day") -> dict:
    """Mean and std per channel of `source`'s time steps `steps`, NaN left out, read about CHUNK_BYTES at a
    time (runs of consecutive steps; a progress bar on a terminal); per-chunk means and sums of squared
    deviations are merged as Chan et al. (1979) do, in float64.

    With `hours` (hours of day) also the climatology: `climatology` (DAYS * len(hours), C, H, W) float32,
    row (day - 1) * len(hours) + h the mean of the steps at hour `hours[h]` whose day of year (of the files'
    calendar) lies within WINDOW_DAYS // 2 days of `day` (around the calendar's year's end too: 360 days in
    360_day, 365 in noleap, 366 otherwise; the days' sums pooled, as WeatherBench 2 smooths its climatology
    over a 61-day window), NaN where no step is valid (and on days past the calendar's year); with `hours`
    and `period`. `by` "month" (steps of calendar months; `hours` []): (MONTHS, C, H, W), row m - 1 the mean of
    the steps in calendar month m (unsmoothed), and `by`. On the grid in the order
    `source.read` gives (`FieldSource.align`)."""
    from tqdm.auto import tqdm

    frame = len(source.channels) * len(source.y) * len(source.x) * 4
    per_chunk = max(1, CHUNK_BYTES // frame)
    channels = len(source.channels)
    count, mean, m2 = np.zeros(channels), np.zeros(channels), np.zeros(channels)
    slots = None
    if hours is not None:
        rows = climatology_rows(source.calendar.dates(source.times[steps]), hours, by)
        slots = dict(zip(steps.tolist(), rows.tolist()))
        sums = np.zeros((MONTHS if by == "month" else DAYS * len(hours), channels, len(source.y), len(source.x)))
        counts = np.zeros_like(sums)
    runs = np.split(steps, np.flatnonzero(np.diff(steps) != 1) + 1)
    with tqdm(total=len(steps), unit="step", desc="Statistics of data.train_time", disable=None if progress else True,
              leave=False) as bar:
        for run in runs:
            for begin in range(0, len(run), per_chunk):
                piece = run[begin:begin + per_chunk]
                block = source.read(int(piece[0]), int(piece[-1]) + 1).astype(np.float64)  # (t, C, H, W)
                valid = ~np.isnan(block)
                filled = np.where(valid, block, 0.0)
                if slots is not None:
                    for step, values, ok in zip(piece.tolist(), filled, valid):
                        sums[slots[step]] += values
                        counts[slots[step]] += ok
                n = valid.sum((0, 2, 3)).astype(np.float64)
                block_mean = filled.sum((0, 2, 3)) / np.maximum(n, 1)
                block_m2 = (np.where(valid, block - block_mean[:, None, None], 0.0) ** 2).sum((0, 2, 3))
                total = count + n
                delta = block_mean - mean
                mean = np.where(total > 0, mean + delta * n / np.maximum(total, 1), 0.0)
                m2 = m2 + block_m2 + delta ** 2 * count * n / np.maximum(total, 1)
                count = total
                bar.update(len(piece))
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(m2 / count)
    stats = {"mean": mean, "std": np.nan_to_num(std)}
    if slots is not None:
        times = source.times[steps]
        year = YEAR_DAYS.get(source.calendar.name, (365, 366))[1]
        if by == "month":
            with np.errstate(invalid="ignore", divide="ignore"):
                table = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
        else:
            table = smooth_days(sums, counts, len(hours), year)
        stats.update(climatology=table, hours=np.asarray(hours, dtype=np.int64), by=np.array(by),
                     period=np.array([_text(source.label(times[0])), _text(source.label(times[-1]))]))
    return stats


def smooth_days(sums: np.ndarray, counts: np.ndarray, hours: int, year: int = DAYS) -> np.ndarray:
    """sum / count over the WINDOW_DAYS days around each day of a `year`-day year (circularly: the calendar's
    longest year), per hour: (DAYS * hours, ...) float64 sums and counts of each (day, hour) -> float32 means,
    NaN where the window has no count and on days past `year`."""
    sums, counts = (a.reshape(DAYS, hours, *a.shape[1:]) for a in (sums, counts))
    half = WINDOW_DAYS // 2
    window = [d % year for d in range(-half, half + 1)]
    total, number = sums[window].sum(0), counts[window].sum(0)
    out = np.full(sums.shape, np.nan, np.float32)
    for day in range(year):
        with np.errstate(invalid="ignore", divide="ignore"):
            out[day] = np.where(number > 0, total / np.maximum(number, 1), np.nan)
        total += sums[(day + half + 1) % year] - sums[(day - half) % year]
        number += counts[(day + half + 1) % year] - counts[(day - half) % year]
    return out.reshape(DAYS * hours, *out.shape[2:])
