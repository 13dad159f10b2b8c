"""Gridded fields from NetCDF files and Zarr stores, read lazily through xarray (the `xarray` extra).

A `FieldSource` is the chosen variables (and pressure levels) of one Zarr store or of NetCDF files
opened together along time, seen as one field (T, C, H, W) on its sampled time axis; `read` reads
only the time steps asked for (a window of a batch), never a whole file. The dimensions for time,
y, x and level are found from the CF conventions (a coordinate's `axis` attribute, its
`standard_name`, or a common name such as time, latitude, lat, y, level) or given (`dims`).
"""

import datetime as dt
import glob
import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from convgru._checks import OptionError, shown, shown_name, shown_path

from .arrays import check_path
from .files import unique_files

EXTRA = 'pip install -e ".[fields]"'
ROLES = ("time", "y", "x", "level")
AXES = {"time": "T", "y": "Y", "x": "X", "level": "Z"}
STANDARD_NAMES = {"time": ("time",), "y": ("latitude", "projection_y_coordinate", "grid_latitude"),
                  "x": ("longitude", "projection_x_coordinate", "grid_longitude"),
                  "level": ("air_pressure", "altitude", "height", "depth", "model_level_number")}
NAMES = {"time": ("time", "valid_time", "t", "date"), "y": ("latitude", "lat", "y", "rlat", "south_north"),
         "x": ("longitude", "lon", "x", "rlon", "west_east"),
         "level": ("level", "plev", "pressure_level", "isobaricinhpa", "lev", "pressure")}
NO_GRID = ("the checkpoint records no grid (convgru 0.2.0 and earlier): the input is taken to be on the grid it "
           "was trained on, in the same order (latitudes, longitudes); a flipped or rolled grid gives a wrong forecast")
ZARR = (".zarr",)
NETCDF = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
CACHE_BYTES = 1 << 28  # whole time chunks a FieldSource keeps (per process: each DataLoader worker has its own)
# xarray's refusal of CF's "months since" / "years since" times outside 360_day: (the units, the calendar)
CF_MONTHS = re.compile(r"unable to decode time units '((?:months|years) since [^']*)' with \"calendar '([^']*)'")


def xarray():
    """The xarray module; OptionError (a ValueError: one `error:` line) naming the extra to install without it."""
    try:
        import xarray as xr
    except ImportError:
        raise OptionError("data=fields", f"NetCDF and Zarr fields need xarray, h5netcdf and zarr, not installed: "
                          f"{EXTRA}") from None
    return xr


def is_field_path(path) -> bool:
    """Whether `path` names a NetCDF file or a Zarr store (by its suffix, or a folder holding .zmetadata/zarr.json)."""
    path = Path(str(path))
    return path.suffix.lower() in ZARR + NETCDF[:4] or (path.is_dir() and any(
        (path / name).exists() for name in (".zmetadata", "zarr.json", ".zgroup")))


def expand(files, option: str = "files") -> list[Path]:
    """The paths of `files` (a path, glob or list of them), globs expanded and sorted; OptionError naming
    `option` when one matches nothing or is not a string."""
    items = [files] if isinstance(files, (str, os.PathLike)) else list(files or [])
    if not items or not all(isinstance(f, (str, os.PathLike)) for f in items):
        raise OptionError(option, f"expected NetCDF files (globs allowed) or a Zarr store, found {files!r}")
    paths = []
    for item in items:
        text = os.path.expanduser(str(item))
        if glob.has_magic(text):
            found = sorted(glob.glob(text))
            if not found:
                raise OptionError(option, f"{text} matches no file")
            paths += [Path(p) for p in found]
        else:
            path = Path(text)
            check_path(path, "data file")
            if not path.exists():
                raise FileNotFoundError(f"data file {shown_path(path)} not found (option data.{option})")
            paths.append(path)
    return unique_files(paths, option)[0]  # a file named twice (links, a path twice) is read once


def open_dataset(path: Path):
    """`path` opened lazily with xarray (no dask): a Zarr store (a folder or *.zarr) or a NetCDF file. Times
    holding NaN, their _FillValue or inf raise MissingTimes (`_check_missing_times`, before decoding). Times
    of the standard calendars are decoded to datetime64[us] (the standard one before 1582-10-15 to cftime dates,
    as xarray does, without its warning: `Calendar.of` joins both), others to cftime dates; times that xarray can
    only decode to datetime64[ns] (floats) and that do not fit there (before 1678, after 2262: a 500-year
    climate run) are decoded to cftime dates too, never to NaT."""
    xr = xarray()
    zarr = path.is_dir() or path.suffix.lower() in ZARR

    def opened(times):
        with warnings.catch_warnings():  # float times go to datetime64[ns], checked below
            warnings.filterwarnings("ignore", "Can't decode floating point datetimes", xr.SerializationWarning)
            warnings.filterwarnings("ignore", "Unable to decode time axis", xr.SerializationWarning)  # to cftime
            return xr.open_dataset(path, engine="zarr" if zarr else None, chunks=None, cache=False,
                                   decode_times=times)
    try:
        # before any decoding: xarray reads inf as the units' epoch, cftime a NaN as the epoch or overflows
        _check_missing_times(opened(False), path)
        dataset = opened(xr.coders.CFDatetimeCoder(time_unit=COUNT_UNIT))
        if any(np.issubdtype(c.dtype, np.datetime64) and np.isnat(c.values).any() for c in dataset.coords.values()):
            dataset.close()  # out of datetime64's range: cftime dates
            dataset = opened(xr.coders.CFDatetimeCoder(use_cftime=True))
        return dataset
    except ImportError as error:
        raise OptionError("data=fields", f"{shown_path(path)}: {error}; {EXTRA}") from None
    except MissingTimes:
        raise
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as error:
        if units := CF_MONTHS.search(str(error)):
            raise ValueError(f"{shown_path(path)}: its times are in {shown_name(units[1])} (the "
                             f"{shown_name(units[2])} calendar): CF's months and years are fixed lengths "
                             "(a twelfth of a year of 365.242198781 days, and that year), not calendar months, so "
                             "xarray decodes them only in 360_day; expected units such as 'days since 2000-01-01' "
                             "(re-encode the time coordinate)") from None
        kind = "a Zarr store" if zarr else "a NetCDF file"
        reason = (str(error).splitlines() or [type(error).__name__])[0].split(". Try opening your dataset")[0]
        raise ValueError(f"{shown_path(path)}: cannot be read as {kind} ({reason})") from None


class MissingTimes(ValueError):
    """A time coordinate of a file holds missing values (NaN, its _FillValue)."""


def _check_missing_times(raw, path) -> None:
    """Raise MissingTimes naming `path` where a time coordinate of `raw` (the file opened with its times not decoded:
    a variable whose units are '<unit> since <date>') holds missing or non-finite values (NaN, its _FillValue, inf),
    which no decoding may turn into a time."""
    try:
        for name, coord in raw.coords.items():
            values = coord.values
            if " since " not in str(coord.attrs.get("units", "")) or not np.issubdtype(values.dtype, np.number):
                continue
            bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
            if len(bad):
                raise MissingTimes(f"{shown_path(path)}: the time coordinate {str(name)!r} holds {len(bad)} missing "
                                   f"time(s) (NaN, its _FillValue or inf; the first at step {bad[0]} of "
                                   f"{len(values)}); expected a time for every step")
    finally:
        raw.close()


def find_dims(dataset, name: str, path, given: dict | None = None) -> dict[str, str]:
    """{role: dimension name} of variable `name` of `dataset` for the roles time, y, x (and level for a
    4-d variable), from `given` (data.dims) or the CF conventions; ValueError naming `path` otherwise."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    dims, found = dataset[name].dims, {}
    for role in ROLES:
        if role in given:
            if given[role] in dims:
                found[role] = given[role]
            continue
        for dim in dims:
            coord = dataset.coords.get(dim)
            attrs = coord.attrs if coord is not None else {}
            if (str(attrs.get("axis", "")).upper() == AXES[role] or attrs.get("standard_name") in STANDARD_NAMES[role]
                    or dim.lower() in NAMES[role]) and dim not in found.values():
                found[role] = dim
                break
    missing = [role for role in ("time", "y", "x") if role not in found]
    others = [d for d in dims if d not in found.values()]
    if missing or others:
        what = f"no {', '.join(missing)} dimension" if missing else f"the dimension(s) {others} of no known role"
        raise ValueError(f"{shown_path(path)}: variable {name!r} has dimensions {dims}: {what}; expected time, "
                         "y, x (and a level for 4-d variables) named by CF attributes (axis, standard_name) or "
                         "common names; name them with data.dims={time: ..., y: ..., x: ..., level: ...}")
    return found


STANDARD = ("standard", "gregorian", "proleptic_gregorian")
COUNT_UNIT = "us"  # of times held as counts: datetime64[us] spans 290,000 years (datetime64[ns]: 1678-2262)
COUNTS, STEPS = f"datetime64[{COUNT_UNIT}]", f"timedelta64[{COUNT_UNIT}]"
EPOCH = np.datetime64("1970-01-01", COUNT_UNIT)
PERIOD = re.compile(r"^\s*(\d{1,4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?\s*$")


class Calendar:
    """The calendar of a FieldSource's times (CF: standard, noleap, 360_day, julian, ...).

    Times are held as datetime64[us] counts (`COUNTS`) on the calendar: 1970-01-01 plus the time since `epoch`, a
    date of the calendar (a cftime date), so that order, differences and steps are the calendar's own
    (360_day has Feb 30; noleap no Feb 29). Files whose times xarray decodes to datetime64 (the standard
    and proleptic Gregorian calendars, to datetime64[us]: `open_dataset`) have `epoch` None: counts and dates
    are the same. `dates`, `label`
    and `period` convert between counts and the calendar's dates.
    """

    def __init__(self, name: str = "standard", epoch=None):
        self.name, self.epoch = name, epoch

    @classmethod
    def of(cls, decoded: list) -> "Calendar":
        """The calendar of files' decoded times `decoded`, [(values: datetime64 or cftime dates, the file's
        calendar name, as `_times` gives them)]: the first file's. Its dates are counts since an epoch (January 1
        of the first year of a file that needs cftime) when a file of that calendar is decoded to cftime dates
        that datetime64 cannot hold as they are: another calendar, or the standard one before 1582-10-15. The
        files of the standard calendar that xarray decodes to datetime64 (after that date) are then counted on
        the same calendar (`counts`), so a run across 1582 in several files is one time axis."""
        if not decoded:
            return cls()
        name = decoded[0][1]
        for values, other in decoded:
            if other == name and len(values) and values.dtype == object and not _gregorian(values):
                first = values[0]
                return cls(name, type(first)(first.year, 1, 1, calendar=first.calendar))
        return cls(name)

    def counts(self, values: np.ndarray, where: str, name: str | None = None) -> np.ndarray:
        """Decoded times `values` (of a file of the calendar `name`; default: the dates' own) as counts
        (`COUNTS`); ValueError naming `where` for dates of another calendar."""
        name = name or _calendar_of(values)
        if self.epoch is None:
            if _gregorian(values):
                first = values[0]
                return EPOCH + np.array(values - type(first)(1970, 1, 1, calendar=first.calendar), dtype=STEPS)
            if np.issubdtype(values.dtype, np.datetime64):
                return values.astype(COUNTS)
        elif np.issubdtype(values.dtype, np.datetime64):  # the standard calendar's dates after 1582-10-15
            if self.name == name == "standard":
                since = type(self.epoch)(1970, 1, 1, calendar=self.name) - self.epoch  # datetime.timedelta
                return values.astype(COUNTS) + np.timedelta64(since).astype(STEPS)
        elif _calendar_of(values) == self.name:
            return EPOCH + np.array(values - self.epoch, dtype=STEPS)
        raise ValueError(f"{where}: times in the calendar {name}, the first file's are {self.name}; expected files "
                         "of one calendar")

    def months(self, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(month numbers (year * 12 + month - 1, int64), the first count of each one's month, the first count of
        the next month) of `counts`, in the calendar (months of 28 to 31 days; 30 in 360_day)."""
        counts = np.asarray(counts, dtype=COUNTS)
        if self.epoch is None:
            month = counts.astype("datetime64[M]")
            return month.astype(np.int64) + 1970 * 12, month.astype(COUNTS), (month + 1).astype(COUNTS)
        dates = self.dates(counts)
        number = np.array([d.year * 12 + d.month - 1 for d in dates.ravel()], np.int64).reshape(counts.shape)
        edges = np.union1d(number, number + 1)  # each month's start made once (cftime dates are slow to make)
        starts = self.month_starts(edges)
        return number, starts[np.searchsorted(edges, number)], starts[np.searchsorted(edges, number + 1)]

    def month_starts(self, number) -> np.ndarray:
        """The first counts of the months `number` (year * 12 + month - 1)."""
        number = np.asarray(number, np.int64)
        if self.epoch is None:
            return (number - 1970 * 12).astype("datetime64[M]").astype(COUNTS)
        date = type(self.epoch)
        starts = [date(int(n) // 12, int(n) % 12 + 1, 1, calendar=self.name) for n in number.ravel()]
        return self.counts(np.array(starts, dtype=object), "a month").reshape(number.shape)

    def dates(self, counts) -> np.ndarray:
        """`counts` as dates of the calendar: datetime64[us], or cftime dates (an object array)."""
        counts = np.asarray(counts, dtype=COUNTS)
        if self.epoch is None:
            return counts
        deltas = np.asarray(counts - EPOCH).astype(object)  # datetime.timedelta
        return np.array([self.epoch + d for d in deltas.ravel()], dtype=object).reshape(counts.shape)

    def label(self, count, unit: str = "s") -> str:
        """One count as a date of the calendar, e.g. 2000-02-30T06:00:00 (`unit` m: to the minute)."""
        if self.epoch is None:
            return str(np.datetime_as_string(np.datetime64(count, COUNT_UNIT), unit=unit))
        return self.dates([count])[0].isoformat()[:16 if unit == "m" else 19]

    def period(self, text, option: str) -> tuple[np.datetime64, np.datetime64]:
        """(first, last) counts of the period `text` names in the calendar (2015: the year, 2015-02: the month,
        2015-02-30 a day of 360_day, 2015-02-30T06 an hour); OptionError naming `option` otherwise."""
        fields = period_fields(text, option, self.name)
        if self.epoch is None:  # Python's dates: the proleptic Gregorian calendar, years 1..9999
            date = dt.datetime
        else:
            import cftime

            def date(*parts):
                return cftime.datetime(*parts, calendar=self.name)
        given = [v for v in fields if v is not None]
        parts = given + [1] * (3 - len(given[:3])) + [0] * (6 - max(len(given), 3))
        try:
            start = date(*parts)
            if len(given) <= 2:  # a year or a month: up to the first day of the next one
                year, month = (parts[0] + 1, 1) if len(given) == 1 else divmod(parts[0] * 12 + parts[1], 12)
                end = date(year, month + (len(given) == 2), 1)
            else:
                end = start + dt.timedelta(**{("days", "hours", "minutes", "seconds")[len(given) - 3]: 1})
        except (ValueError, OverflowError):
            raise OptionError(option, f"{text!r} is not a date of the {self.name} calendar") from None
        dates = np.array([start, end], dtype=COUNTS if self.epoch is None else object)
        first, last = self.counts(dates, option)
        return first, last - np.timedelta64(1, COUNT_UNIT)

    def point(self, text, option: str) -> np.datetime64:
        """The count of the time `text` (e.g. 2000-02-30T06) of the calendar; OptionError naming `option`."""
        if self.epoch is None:
            try:
                return np.datetime64(np.datetime64(str(text)), COUNT_UNIT)
            except ValueError:
                raise OptionError(option, f"expected a time such as 2018-01-01T00, found {text!r}") from None
        return self.period(text, option)[0]


def period_fields(text, option: str, calendar: str = "standard") -> list:
    """(year, month, day, hour, minute, second) of an ISO date `text`, None for those not given."""
    match = PERIOD.match(str(text))
    if not match:
        raise OptionError(option, f"expected a date such as 1979-01-01 or 1979-01-01T06 (or a year) in the "
                          f"{calendar} calendar, found {text!r}")
    return [None if v is None else int(v) for v in match.groups()]


def _gregorian(values: np.ndarray) -> bool:
    """Whether `values` are cftime dates that datetime64 holds as they are: of the proleptic Gregorian calendar,
    or of the standard one after the Julian calendar's end (1582-10-15)."""
    if values.dtype != object or not len(values) or not hasattr(values[0], "calendar"):
        return False
    calendar = values[0].calendar
    return calendar == "proleptic_gregorian" or calendar in STANDARD and min(values) >= type(values[0])(
        1582, 10, 15, calendar=calendar)


def _calendar_of(values: np.ndarray) -> str:
    if np.issubdtype(values.dtype, np.datetime64):
        return "standard"
    return _calendar_name(getattr(values[0], "calendar", "(none)")) if len(values) else "(none)"


def _calendar_name(name) -> str:
    """A CF calendar name as one spelling: gregorian is the standard calendar's old name (CF 1.9)."""
    name = str(name).lower()
    return "standard" if name == "gregorian" else name


def _times(dataset, dim: str, path) -> tuple[np.ndarray, str]:
    """(the decoded times of `dim`: datetime64, or cftime dates (calendars other than the standard one, and the
    standard one before 1582-10-15), the name of the file's calendar); ValueError naming `path` for other values."""
    values = dataset[dim].values
    calendar = dataset[dim].attrs.get("calendar") or dataset[dim].encoding.get("calendar")
    if not np.issubdtype(values.dtype, np.datetime64) and not (
            values.dtype == object and len(values) and all(hasattr(v, "calendar") for v in values[:1])):
        hint = "" if calendar is None or calendar in STANDARD else \
            f"; the calendar {shown_name(calendar)} needs cftime: {EXTRA}"
        raise ValueError(f"{shown_path(path)}: the time coordinate {dim!r} holds {values.dtype} values, not dates; "
                         f"expected CF times (units 'hours since ...'){hint}")
    if np.issubdtype(values.dtype, np.datetime64):
        return values, _calendar_name(calendar or "standard")
    return values, _calendar_of(values)


def _increasing(times: np.ndarray, dim: str, path, label) -> np.ndarray:
    """`times` (counts) if strictly increasing; ValueError naming `path` and the first two that are not (shown by
    `label`) otherwise."""
    if len(times) > 1 and not (np.diff(times) > np.timedelta64(0)).all():
        i = int(np.flatnonzero(~(np.diff(times) > np.timedelta64(0)))[0])
        found = "twice" if times[i] == times[i + 1] else f"then {label(times[i + 1])}"
        raise ValueError(f"{shown_path(path)}: the times of {dim!r} are not strictly increasing: expected each step "
                         f"after the one before, found {label(times[i])} {found} (steps {i} and {i + 1} of "
                         f"{len(times)})")
    return times


def check_grid(grid, option: str = "grid") -> dict:
    """`grid` (data.grid, as `FieldSource.plain_grid` gives it) as a dict; OptionError naming `option` unless it
    holds the dimension names and coordinate lists."""
    try:
        given = dict(grid)
        ok = isinstance(given["y"], str) and isinstance(given["x"], str) and all(
            len(given[k]) and all(isinstance(v, (int, float)) for v in given[k]) for k in ("y_values", "x_values"))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise OptionError(option, f"expected the training grid {{y, x, y_values, x_values, longitude}} (a checkpoint "
                          f"stores it), found {grid!r}"[:400])
    return {"y": given["y"], "x": given["x"], "y_values": [float(v) for v in given["y_values"]],
            "x_values": [float(v) for v in given["x_values"]], "longitude": bool(given.get("longitude", False))}


MONTHS = re.compile(r"^\s*(\d*)\s*(MS|ME|M|months?|YS|YE|Y|years?)\s*$")  # data.time_step in calendar months
SHARE = 1.5 / 30  # places in two months within this share of a month (a day and a half) are the same place
SHORTEST_MONTH = np.timedelta64(27, "D")  # spacings under this are never calendar months


class TimeStep:
    """The time between two steps of a FieldSource: a fixed `delta` (timedelta64[us]: 6 h, 1 day), or `months`
    calendar months of `calendar` (1: monthly means, 28 to 31 days apart in the standard calendar, 30 in
    360_day; 12: yearly), counted as xarray's and pandas' month offsets count them (freq="MS": month starts).

    A time is one step of months after another when it lies that many months later at the same place in its
    month: the same day and time of day (month starts, the 15th), the same time before the month's end (month
    ends), or within a day and a half (SHARE) of the same share of the month (mid-month stamps, which vary: the
    middles of CMIP6 Amon's time bounds 1850-01-16T12, 1850-02-15T00, or the 16th and Feb 15). `place` is the
    one the times keep ("start", "end" or "share"): the forecasts' valid times keep it (`after`).
    """

    def __init__(self, delta=None, months: int = 0, calendar: Calendar | None = None, place: str = "start"):
        self.delta = None if delta is None else np.timedelta64(delta).astype(STEPS)
        self.months, self.calendar, self.place = int(months), calendar or Calendar(), place

    @classmethod
    def of(cls, times: np.ndarray, calendar: Calendar, path) -> "TimeStep":
        """The step of `times` (counts of `calendar`): calendar months when some number of months (`follows`)
        spaces more of them than their most common spacing does (as many: when they keep the same day and time,
        or time before the month's end: 360_day's month starts, 30 days apart), else that spacing; ValueError
        naming `path` for a single time."""
        if len(times) < 2:
            raise ValueError(f"{shown_path(path)}: a single time step; expected a time series")
        values, counts = np.unique(np.diff(times), return_counts=True)
        fixed = cls(values[np.argmax(counts)])
        if fixed.delta < SHORTEST_MONTH:
            return fixed
        places = _places(calendar, times)
        apart, numbers = np.unique(np.diff(places[0]), return_counts=True)
        months = int(apart[np.argmax(numbers)])
        if months < 1:
            return fixed
        monthly = cls.in_months(months, calendar, places)
        spaced = monthly.follows_places(places).sum()
        return monthly if spaced > counts.max() or spaced == counts.max() and monthly.place != "share" else fixed

    @classmethod
    def in_months(cls, months: int, calendar: Calendar, places: tuple) -> "TimeStep":
        """A step of `months` calendar months at the place in the month that times keep (their `_places`)."""
        _, early, late, _ = places
        place = "start" if (early == early[0]).all() else "end" if (late == late[0]).all() else "share"
        return cls(months=months, calendar=calendar, place=place)

    def follows(self, times: np.ndarray) -> np.ndarray:
        """(len(times) - 1,) bool: whether each of `times` (counts) lies one step after the one before."""
        if not self.months:
            return np.diff(times) == self.delta
        return self.follows_places(_places(self.calendar, times))

    def follows_places(self, places: tuple) -> np.ndarray:
        """`follows` of times given by their `_places` (a step of months)."""
        number, early, late, share = places
        same = (np.diff(early) == np.timedelta64(0)) | (np.diff(late) == np.timedelta64(0)) | \
            (np.abs(np.diff(share)) <= SHARE)
        return (np.diff(number) == self.months) & same

    def picks(self, times: np.ndarray) -> np.ndarray:
        """Whether each of `times` lies a whole number of steps after the first (what data.time_step samples)."""
        if not self.months:
            return (times - times[0]) % self.delta == np.timedelta64(0)
        number = self.calendar.months(times)[0]
        return (number - number[0]) % self.months == 0

    def after(self, counts, steps) -> np.ndarray:
        """The counts `steps` (integers, broadcast against `counts`) steps after `counts`; in months, at the step's
        place in the month (the same day and time, clipped to the month's end; the same time before its end; or
        the same share of it)."""
        counts, steps = np.asarray(counts, dtype=COUNTS), np.asarray(steps, dtype=np.int64)
        if not self.months:
            return counts + steps * self.delta
        number, early, late, share = _places(self.calendar, counts)
        target = number + steps * self.months
        start, end = self.calendar.month_starts(target), self.calendar.month_starts(target + 1)
        if self.place == "start":
            return np.minimum(start + early, end - np.timedelta64(1, COUNT_UNIT))
        if self.place == "end":
            return np.maximum(end - late, start)
        length = (end - start) / np.timedelta64(1, COUNT_UNIT)
        return start + np.round(share * length).astype(np.int64).astype(STEPS)

    @property
    def text(self) -> str:
        """The step as messages show it: 6h, 0.5h, 1 month, 12 months."""
        if self.months:
            return f"{self.months} month{'s' * (self.months > 1)}"
        return f"{self.delta / np.timedelta64(1, 'h'):g}h"

    @property
    def option(self) -> str:
        """The step as data.time_step names it (`parse_step` reads it back to this step): 6h, 1 month, or in
        microseconds where hours in 6 digits would round it (7 minutes: 420000000us)."""
        if self.months or parse_step(self.text) == self.delta:
            return self.text
        return f"{self.delta // np.timedelta64(1, COUNT_UNIT)}{COUNT_UNIT}"

    @property
    def key(self) -> str:
        """The step in a cache's digest (a fixed one as numpy writes it, as the digests before calendar months)."""
        return f"{self.months} months" if self.months else str(self.delta)

    def leads(self, frames: int) -> tuple[list[float], str]:
        """(lead times of `frames` forecast steps, their unit): hours ("h"), or calendar months ("mo"), as the
        pictures' labels (`convgru.training.images.LeadTime`) and the scores' names (rmse_t2m_6h, rmse_t2m_1mo)
        show them."""
        if self.months:
            return [float(self.months * (k + 1)) for k in range(frames)], "mo"
        hours = float(self.delta / np.timedelta64(1, "h"))
        return [hours * (k + 1) for k in range(frames)], "h"


def _places(calendar: Calendar, counts) -> tuple:
    """(month numbers, time since the month's start, time to the next month's start, share of the month gone)
    of `counts` in `calendar`."""
    counts = np.asarray(counts, dtype=COUNTS)
    number, start, end = calendar.months(counts)
    return number, counts - start, end - counts, (counts - start) / (end - start)


def parse_step(time_step) -> np.timedelta64 | int | None:
    """data.time_step as a timedelta64[us] (`STEPS`: '6h', '1D', '30min') or a number of calendar months (an int:
    '1MS', '3M', '1 month', '12 months'; '1YS', 'year': 12), None for None; OptionError otherwise."""
    if time_step is None:
        return None
    if match := MONTHS.match(str(time_step)):
        months = int(match[1] or 1) * (12 if match[2][0] in "Yy" else 1)
        if months > 0:
            return months
    import pandas as pd
    try:  # a bare number has no unit (pandas would read 6 as 6 ns)
        step = None if str(time_step).replace(".", "", 1).isdigit() else pd.Timedelta(str(time_step)).to_timedelta64()
    except ValueError:
        step = None
    if step is None or step <= np.timedelta64(0):
        raise OptionError("time_step", f"expected a positive duration such as 6h, 1D or 30min, or calendar months "
                          f"such as 1MS, 3MS or 12MS, found {time_step!r}")
    return step.astype(STEPS)


def chosen_step(time_step, found: TimeStep | None, calendar: Calendar) -> TimeStep:
    """The step data.time_step (`parse_step`) names for times whose own step is `found` (None: a single time);
    OptionError unless it is of the same kind (calendar months for times some months apart, durations
    otherwise) and, in months, a multiple of it."""
    given = parse_step(time_step)
    months = isinstance(given, int)
    if found is not None and months != bool(found.months):
        kind = "calendar months such as 1MS or 3MS" if found.months else "a duration such as 6h or 1D"
        raise OptionError("time_step", f"expected {kind} (the files' times are {found.text} apart), found "
                          f"{time_step!r}")
    if not months:
        return TimeStep(given)
    if found is not None and given % found.months:
        raise OptionError("time_step", f"expected a multiple of the files' step ({found.text}), found {time_step!r}")
    return TimeStep(months=given, calendar=calendar, place="start" if found is None else found.place)


class Channel:
    """One channel: a variable and, for a 4-d one, a level (index and value); `name` is e.g. t2m or z500."""

    def __init__(self, variable: str, dims: dict, level_index: int | None = None, level=None):
        self.variable, self.dims, self.level_index, self.level = variable, dims, level_index, level
        self.name = variable if level is None else f"{variable}{level:g}"


class FieldSource:
    """The `variables` (channels in that order; 4-d ones at each of `levels`) of `paths` as one field.

    paths: one Zarr store, or NetCDF files on one grid, each holding some of the variables over some
    time (WeatherBench: a folder of yearly files per variable); the files of a variable are ordered by
    their first time (overlapping times raise ValueError) and every variable must cover the same times.
    The files of a calendar are one time axis (`Calendar.of`: the standard calendar across 1582 too). `step`
    (a `TimeStep`) is the files' own (`TimeStep.of`: calendar months for monthly or yearly times, else the most
    common spacing), or `time_step` (`parse_step`: 6h, or months such as 3MS), which picks every time that lies a
    whole number of steps after the first. Attributes: `times` (the sampled axis, `COUNTS`), `step`, `calendar`,
    `channels`, `names`, `y` and `x` (coordinate values, in the order `read` gives), `grid` (the files' dimension
    names, coordinates and attributes, for writing forecasts back). `align` reads the field on another orientation
    of the same grid (a checkpoint's); `to_file_order` maps arrays back. Pickles without its open files and cache
    (DataLoader workers reopen them).

    Reads follow the files' chunks: a variable chunked along time (several steps per chunk) is read a
    whole chunk at a time, in the files' order, kept in a least-recently-used cache of up to CACHE_BYTES,
    and every window inside it is served from there (a chunk is decoded whole whatever part of it is read);
    a chunk larger than the cache is read as asked. Alignment reorders what `read` returns, after the cache.
    """

    def __init__(self, paths, variables, levels=None, dims=None, time_step=None):
        self._blocks, self._cached = OrderedDict(), 0  # time chunks read: {(file, variable, level, chunk): array}
        self.paths = [Path(p) for p in paths]
        if any(p.is_dir() or p.suffix.lower() in ZARR for p in self.paths) and len(self.paths) > 1:
            raise OptionError("files", f"expected NetCDF files or one Zarr store, found {len(self.paths)} paths with "
                              f"a Zarr store among them: {[str(p) for p in self.paths]}")
        if isinstance(variables, str) or not variables or not all(isinstance(v, str) for v in variables):
            raise OptionError("variables", f"expected a list of variable names such as [t2m], found {variables!r}")
        if len(set(variables)) != len(variables):
            raise OptionError("variables", f"expected each variable once, found {list(variables)}")
        self.variables = list(variables)
        self.levels = None if levels is None else _levels(levels)
        self.given_dims = dict(dims or {})
        unknown = sorted(set(self.given_dims) - set(ROLES))
        if unknown:
            raise OptionError("dims", f"unknown role(s) {unknown}; expected some of {list(ROLES)}")
        self._datasets = None
        datasets = self.datasets
        holders = {name: self._holders(name) for name in self.variables}
        self.channels = [c for name in self.variables
                         for c in self._channels(datasets[holders[name][0]], name, self.paths[holders[name][0]])]
        self.names = [c.name for c in self.channels]
        dims0, first = self.channels[0].dims, datasets[holders[self.variables[0]][0]]
        self.y, self.x = first[dims0["y"]].values, first[dims0["x"]].values
        self.order = None  # (rows, columns) of the files that `read` gives, after `align`; None: the files' order
        spans, self._file, self._local = {}, {}, {}
        decoded = {}  # {(variable, file): (times as decoded, the file's calendar)}
        for name, held in holders.items():
            dims = next(c.dims for c in self.channels if c.variable == name)
            for k in held:
                self._check_grid(datasets[k], name, dims, self.paths[k])
                decoded[name, k] = _times(datasets[k], dims["time"], self.paths[k])
        self.calendar = Calendar.of(list(decoded.values()))
        for name, held in holders.items():
            dims = next(c.dims for c in self.channels if c.variable == name)
            times = {}
            for k in held:
                values, calendar = decoded[name, k]
                counts = self.calendar.counts(values, shown_path(self.paths[k]), calendar)
                times[k] = _increasing(counts, dims["time"], self.paths[k], self.calendar.label)
            held = sorted(held, key=lambda k: times[k][0])
            for a, b in zip(held, held[1:]):
                if times[b][0] <= times[a][-1]:
                    raise ValueError(f"{shown_path(self.paths[b])}: its times ({self.label(times[b][0])} ..) "
                                     f"overlap those of {shown_path(self.paths[a])} (.. {self.label(times[a][-1])}) "
                                     f"for {name!r}; expected files that follow each other in time")
            spans[name] = np.concatenate([times[k] for k in held])
            self._file[name] = np.concatenate([np.full(len(times[k]), k) for k in held])
            self._local[name] = np.concatenate([np.arange(len(times[k])) for k in held])
            if not np.array_equal(spans[name], spans[self.variables[0]]):
                first = spans[self.variables[0]]
                raise ValueError(f"variable {name!r} covers {len(spans[name])} times ({self.label(spans[name][0])} .. "
                                 f"{self.label(spans[name][-1])}), {self.variables[0]!r} {len(first)} "
                                 f"({self.label(first[0])} .. {self.label(first[-1])}); expected every "
                                 "variable of data.variables at the same times")
        all_times = spans[self.variables[0]]
        single = time_step is not None and len(all_times) < 2  # data.time_step names the step of a single time
        found = None if single else TimeStep.of(all_times, self.calendar, self.paths[0])
        self.step = found if time_step is None else chosen_step(time_step, found, self.calendar)
        keep = self.step.picks(all_times)
        self.times = all_times[keep]
        self._file = {name: index[keep] for name, index in self._file.items()}
        self._local = {name: index[keep] for name, index in self._local.items()}
        if len(self.times) > 1 and not self.step.months and np.diff(self.times).min() > self.step.delta:
            raise OptionError("time_step", f"{time_step} is finer than the data's spacing "
                              f"({TimeStep(np.diff(self.times).min()).text}); expected a multiple of it")
        self.grid = self._grid({name: datasets[held[0]] for name, held in holders.items()})
        self._check_latitudes(self.paths[holders[self.variables[0]][0]])

    def label(self, count) -> str:
        """A time of `times` as a date of the files' calendar (`Calendar.label`); as numpy shows it in the standard
        calendar."""
        return str(count) if self.calendar is None or self.calendar.epoch is None else self.calendar.label(count)

    @property
    def datasets(self) -> list:
        if self._datasets is None:
            self._datasets = [open_dataset(p) for p in self.paths]
        return self._datasets

    def __getstate__(self):
        return {**self.__dict__, "_datasets": None, "_blocks": OrderedDict(), "_cached": 0}

    def time_chunk(self, k: int, channel: "Channel") -> int:
        """Steps per chunk along time of `channel`'s variable in file `k` (1: not chunked along time, or unknown)."""
        variable = self.datasets[k].variables[channel.variable]
        chunks = variable.encoding.get("chunks") or variable.encoding.get("chunksizes")
        return int(chunks[variable.dims.index(channel.dims["time"])]) if chunks else 1

    def longest_time_chunk(self) -> int:
        """The most steps in one chunk along time, over the channels and files."""
        return max(self.time_chunk(k, c) for c in self.channels for k in np.unique(self._file[c.variable]))

    def _block(self, k: int, channel: "Channel", chunk: int, length: int) -> np.ndarray:
        """Time chunk `chunk` (`length` steps) of `channel` in file `k`, (steps, H, W) float32, from the cache."""
        key = (k, channel.variable, channel.level_index, chunk)
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return self._blocks[key]
        dims = channel.dims
        indexers = {dims["time"]: slice(chunk * length, (chunk + 1) * length)}
        if channel.level_index is not None:
            indexers[dims["level"]] = channel.level_index
        variable = self.datasets[k].variables[channel.variable]
        block = variable.isel(indexers).transpose(dims["time"], dims["y"], dims["x"]).values.astype(np.float32)
        self._blocks[key] = block
        self._cached += block.nbytes
        while self._cached > CACHE_BYTES and len(self._blocks) > 1:
            self._cached -= self._blocks.popitem(last=False)[1].nbytes
        return block

    def _holders(self, name: str) -> list[int]:
        """The numbers of the files that hold variable `name`; ValueError naming the files when none does."""
        held = [k for k, ds in enumerate(self.datasets) if name in ds.data_vars]
        if not held:
            found = sorted({str(v) for ds in self.datasets for v in ds.data_vars})
            more = f" (and {len(self.paths) - 1} more files)" if len(self.paths) > 1 else ""
            raise ValueError(f"{shown_path(self.paths[0])}{more}: no variable {name!r} (option data.variables); "
                             f"found {found}")
        return held

    def _check_grid(self, dataset, name: str, dims: dict, path) -> None:
        """ValueError naming `path` unless variable `name` lies on the grid of the first variable."""
        sizes = dict(dataset[name].sizes)
        if (sizes.get(dims["y"]), sizes.get(dims["x"])) != (len(self.y), len(self.x)):
            raise ValueError(f"{shown_path(path)}: variable {name!r} is on a {sizes} grid; expected "
                             f"{len(self.y)}x{len(self.x)} like {self.variables[0]!r} in {shown_path(self.paths[0])}")
        for role, values in (("y", self.y), ("x", self.x)):
            if dims[role] in dataset.coords and not np.array_equal(dataset[dims[role]].values, values):
                raise ValueError(f"{shown_path(path)}: the {dims[role]} coordinates of {name!r} differ from those of "
                                 f"{self.variables[0]!r} in {shown_path(self.paths[0])}; expected files on one grid")

    def _check_latitudes(self, path) -> None:
        """ValueError naming `path` (the first variable's file) unless its latitudes, when y is a latitude, can
        weight the scores (`latitude_weights`: within [-90, 90], not all at a pole)."""
        from convgru.domain.fields import latitude_weights  # torch and torchmetrics: only for latitudes

        if self.latitudes is not None:
            try:
                latitude_weights(self.latitudes)
            except OptionError as error:
                raise ValueError(f"{shown_path(path)}: its latitude coordinate {shown_name(self.grid['y'])}: "
                                 f"{error.message}") from None

    def _channels(self, dataset, name: str, path) -> list[Channel]:
        """The channels of variable `name`: itself, or one per level of `levels` for a 4-d variable."""
        dims = find_dims(dataset, name, path, self.given_dims)
        if "level" not in dims:
            return [Channel(name, dims)]
        values = dataset[dims["level"]].values if dims["level"] in dataset.coords else \
            np.arange(dataset.sizes[dims["level"]])
        if self.levels is None:
            raise OptionError("levels", f"variable {name!r} of {shown_path(path)} has levels {values.tolist()} along "
                              f"{dims['level']!r}; choose some, e.g. data.levels=[{values[0]:g}]")
        channels = []
        for level in self.levels:
            index = np.flatnonzero(np.isclose(values.astype(float), level))
            if not len(index):
                raise OptionError("levels", f"{level:g} is not a level of {name!r} in {shown_path(path)}; found "
                                  f"{values.tolist()}")
            channels.append(Channel(name, dims, int(index[0]), level))
        return channels

    def _grid(self, sources: dict) -> dict:
        """What a forecast written back needs of the input: dimension names, coordinates and attributes
        (`sources`: a dataset holding each variable)."""
        dims, first = self.channels[0].dims, sources[self.variables[0]]
        coords = {role: {"name": dims[role], "values": first[dims[role]].values,
                         "attrs": dict(first[dims[role]].attrs)} for role in ("y", "x") if dims[role] in first}
        variables = {}
        for c in self.channels:
            dataset = sources[c.variable]
            entry = variables.setdefault(c.variable, {"attrs": dict(dataset[c.variable].attrs), "levels": []})
            if c.level is not None:
                entry["level_dim"] = c.dims["level"]
                entry["level_attrs"] = dict(dataset[c.dims["level"]].attrs) if c.dims["level"] in dataset else {}
                entry["levels"].append(c.level)
        return {"y": dims["y"], "x": dims["x"], "time": dims["time"], "coords": coords, "variables": variables,
                "attrs": dict(first.attrs)}

    @property
    def units(self) -> list[str]:
        return [str(self.grid["variables"][c.variable]["attrs"].get("units", "")) for c in self.channels]

    @property
    def latitudes(self) -> np.ndarray | None:
        """The y coordinate in degrees (in the order `read` gives) when it is a latitude (CF standard_name or
        units, or its name), else None."""
        return np.asarray(self.y, dtype=np.float64) if _is_degrees(self.grid["coords"].get("y"), "y") else None

    def plain_grid(self) -> dict:
        """The grid `read` gives, as plain data for a checkpoint's data config (data.grid): {y, x: dimension
        names, y_values, x_values: coordinate lists, longitude: whether x is a longitude}."""
        return {"y": self.grid["y"], "x": self.grid["x"], "y_values": np.asarray(self.y, np.float64).tolist(),
                "x_values": np.asarray(self.x, np.float64).tolist(),
                "longitude": _is_degrees(self.grid["coords"].get("x"), "x")}

    def align(self, grid) -> tuple[bool, str] | None:
        """Read the field on `grid` (`plain_grid()` of the training files, a checkpoint's data.grid): the same
        coordinates in another order, or longitudes in the other convention (-180..180 / 0..360), are
        reordered (`read` then gives the training grid's order, `to_file_order` maps back). Returns None when
        the grids are the same, else (is_warning, one line saying what was done): a grid of another size is
        read as it is (the forecast may be poor). ValueError naming both grids for the same size with other
        coordinates."""
        y, x = np.asarray(grid["y_values"], np.float64), np.asarray(grid["x_values"], np.float64)
        mine, theirs = self._summary(self.y, self.x, self.grid["y"], self.grid["x"]), \
            self._summary(y, x, grid["y"], grid["x"])
        if (len(self.y), len(self.x)) != (len(y), len(x)):
            return True, (f"{shown_path(self.paths[0])}: a {len(self.y)}x{len(self.x)} grid ({mine}); the checkpoint "
                          f"was trained on {len(y)}x{len(x)} ({theirs}): read as it is, the forecast may be poor")
        rows = _match(self.y, y)
        columns = _match(self.x, x, 360.0 if grid.get("longitude") and
                         _is_degrees(self.grid["coords"].get("x"), "x") else None)
        if rows is None or columns is None:
            raise ValueError(f"{shown_path(self.paths[0])}: its grid ({mine}) is not the grid the checkpoint was "
                             f"trained on ({theirs}); expected the same coordinates (in any order, longitudes "
                             "-180..180 or 0..360), or regrid the input")
        same = [(r, (k == np.arange(len(k))).all()) for r, k in (("y", rows), ("x", columns))]
        if all(done for _, done in same):
            return None
        self.order = rows, columns
        self.y, self.x = self.y[rows], self.x[columns]
        return False, (f"{shown_path(self.paths[0])}: aligned to the grid the checkpoint was trained on "
                       f"({theirs}) from {mine}; the forecast is written on the input's grid")

    @staticmethod
    def _summary(y, x, y_name: str, x_name: str) -> str:
        return f"{shown_name(y_name)} {_axis(y)}, {shown_name(x_name)} {_axis(x)}"

    def to_file_order(self, array: np.ndarray) -> np.ndarray:
        """`array` (..., H, W) in the order `read` gives, in the files' order (the inverse of `align`)."""
        if self.order is None:
            return array
        rows, columns = self.order
        return array[..., np.argsort(rows), :][..., np.argsort(columns)]

    def __len__(self) -> int:
        return len(self.times)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Sampled steps start..stop - 1 as float32 (stop - start, C, H, W) in the files' units (NaN where
        missing); reads only those steps, or the whole time chunks that hold them (see the class)."""
        out = np.empty((stop - start, len(self.channels), len(self.y), len(self.x)), dtype=np.float32)
        for c, channel in enumerate(self.channels):
            files = self._file[channel.variable][start:stop]
            local = self._local[channel.variable][start:stop]
            dims = channel.dims
            for k in np.unique(files):
                rows = np.flatnonzero(files == k)
                index = local[rows]
                length = self.time_chunk(k, channel)
                if 1 < length and length * out[0, 0].nbytes <= CACHE_BYTES:
                    for chunk in np.unique(index // length):
                        inside = index // length == chunk
                        out[rows[inside], c] = self._block(k, channel, int(chunk), length)[index[inside] % length]
                    continue
                steps = np.diff(index)
                if len(index) == 1 or (steps == steps[0]).all() and steps[0] > 0:
                    picked = slice(int(index[0]), int(index[-1]) + 1, int(steps[0]) if len(index) > 1 else 1)
                else:
                    picked = index
                indexers = {dims["time"]: picked}
                if channel.level_index is not None:
                    indexers[dims["level"]] = channel.level_index
                variable = self.datasets[k].variables[channel.variable]
                out[rows, c] = variable.isel(indexers).transpose(dims["time"], dims["y"], dims["x"]).values
        if self.order is not None:  # one copy, in the training grid's order
            out = out[:, :, self.order[0][:, None], self.order[1][None, :]]
        return out


def _is_degrees(coord: dict | None, role: str) -> bool:
    """Whether `coord` (an entry of FieldSource.grid["coords"]) is a latitude (`role` y) or longitude (x) in
    degrees: its CF standard_name or units, or its name."""
    if coord is None:
        return False
    what, way, names = ("latitude", "north", ("lat", "latitude")) if role == "y" else \
        ("longitude", "east", ("lon", "longitude"))
    units, name = str(coord["attrs"].get("units", "")), coord["name"].lower()
    return coord["attrs"].get("standard_name") == what or units.startswith("degree") and way in units or name in names


def _match(found: np.ndarray, wanted: np.ndarray, period: float | None = None) -> np.ndarray | None:
    """Indices k with found[k] == wanted (to 1e-6, modulo `period` if given: longitudes), None when `found`
    holds other values."""
    keys = []
    for values in (found, wanted):
        values = np.round(np.asarray(values, np.float64), 6)
        keys.append(np.round(values % period, 6) % period if period else values)
    if keys[0].shape != keys[1].shape:
        return None
    mine, theirs = np.argsort(keys[0], kind="stable"), np.argsort(keys[1], kind="stable")
    if not np.allclose(keys[0][mine], keys[1][theirs], rtol=0, atol=1e-5):
        return None
    index = np.empty(len(mine), np.int64)
    index[theirs] = mine
    return index


def _axis(values) -> str:
    """A coordinate in short: first..last, the step when regular, and the count."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return f"{values[0]:g} (1)" if len(values) else "(none)"
    steps = np.diff(values)
    step = f" step {steps[0]:g}" if np.allclose(steps, steps[0], rtol=1e-4) else " irregular"
    return f"{values[0]:g}..{values[-1]:g}{step} ({len(values)})"


def _levels(levels) -> list[float]:
    try:
        values = [float(v) for v in ([levels] if isinstance(levels, (int, float)) else levels)]
    except (TypeError, ValueError):
        values = []
    if not values or isinstance(levels, str):
        raise OptionError("levels", f"expected null or a list of levels such as [500, 850], found {levels!r}")
    return values


def window_starts(times: np.ndarray, step: TimeStep, length: int, start=None, end=None,
                  stride: int = 1) -> np.ndarray:
    """First indices of the windows of `length` consecutive steps of `times` (each one `step` after the one
    before, `TimeStep.follows`: calendar months too; a window that would cross a gap is skipped, never stitched)
    lying wholly within [start, end] (counts, None: open), every `stride`-th of them."""
    count = len(times) - length + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    regular = np.concatenate([[0], np.cumsum(step.follows(times))])  # regular[i]: regular gaps before i
    first = np.arange(count)
    ok = regular[first + length - 1] - regular[first] == length - 1
    if start is not None:
        ok &= times[first] >= start
    if end is not None:
        ok &= times[first + length - 1] <= end
    return first[ok][::stride].astype(np.int64)


def forecast_dataset(grid: dict, names: list[str], channels: list[Channel], forecasts: np.ndarray,
                     init_times: np.ndarray, step: TimeStep, calendar: Calendar | None = None):
    """An xarray Dataset of `forecasts` (N, T, C, H, W) in physical units: each variable with its input's name and
    attributes (4-d ones with their level dimension, one entry per chosen level), dimensions init_time
    (`init_times`, the time of the last input step), lead_time (step, 2 step, ...: durations, or whole calendar
    months (integers) for a step in months), the grid's y and x with their coordinates, and a coordinate `time`,
    the valid time: init_time + lead_time (`TimeStep.after`: in months, at the place in the month the input's
    times keep). Times are counts of `calendar` (a FieldSource's), written as dates of that calendar (None: the
    standard one)."""
    xr = xarray()
    n, frames = forecasts.shape[:2]
    ahead = np.arange(1, frames + 1)
    if step.months:  # CF's unit "months" is a twelfth of a year, no calendar month: a count of them instead
        lead = ("lead_time", ahead * step.months, {"long_name": "forecast lead time in calendar months"})
    else:
        lead = ("lead_time", (ahead * step.delta).astype(STEPS), {"long_name": "forecast lead time"})
    init = np.asarray(init_times, dtype=COUNTS)
    calendar = calendar or Calendar()
    coords = {"init_time": ("init_time", calendar.dates(init),
                            {"long_name": "forecast initialization time (last input step)"}),
              "lead_time": lead,
              "time": (("init_time", "lead_time"), calendar.dates(step.after(init[:, None], ahead[None, :])),
                       {"long_name": "valid time"})}
    for role in ("y", "x"):
        coord = grid["coords"].get(role)
        if coord is not None:
            coords[coord["name"]] = (coord["name"], coord["values"], coord["attrs"])
    data = {}
    for variable, entry in grid["variables"].items():
        indices = [c for c, channel in enumerate(channels) if channel.variable == variable]
        values = forecasts[:, :, indices]  # (N, T, levels or 1, H, W)
        if entry["levels"]:
            level = entry["level_dim"]
            coords[level] = (level, np.asarray(entry["levels"]), entry["level_attrs"])
            data[variable] = (("init_time", "lead_time", level, grid["y"], grid["x"]), values, entry["attrs"])
        else:
            data[variable] = (("init_time", "lead_time", grid["y"], grid["x"]), values[:, :, 0], entry["attrs"])
    attrs = {**{k: v for k, v in grid["attrs"].items() if isinstance(v, (str, int, float))},
             "source": "convgru forecast", "convgru_channels": ", ".join(names)}
    dataset = xr.Dataset(data, coords=coords, attrs=attrs)
    if calendar.epoch is not None:
        for name in ("init_time", "time"):
            dataset[name].encoding["calendar"] = calendar.name
    for name in dataset.variables:  # the input's encoding (fill values, packing) is not the forecast's
        dataset[name].attrs = {k: v for k, v in dataset[name].attrs.items()
                               if k not in ("_FillValue", "missing_value", "scale_factor", "add_offset")}
    return dataset


# the names NetCDF takes for variables, dimensions and attributes: netCDF-C's NC_check_name (libdispatch/dstring.c;
# the NetCDF User Guide, "Object names")
NETCDF_NAMES = ("names that start with a letter, a digit or '_', hold no '/' or control character, do not end in a "
                "space and take at most 256 bytes")
NETCDF_NAME_BYTES = 256  # NC_MAX_NAME


def netcdf_name_fault(name) -> str | None:
    """What makes `name` one that NetCDF refuses (`NETCDF_NAMES`), None if it takes it."""
    if not isinstance(name, str) or not name:
        return "not a name" if not isinstance(name, str) else "empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not UTF-8"
    if "/" in name:
        return "a '/'"
    if name[0].isascii() and not (name[0].isalnum() or name[0] == "_"):
        return f"it starts with {name[0]!r}"
    control = next((c for c in name if c < " " or c == "\x7f"), None)
    if control is not None:
        return f"a control character {control!r}"
    if name[-1] == " ":
        return "it ends in a space"
    if size > NETCDF_NAME_BYTES:
        return f"{size} bytes"
    return None


def check_netcdf_names(dataset, path, what: str = "forecast file") -> None:
    """ValueError naming `what` `path` and the first name of `dataset` (a dimension, variable, coordinate or
    attribute: all come from the input) that NetCDF refuses (`netcdf_name_fault`), before anything is written."""
    named = [("dimension", name, "") for name in dataset.dims]
    for name, variable in dataset.variables.items():
        named += [("coordinate" if name in dataset.coords else "variable", name, ""),
                  *(("attribute", key, f" of {shown(name)}") for key in variable.attrs)]
    named += [("global attribute", key, "") for key in dataset.attrs]
    for kind, name, of in named:
        fault = netcdf_name_fault(name)
        if fault:
            path = Path(path)
            raise ValueError(f"cannot write the {what} {shown_name(path.name)} in {shown_path(path.parent)}: NetCDF "
                             f"refuses the input's {kind} name {shown(name)}{of} ({fault}); expected {NETCDF_NAMES}")


def check_forecast_names(source: FieldSource, path, what: str = "forecast file") -> None:
    """`check_netcdf_names` of a forecast of `source` (`forecast_dataset`) before it is made."""
    empty = np.zeros((0, 1, len(source.channels), len(source.y), len(source.x)), np.float32)
    check_netcdf_names(forecast_dataset(source.grid, source.names, source.channels, empty, source.times[:0],
                                        source.step, source.calendar), path, what)


def write_forecasts(path, dataset, what: str = "forecast file") -> None:
    """Write `dataset` as NetCDF at `path` with `convgru.atomic.atomic_write` (never a partial file, an existing
    one untouched). A name that NetCDF refuses is a ValueError before anything is written (`check_netcdf_names`).
    A write that a full disk, a quota or `ulimit -f` stops (`convgru.atomic.write_stopped`; netCDF4 says only
    `NetCDF: HDF error`) raises one OSError naming `what` and `path` (`convgru.atomic.failed_write_error`); any
    other error of the writer is a ValueError naming them with the writer's words."""
    from convgru.atomic import atomic_write, failed_write_error, write_stopped

    path = Path(path)
    check_netcdf_names(dataset, path, what)
    needed = int(sum(v.nbytes for v in dataset.variables.values()))
    with atomic_write(path, what, needed) as tmp:
        try:
            dataset.to_netcdf(tmp)
        except (OSError, RuntimeError, TypeError, ValueError) as error:  # netCDF4's, HDF5's and xarray's
            cause = str(error).splitlines()[0] if str(error) else type(error).__name__
            if write_stopped(error):
                raise failed_write_error(what, path, needed, cause) from None
            if isinstance(error, OSError):
                raise
            raise ValueError(f"cannot write the {what} {shown_name(path.name)} in {shown_path(path.parent)}: the "
                             f"NetCDF writer says {shown(cause, None)}") from None
