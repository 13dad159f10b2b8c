"""LightningDataModule for gridded fields in NetCDF files or a Zarr store (data=fields): ERA5, WeatherBench,
CMIP, ocean and air-quality data, read lazily per batch through xarray."""

import hashlib
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convgru._checks import OptionError
from convgru.atomic import atomic_write
from convgru.domain.fields import normalize

from .base import SequenceDataModule
from .cache import USER_CACHE
from .fields import FieldSource, expand, window_starts
from .missing import check_finite

SPLITS = ("train", "val", "test")
STATS_VERSION = 1  # bump when the statistics change, so cached ones are computed again
CHUNK_BYTES = 1 << 26  # bytes of field read at a time while computing the statistics


class FieldDataset(Dataset):
    """Windows of a FieldSource: item i is (x (frames_in, C, H, W), y (frames_out, C, H, W)) float32,
    normalized (`convgru.domain.fields.normalize`: the training mean at 0.5, +-5 std at 0 and 1).

    Missing points (NaN in the files, with `missing`) are the training mean (0.5) in the inputs and NaN
    in the targets; without `missing`, NaN raises ValueError. `init_times[i]` is the time of the last input step.
    """

    def __init__(self, source: FieldSource, starts: np.ndarray, frames_in: int, frames_out: int, mean, std,
                 missing: bool = True):
        self.source, self.starts = source, np.asarray(starts, dtype=np.int64)
        self.frames_in, self.frames_out = frames_in, frames_out
        self.mean, self.std, self.missing = np.asarray(mean, np.float32), np.asarray(std, np.float32), missing

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
            check_finite(frames, None, f"{self.source.paths[0]}, time {self.source.times[start]}", 0, self.frames_in)
        return to_pair(frames, self.frames_in, self.mean, self.std, valid)


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


def _time_range(value, option: str):
    """[start, end] (dates or times; each a whole period: 2015 is the year, 2015-12-31 the day) as
    (first, last) datetime64[ns], or None."""
    if value is None:
        return None
    import pandas as pd
    try:
        start, end = ([str(v) for v in value] if not isinstance(value, str) else ["", ""])
        first, last = pd.Period(start).start_time, pd.Period(end).end_time
    except (ValueError, TypeError):
        first = last = None
    if first is None or last < first:
        raise OptionError(option, f"expected [start, end] dates such as [1979-01-01, 2015-12-31] (or years "
                          f"[1979, 2015]), start before end, found {value!r}")
    return np.datetime64(first.to_datetime64(), "ns"), np.datetime64(last.to_datetime64(), "ns")


class FieldDataModule(SequenceDataModule):
    """Gridded fields from NetCDF files (globs opened together along time) or a Zarr store, lazily.

    `variables` become the channels, in order; 4-d variables give one channel per level of `levels`
    (named e.g. z500); `channels` must equal their number. `dims` names the time / y / x / level
    dimensions when the CF conventions do not tell. `time_step` (e.g. 6h; None: the data's spacing) picks
    the sampling; windows of frames_in + frames_out steps that would cross a gap in time are skipped.
    Splits are by time: `train_time`, `val_time`, `test_time` = [start, end] (whole windows inside),
    every `stride`-th window.

    Normalization: per channel mean and std of the training split (streamed in chunks; with the
    per-point climatology of the training period that ACC needs, cached in `cache_dir`), or
    `normalization` = {name: {mean, std}} as a checkpoint stores it. After `setup`, `normalization`
    holds what was used. NaN in the fields are missing points when `missing_value` is nan (inputs the
    mean, targets NaN, left out of loss and scores); with null they raise ValueError.
    """

    def __init__(self, files=None, variables=None, levels=None, dims: dict | None = None, time_step: str | None = None,
                 train_time=None, val_time=None, test_time=None, stride: int = 1,
                 missing_value: float | str | None = "nan", normalization: dict | None = None,
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
        self.ranges = {name: _time_range(value, f"{name}_time")
                       for name, value in zip(SPLITS, (train_time, val_time, test_time))}
        self.given = None if normalization is None else {str(k): dict(v) for k, v in dict(normalization).items()}
        self.cache_dir = Path(cache_dir)
        self.source: FieldSource | None = None
        self.datasets: dict[str, FieldDataset] = {}
        self.normalization: dict | None = None
        self._stats: dict | None = None

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
        for split in SPLITS:
            starts = self.starts(split)
            if self.ranges[split] is None or len(starts) == 0:
                continue
            self.datasets[split] = FieldDataset(source, starts, self.frames_in, self.frames_out, stats["mean"],
                                                stats["std"], self.missing)

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
                             f"{source.step / np.timedelta64(1, 'h'):g}h (data.frames_in + data.frames_out) lies "
                             f"within data.{split}_time={[str(t) for t in self.ranges[split]]} in "
                             f"{source.times[0]} .. {source.times[-1]} without a gap")
        return self.datasets[split]

    def train_dataloader(self):
        return self._loader(self._dataset("train"), shuffle=True)

    def val_dataloader(self):
        return self._loader(self._dataset("val"))

    def test_dataloader(self):
        return self._loader(self._dataset("test"))

    # --- statistics of the training split ------------------------------------------------------

    def stats_path(self) -> Path:
        """The cache file of the statistics: named by a digest of the files (path, size, time), the channels,
        the time step and train_time."""
        source = self.open()
        parts = [STATS_VERSION, source.names, str(source.step), [str(t) for t in self.ranges["train"] or ()]]
        for path in source.paths:
            stat = path.stat()
            parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
        return self.cache_dir / f"field_stats_{digest}.npz"

    def stats(self) -> dict:
        """{mean (C,), std (C,), climatology (C, H, W)} of the training split in the files' units, from the
        cache or computed (and cached) with `field_stats`."""
        if self._stats is not None:
            return self._stats
        if self.ranges["train"] is None:
            raise OptionError("train_time", "expected [start, end] of the training period, whose mean and std "
                              "normalize the data (or data.normalization), found None")
        path = self.stats_path()
        if path.is_file():
            with np.load(path, allow_pickle=False) as cached:
                self._stats = {k: cached[k] for k in ("mean", "std", "climatology")}
            return self._stats
        source = self.open()
        first, last = self.ranges["train"]
        steps = np.flatnonzero((source.times >= first) & (source.times <= last))
        if len(steps) == 0:
            raise ValueError(f"data.train_time={[str(t) for t in self.ranges['train']]}: no time step of the data "
                             f"({source.times[0]} .. {source.times[-1]}) lies within it")
        self._stats = field_stats(source, steps)
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

    def scoring(self) -> dict:
        """What the weather scores need: channel names and units, the latitudes (None: not a latitude
        grid), the climatology (C, H, W) of the training period, the normalization, the lead times in hours."""
        source = self.open()
        mean = [self.normalization[n]["mean"] for n in source.names]
        std = [self.normalization[n]["std"] for n in source.names]
        hours = source.step / np.timedelta64(1, "h")
        climatology = self.stats()["climatology"] if self.ranges["train"] is not None else None
        return {"names": source.names, "units": source.units, "height": len(source.y), "latitudes": source.latitudes,
                "climatology": climatology, "mean": mean, "std": std,
                "lead_hours": [float(hours) * (k + 1) for k in range(self.frames_out)]}


def field_stats(source: FieldSource, steps: np.ndarray) -> dict:
    """Mean and std per channel and the mean per point (the climatology) of `source`'s time steps `steps`,
    NaN left out, read about CHUNK_BYTES at a time (runs of consecutive steps); per-chunk means and
    sums of squared deviations are merged as Chan et al. (1979) do, in float64."""
    frame = len(source.channels) * len(source.y) * len(source.x) * 4
    per_chunk = max(1, CHUNK_BYTES // frame)
    channels = len(source.channels)
    count, mean, m2 = np.zeros(channels), np.zeros(channels), np.zeros(channels)
    point_sum = np.zeros((channels, len(source.y), len(source.x)))
    point_count = np.zeros_like(point_sum)
    runs = np.split(steps, np.flatnonzero(np.diff(steps) != 1) + 1)
    for run in runs:
        for begin in range(0, len(run), per_chunk):
            piece = run[begin:begin + per_chunk]
            block = source.read(int(piece[0]), int(piece[-1]) + 1).astype(np.float64)  # (t, C, H, W)
            valid = ~np.isnan(block)
            filled = np.where(valid, block, 0.0)
            point_sum += filled.sum(0)
            point_count += valid.sum(0)
            n = valid.sum((0, 2, 3)).astype(np.float64)
            block_mean = filled.sum((0, 2, 3)) / np.maximum(n, 1)
            block_m2 = (np.where(valid, block - block_mean[:, None, None], 0.0) ** 2).sum((0, 2, 3))
            total = count + n
            delta = block_mean - mean
            mean = np.where(total > 0, mean + delta * n / np.maximum(total, 1), 0.0)
            m2 = m2 + block_m2 + delta ** 2 * count * n / np.maximum(total, 1)
            count = total
    with np.errstate(invalid="ignore", divide="ignore"):
        climatology = np.where(point_count > 0, point_sum / point_count, np.nan)
        std = np.sqrt(m2 / count)
    return {"mean": mean, "std": np.nan_to_num(std), "climatology": climatology}
