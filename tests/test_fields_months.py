"""data=fields on monthly and yearly time axes (steps of calendar months, 28 to 31 days apart) in every CF
calendar, and on a standard-calendar run across 1582-10-15 split into files xarray decodes differently. Tiny
NetCDF files; the shared untrained `fields_checkpoint` for predict."""

import datetime as dt

import numpy as np
import pytest

pytest.importorskip("xarray")
pytest.importorskip("cftime")

import xarray as xr  # noqa: E402

from convgru._checks import OptionError  # noqa: E402
from convgru.data import FieldDataModule  # noqa: E402
from convgru.data.fields import FieldSource, forecast_dataset, open_dataset, window_starts  # noqa: E402
from fields_data import LAT, LON  # noqa: E402
from test_fields_inputs import open_cftime, run_predict  # noqa: E402

CALENDARS = ["standard", "proleptic_gregorian", "julian", "noleap", "all_leap", "360_day"]
# where in its month each time lies: month starts (ERA5's monthly means), the middles of the months' time bounds
# (CMIP6 Amon: 1850-01-16T12, 1850-02-15T00), the 15th, the 16th but Feb 15 (00 h), the months' last days
PLACES = ["start", "middle", "fifteenth", "sixteenth", "end"]


def stamps(calendar: str, place: str, months: int, first: str = "2000-01-01", every: str = "MS") -> list:
    """`months` times (cftime dates) one calendar month apart (`every` 12MS: a year) at `place` in their months."""
    starts = xr.date_range(first, periods=months + 1, freq=every, calendar=calendar, use_cftime=True)
    if place == "start":
        return list(starts[:-1])
    if place == "middle":
        return [a + (b - a) / 2 for a, b in zip(starts[:-1], starts[1:])]
    if place == "end":
        return [b - dt.timedelta(days=1) for b in starts[1:]]
    if place == "fifteenth":
        return [a + dt.timedelta(days=14) for a in starts[:-1]]
    return [a + dt.timedelta(days=14 if a.month == 2 else 15) for a in starts[:-1]]  # sixteenth


def write(path, when: list, calendar: str, grid=(LAT[:2], LON[:3]), since: str | None = None, first: int = 0):
    """t2m = first, first + 1, ... at the times `when` (cftime dates of `calendar`) on a small grid, written as
    NetCDF at `path` in hours since `since` (default: January 1 of the first time's year)."""
    lat, lon = grid
    values = first + np.arange(len(when), dtype=np.float32)[:, None, None] + np.zeros((1, len(lat), len(lon)),
                                                                                      np.float32)
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": ("time", np.array(when, dtype=object)),
                              "lat": ("lat", lat, {"units": "degrees_north"}),
                              "lon": ("lon", lon, {"units": "degrees_east"})})
    data.time.encoding.update(calendar=calendar, units=f"hours since {since or f'{when[0].year:04d}-01-01'}")
    data.to_netcdf(path)
    return path


def shown(source, counts) -> list[str]:
    """`counts` of `source` as ISO dates to the minute."""
    return [d.isoformat()[:16] if hasattr(d, "isoformat") else str(d)[:16] for d in source.calendar.dates(counts)]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("calendar", CALENDARS)
def test_monthly_times_keep_every_month_and_split_at_a_missing_one(calendar, place, tmp_path):
    when = stamps(calendar, place, 26)
    source = FieldSource([write(tmp_path / "monthly.nc", when[:24], calendar)], ["t2m"])
    assert source.step.months == 1 and source.step.text == "1 month" and len(source) == 24  # no month dropped
    assert len(window_starts(source.times, source.step, 5)) == 20
    # the next two months, at the same place in them
    after = source.step.after(source.times[-1], np.array([1, 2]))
    if place == "sixteenth":  # mid-month days that vary: the same share of the month, within a day
        expected = source.calendar.counts(np.array(when[24:], dtype=object), "the next months")
        assert (np.abs(after - expected) <= np.timedelta64(1, "D")).all()
    else:
        assert shown(source, after) == [d.isoformat()[:16] for d in when[24:]]
    # a missing month (the 11th) splits the windows: none crosses it
    gap = FieldSource([write(tmp_path / "gap.nc", when[:10] + when[11:24], calendar)], ["t2m"])
    assert gap.step.months == 1 and len(gap) == 23
    starts = window_starts(gap.times, gap.step, 5)
    assert starts.tolist() == list(range(0, 6)) + list(range(10, 19))


@pytest.mark.parametrize("calendar", ["standard", "noleap", "360_day"])
def test_yearly_times_are_steps_of_twelve_months(calendar, tmp_path):
    """Annual means stamped at the middles of their years (Jul 2 12 h, or 00 h in leap years)."""
    when = stamps(calendar, "middle", 9, first="2000-01-01", every="12MS")
    source = FieldSource([write(tmp_path / "yearly.nc", when[:8], calendar)], ["t2m"])
    assert source.step.months == 12 and source.step.text == "12 months" and len(source) == 8
    assert len(window_starts(source.times, source.step, 8)) == 1
    assert source.step.leads(2) == ([12.0, 24.0], "mo")


@pytest.mark.parametrize("step,option", [(np.timedelta64(6, "h"), "6h"), (np.timedelta64(90, "s"), "0.025h"),
                                         (np.timedelta64(7, "m"), "420000000us"), (12, "12 months")])
def test_a_step_as_the_option_that_names_it(step, option):
    """TimeStep.option: what a checkpoint stores as data.time_step (the files' own step); parse_step reads it back."""
    from convgru.data.fields import TimeStep, parse_step

    found = TimeStep(months=step) if isinstance(step, int) else TimeStep(step)
    assert found.option == option
    assert parse_step(option) == (step if isinstance(step, int) else step.astype("timedelta64[us]"))


def test_time_step_in_calendar_months(tmp_path):
    path = write(tmp_path / "monthly.nc", stamps("noleap", "middle", 24), "noleap")
    quarterly = FieldSource([path], ["t2m"], time_step="3MS")
    assert quarterly.step.months == 3 and len(quarterly) == 8
    assert shown(quarterly, quarterly.times[:2]) == ["2000-01-16T12:00", "2000-04-16T00:00"]
    assert FieldSource([path], ["t2m"], time_step="1YS").step.months == 12
    assert FieldSource([path], ["t2m"], time_step="2 months").step.months == 2
    with pytest.raises(OptionError, match=r"time_step: expected calendar months such as 1MS or 3MS \(the files' "
                                          r"times are 1 month apart\), found '30D'"):
        FieldSource([path], ["t2m"], time_step="30D")
    yearly = write(tmp_path / "yearly.nc", stamps("noleap", "start", 4, every="12MS"), "noleap")
    with pytest.raises(OptionError, match=r"time_step: expected a multiple of the files' step \(12 months\), "
                                          r"found '18MS'"):
        FieldSource([yearly], ["t2m"], time_step="18MS")
    hourly = write(tmp_path / "hourly.nc", list(xr.date_range("2000-01-01", periods=8, freq="6h",
                                                              calendar="noleap", use_cftime=True)), "noleap")
    with pytest.raises(OptionError, match=r"time_step: expected a duration such as 6h or 1D \(the files' times "
                                          r"are 6h apart\), found '1MS'"):
        FieldSource([hourly], ["t2m"], time_step="1MS")


def test_thirty_day_steps_of_the_standard_calendar_stay_a_duration(tmp_path):
    """Every 30 days is a duration in the standard calendar: the times drift through their months."""
    when = list(xr.date_range("2000-01-15", periods=30, freq="30D", calendar="standard", use_cftime=True))
    source = FieldSource([write(tmp_path / "thirty.nc", when, "standard")], ["t2m"])
    assert not source.step.months and source.step.text == "720h"
    assert len(window_starts(source.times, source.step, 30)) == 1


@pytest.mark.parametrize("calendar", ["standard", "360_day"])
def test_monthly_fields_are_scored_and_forecast_in_months(calendar, fields_checkpoint, tmp_path, capsys):
    from convgru.training.fields import FieldTestScores
    from convgru.training.images import LeadTime
    from convgru.training.report import field_table, per_lead_key

    when = stamps(calendar, "middle", 30)
    path = write(tmp_path / "amon.nc", when[:28], calendar, grid=(LAT, LON))
    dm = FieldDataModule(files=[str(path)], variables=["t2m"], frames_in=3, frames_out=2, num_workers=0,
                         train_time=["2000-01", "2000-12"], val_time=["2001-01", "2001-08"],
                         test_time=["2001-09", "2002-04"], cache_dir=tmp_path / "cache")
    dm.setup("fit")
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [8, 4, 4]  # every month kept
    scoring = dm.scoring()
    assert (scoring["lead_times"], scoring["lead_unit"]) == ([1.0, 2.0], "mo")
    # ACC's climatology is by calendar month (t2m is the month's number since 2000-01: month m's mean is m)
    assert scoring["note"].startswith("ACC against the climatology of 2000-01-16 ") and \
        scoring["note"].endswith(" by calendar month")
    np.testing.assert_array_equal(scoring["climatology"][:, 0, 0, 0], np.arange(12, dtype=np.float32))
    x, y, rows = dm.datasets["test"][0]  # inputs 2001-09 .. 2001-11, targets 2001-12 and 2002-01
    assert rows.tolist() == [11, 0]
    stored = dm.stored_climatology()
    assert stored["by"] == "month" and stored["shape"] == [12, 1, 8, 16]
    again = FieldDataModule(files=[str(path)], variables=["t2m"], frames_in=3, frames_out=2, num_workers=0,
                            normalization=dm.normalization, climatology=stored, grid=dm.grid,
                            cache_dir=tmp_path / "cache")
    assert again.climatology()["by"] == "month" and again.climatology_note == scoring["note"]
    cached = FieldDataModule(files=[str(path)], variables=["t2m"], frames_in=3, frames_out=2, num_workers=0,
                             train_time=["2000-01", "2000-12"], cache_dir=tmp_path / "cache")
    assert cached.stats_path().is_file() and cached.climatology()["by"] == "month"  # from the statistics cache
    short = FieldDataModule(files=[str(path)], variables=["t2m"], frames_in=3, frames_out=2, num_workers=0,
                            train_time=["2000-01", "2000-06"], cache_dir=tmp_path / "cache")
    short.setup("fit")
    assert short.climatology() is None and "holds 6 of the 12 calendar months" in short.climatology_note
    lead = LeadTime(*dm.source.step.leads(2))
    assert lead.inputs(3) == ["-2 mo", "-1 mo", "0 mo"] and lead.leads(2) == ["+1 mo", "+2 mo"]
    scores = FieldTestScores(scoring, 2)
    scores.update(x[None], y[None].nan_to_num(0.5).clamp(0, 1), y[None], rows[None])
    summary = {f"test/{k}": float(v) for k, v in scores.results()[0].items()}
    assert {"test/rmse_t2m_1mo", "test/acc_t2m_2mo", "test/climatology/rmse_t2m_1mo"} <= set(summary)
    assert per_lead_key("test/rmse_t2m_2mo")
    assert [line.split()[0] for line in field_table(summary, "test/").splitlines()[-3:]] == ["1mo", "2mo", "all"]

    # predict: the forecast's lead times are calendar months, its valid times the next months' middles
    status, out, err = run_predict([fields_checkpoint, path, tmp_path / "out.nc", "--png", tmp_path / "out.png"],
                                   capsys)
    assert status == 0 and err == "" and "(2 lead times of 1 month from 2002-04-16T00:00)" in out
    assert (tmp_path / "out.png").stat().st_size > 0
    with open_cftime(tmp_path / "out.nc") as back:
        assert back.lead_time.values.tolist() == [1, 2] and "calendar months" in back.lead_time.attrs["long_name"]
        assert [d.isoformat()[:16] for d in back.time.values[0]] == [d.isoformat()[:16] for d in when[28:]]
    status, out, err = run_predict([fields_checkpoint, path, tmp_path / "march.nc", "--init", "2002-03"], capsys)
    assert status == 0 and f"from {when[26].isoformat()[:16]})" in out  # the month's step


# --- the standard calendar across 1582-10-15 in several files --------------------------------------------

def reform_files(folder, late_calendar: str = "standard") -> list:
    """6-hourly times of the standard calendar from 1582-10-03 to 1582-10-16 (10-04 is followed by 10-15) in two
    files: xarray decodes the first (before 1582-10-15) to cftime dates, the second to datetime64; the second is
    written in `late_calendar`."""
    when = list(xr.date_range("1582-10-03", periods=8, freq="6h", calendar="standard", use_cftime=True))
    late = list(xr.date_range("1582-10-15", periods=8, freq="6h", calendar=late_calendar, use_cftime=True))
    return [write(folder / "a_early.nc", when, "standard", grid=(LAT, LON)),
            write(folder / "b_late.nc", late, late_calendar, grid=(LAT, LON), since="1582-10-15", first=8)]


def test_a_standard_calendar_run_across_1582_is_one_time_axis(tmp_path):
    paths = reform_files(tmp_path)
    kinds = [open_dataset(p).time.dtype for p in paths]  # the mix xarray gives: cftime dates, then datetime64
    assert kinds[0] == np.dtype(object) and np.issubdtype(kinds[1], np.datetime64)
    for order in (paths, paths[::-1]):
        source = FieldSource(order, ["t2m"])
        assert source.step.delta == np.timedelta64(6, "h") and len(source) == 16
        assert [source.label(t) for t in source.times[7:9]] == ["1582-10-04T18:00:00", "1582-10-15T00:00:00"]
        assert len(window_starts(source.times, source.step, 16)) == 1
        assert source.read(0, 16)[:, 0, 0, 0].tolist() == list(range(16))
    dataset = forecast_dataset(source.grid, source.names, source.channels, np.zeros((1, 2, 1, 8, 16), np.float32),
                               source.times[7:8], source.step, source.calendar)
    assert [d.isoformat() for d in dataset.time.values[0]] == ["1582-10-15T00:00:00", "1582-10-15T06:00:00"]


def test_a_true_calendar_mix_across_1582_is_refused(tmp_path):
    paths = reform_files(tmp_path, "proleptic_gregorian")
    with pytest.raises(ValueError, match=r"b_late.nc: times in the calendar proleptic_gregorian, the first file's are "
                                         r"standard; expected files of one calendar"):
        FieldSource(paths, ["t2m"])


@pytest.mark.parametrize("calendar", ["standard", "noleap", "360_day"])
def test_times_in_cf_months_are_read_only_where_they_are_calendar_months(calendar, tmp_path):
    """CF's unit "months" is a twelfth of a year: xarray decodes "months since" only in 360_day, where every month is
    30 days; elsewhere the file is refused in one line saying why and what to write instead."""
    months = {"units": "months since 2000-01-01", "calendar": calendar}
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), np.zeros((4, 2, 3), np.float32))},
                      coords={"time": ("time", np.arange(4), months),
                              "lat": ("lat", LAT[:2], {"units": "degrees_north"}),
                              "lon": ("lon", LON[:3], {"units": "degrees_east"})})
    data.to_netcdf(tmp_path / "months.nc")
    if calendar == "360_day":
        source = FieldSource([tmp_path / "months.nc"], ["t2m"])
        assert source.step.months == 1 and source.label(source.times[-1]) == "2000-04-01T00:00:00"
        return
    with pytest.raises(ValueError, match=rf"months.nc: its times are in months since 2000-01-01 \(the {calendar} "
                                         r"calendar\): CF's months and years are fixed lengths .* expected units such "
                                         r"as 'days since 2000-01-01'"):
        FieldSource([tmp_path / "months.nc"], ["t2m"])
