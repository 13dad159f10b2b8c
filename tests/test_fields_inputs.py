"""data=fields on inputs that are not the training files' twins: another grid orientation (aligned to the
checkpoint's grid, refused or warned), the wrong kind of input for a checkpoint, climate-model calendars,
and NetCDF writes that fail on the way. Tiny files and the shared untrained `fields_checkpoint`."""

import errno
import logging
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("xarray")
pytest.importorskip("cftime")

import xarray as xr  # noqa: E402

from conftest import ROOT  # noqa: E402
from convgru._checks import OptionError  # noqa: E402
from convgru.data import FieldDataModule  # noqa: E402
from convgru.data.fields import FieldSource, forecast_dataset, window_starts, write_forecasts  # noqa: E402
from convgru.deploy import predict  # noqa: E402
from fields_data import GRID, LAT, LON, fields, seasonal, write_checkpoint  # noqa: E402

SPLIT = {"train_time": ["2000-01-01", "2000-01-06"], "val_time": ["2000-01-07", "2000-01-08"],
         "test_time": ["2000-01-09", "2000-01-10"]}


def oriented(data, kind: str):
    """`data` with latitudes descending (ERA5's order), longitudes -180..180, both, or lat/lon swapped in the file."""
    if kind in ("lat_descending", "both"):
        data = data.isel(lat=slice(None, None, -1))
    if kind in ("lon_180", "both"):
        data = data.assign_coords(lon=(data.lon + 180) % 360 - 180).sortby("lon")
        data.lon.attrs.update(standard_name="longitude", units="degrees_east")
    if kind == "transposed":
        data = data.transpose("time", "level", "lon", "lat")
    return data


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """One NetCDF file of `fields(days=3)` per orientation."""
    folder = tmp_path_factory.mktemp("grids")
    data = fields(days=3, gap=())
    paths = {}
    for kind in ("same", "lat_descending", "lon_180", "both", "transposed"):
        paths[kind] = folder / f"{kind}.nc"
        oriented(data, kind).to_netcdf(paths[kind])
    return paths


def run_predict(argv, capsys) -> tuple[int, str, str]:
    """convgru.deploy.predict.main(argv) in-process: (exit status, stdout, stderr)."""
    try:
        predict.main([str(a) for a in argv])
        status = 0
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def on_training_grid(path) -> np.ndarray:
    """The t2m forecast of a written file on the grid of fields_data (lat ascending, lon 0..360)."""
    with xr.open_dataset(path) as back:
        back = back.assign_coords(lon=back.lon % 360).sortby("lon").sortby("lat")
        return back.t2m.transpose("init_time", "lead_time", "lat", "lon").values


# --- 26.2: another grid orientation -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["lat_descending", "lon_180", "both", "transposed"])
def test_source_aligns_to_the_training_grid(grids, kind):
    same = FieldSource([grids["same"]], ["t2m", "z"], [500])
    other = FieldSource([grids[kind]], ["t2m", "z"], [500])
    said = other.align(same.plain_grid())
    if kind == "transposed":  # the dimensions are found by name: nothing to align
        assert said is None and other.order is None
    else:
        assert said[0] is False and "aligned to the grid the checkpoint was trained on (lat -78.75..78.75" in said[1]
    np.testing.assert_array_equal(other.read(2, 5), same.read(2, 5))
    np.testing.assert_allclose(other.latitudes, LAT)
    raw = FieldSource([grids[kind]], ["t2m", "z"], [500]).read(2, 5)
    np.testing.assert_array_equal(other.to_file_order(other.read(2, 5)), raw)  # and back


@pytest.fixture(scope="module")
def same_forecast(grids, fields_checkpoint, tmp_path_factory) -> np.ndarray:
    """The forecast of the file in the training grid's orientation (`on_training_grid`)."""
    out = tmp_path_factory.mktemp("same") / "same.nc"
    predict.main([str(fields_checkpoint), str(grids["same"]), str(out)])
    return on_training_grid(out)


@pytest.mark.parametrize("kind", ["lat_descending", "lon_180", "both"])
def test_predict_maps_a_flipped_or_rolled_grid_and_back(grids, fields_checkpoint, same_forecast, tmp_path, capsys,
                                                       kind):
    """The forecast of a flipped / rolled input is the forecast of the training orientation, written on the
    input's own coordinates and order, said in one line."""
    capsys.readouterr()
    status, _, err = run_predict([fields_checkpoint, grids[kind], tmp_path / "out.nc"], capsys)
    assert status == 0 and err.count("\n") == 1 and "aligned to the grid the checkpoint was trained on" in err
    with xr.open_dataset(tmp_path / "out.nc") as back, xr.open_dataset(grids[kind]) as given:
        np.testing.assert_array_equal(back.lat.values, given.lat.values)
        np.testing.assert_array_equal(back.lon.values, given.lon.values)
    np.testing.assert_allclose(on_training_grid(tmp_path / "out.nc"), same_forecast, rtol=1e-5, atol=1e-4)


def test_a_checkpoint_without_a_grid_is_warned_once(grids, same_forecast, tmp_path, capsys):
    """convgru 0.2.0 recorded no grid: a flipped input is fed as it is (the forecast differs), with one warning."""
    old = write_checkpoint(tmp_path / "old.ckpt", grid=None)
    capsys.readouterr()
    status, _, err = run_predict([old, grids["both"], tmp_path / "old.nc"], capsys)
    assert status == 0 and err.count("warning: the checkpoint records no grid") == 1 and err.count("\n") == 1
    assert np.abs(on_training_grid(tmp_path / "old.nc") - same_forecast).max() > 1e-3


def test_predict_refuses_other_coordinates_and_warns_of_another_size(grids, fields_checkpoint, tmp_path, capsys):
    data = fields(days=2, gap=())
    data.assign_coords(lat=data.lat + 1.0).to_netcdf(tmp_path / "shifted.nc")
    status, _, err = run_predict([fields_checkpoint, tmp_path / "shifted.nc", tmp_path / "a.nc"], capsys)
    assert status == 2 and not (tmp_path / "a.nc").exists()
    assert ("its grid (lat -77.75..79.75 step 22.5 (8), lon 0..337.5 step 22.5 (16)) is not the grid the checkpoint "
            "was trained on (lat -78.75..78.75 step 22.5 (8), lon 0..337.5 step 22.5 (16))") in err
    data.isel(lat=slice(0, 4)).to_netcdf(tmp_path / "half.nc")
    status, _, err = run_predict([fields_checkpoint, tmp_path / "half.nc", tmp_path / "b.nc"], capsys)
    assert status == 0 and err.startswith("warning: ") and err.count("\n") == 1
    assert "a 4x16 grid (lat -78.75..-11.25 step 22.5 (4), lon 0..337.5 step 22.5 (16)); the checkpoint was trained " \
           "on 8x16" in err
    with xr.open_dataset(tmp_path / "b.nc") as back:
        assert back.t2m.shape == (1, 2, 4, 16)


def test_training_records_the_grid_and_eval_aligns_to_it(grids, fields_checkpoint, tmp_path, caplog):
    """The data module records the files' grid (a checkpoint stores it as data.grid); given a grid, it reads
    flipped files in its order, says so once, and save_test_forecasts writes on the files' own grid."""
    from convgru.training.fields import save_test_forecasts
    from convgru.training.restore import load_module

    options = dict(variables=["t2m"], frames_in=3, frames_out=2, num_workers=0, batch_size=2,
                   cache_dir=tmp_path / "cache", test_time=["2000-01-02", "2000-01-03"])
    trained = FieldDataModule(files=[str(grids["same"])], train_time=["2000-01-01", "2000-01-01"], **options)
    trained.setup("fit")
    assert trained.grid == GRID
    module = load_module(fields_checkpoint)
    normalization = module.hparams["data"]["normalization"]
    # the statistics pass above logs too when the root logger is at INFO (Hydra's logging of another test)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convgru.data.field_module"):
        flipped = FieldDataModule(files=[str(grids["both"])], normalization=normalization, grid=GRID, **options)
        flipped.setup("test")
        flipped.open()
    # this module's records only: another test of the worker may have left other loggers at INFO
    assert [r.getMessage().count("aligned to the grid") for r in caplog.records
            if r.name == "convgru.data.field_module"] == [1]
    same = FieldDataModule(files=[str(grids["same"])], normalization=normalization, grid=GRID, **options)
    same.setup("test")
    x = next(iter(flipped.test_dataloader()))[0]  # (x, y, the climatology's rows)
    np.testing.assert_array_equal(x, next(iter(same.test_dataloader()))[0])
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = save_test_forecasts(module, flipped, tmp_path / "a"), save_test_forecasts(module, same, tmp_path / "b")
    with xr.open_dataset(a) as back, xr.open_dataset(grids["both"]) as given:
        np.testing.assert_array_equal(back.lat.values, given.lat.values)
        np.testing.assert_array_equal(back.lon.values, given.lon.values)
    np.testing.assert_allclose(on_training_grid(a), on_training_grid(b), rtol=1e-5, atol=1e-4)

    caplog.clear()
    old = FieldDataModule(files=[str(grids["both"])], normalization=normalization, **options)
    old.setup("test")
    old.open()
    assert [r.levelname for r in caplog.records if "records no grid" in r.message] == ["WARNING"]


def test_eval_data_refuses_other_coordinates_and_warns_of_another_size(grids, tmp_path, caplog):
    data = fields(days=2, gap=())
    data.assign_coords(lon=data.lon + 5.0).to_netcdf(tmp_path / "shifted.nc")
    data.isel(lon=slice(0, 8)).to_netcdf(tmp_path / "half.nc")
    options = dict(variables=["t2m"], frames_in=3, frames_out=2, grid=GRID,
                   normalization={"t2m": {"mean": 0, "std": 1}})
    with pytest.raises(ValueError, match=r"shifted.nc: its grid \(lat -78.75..78.75 step 22.5 \(8\), lon 5..342.5"):
        FieldDataModule(files=[str(tmp_path / "shifted.nc")], **options).open()
    with caplog.at_level(logging.INFO, logger="convgru.data.field_module"):
        FieldDataModule(files=[str(tmp_path / "half.nc")], **options).open()
    records = [r for r in caplog.records if r.name == "convgru.data.field_module"]
    assert [r.levelname for r in records] == ["WARNING"] and "a 8x8 grid" in records[0].getMessage()


def test_a_bad_grid_option_is_named():
    with pytest.raises(OptionError, match=r"grid: expected the training grid \{y, x, y_values, x_values"):
        FieldDataModule(files=["a.nc"], variables=["t2m"], grid={"y": "lat"})


# --- 26.4: the kind of input a checkpoint takes ---------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".npy"])
def test_a_fields_checkpoint_refuses_frames(fields_checkpoint, tmp_path, capsys, suffix):
    path = tmp_path / f"clip{suffix}"
    np.save(path, np.zeros((3, 1, 8, 16), np.float32)) if suffix == ".npy" else path.write_bytes(b"not decoded")
    out = tmp_path / "out.npy"
    status, _, err = run_predict([fields_checkpoint, path, out], capsys)
    assert status == 2 and not out.exists()
    assert (f"error: CKPT {fields_checkpoint} was trained on gridded fields (data=fields: t2m); INPUT {path} is "
            f"{'a video' if suffix == '.mp4' else 'an array of frames'}: expected NetCDF files or a Zarr store holding "
            "those variables") in err


def test_a_frames_checkpoint_refuses_fields(grids, tmp_path, capsys):
    from convgru.training import ForecastModule

    video = {"_target_": "convgru.data.VideoDataModule", "files": ["clips"], "frames_in": 3}
    for data, trained in ((video, "frames (data=video)"), (None, "frames (it records no data config: convgru 0.1.0)")):
        module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2, data=data)
        torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "v.ckpt")
        status, _, err = run_predict([tmp_path / "v.ckpt", grids["same"], tmp_path / "out.nc"], capsys)
        assert status == 2 and not (tmp_path / "out.nc").exists()
        assert (f"CKPT {tmp_path / 'v.ckpt'} was trained on {trained}; INPUT {grids['same']} is NetCDF files or a "
                "Zarr store of gridded fields: expected .npy frames or a video") in err


# --- 26.5: climate-model calendars ------------------------------------------------------------------------

def calendar_file(path, calendar: str, start: str = "2001-02-27", steps: int = 24):
    """t2m on the fields_data grid, 6-hourly from `start` in `calendar` (across the end of February)."""
    when = xr.date_range(start, periods=steps, freq="6h", calendar=calendar, use_cftime=calendar != "standard")
    values = fields(days=6, gap=()).t2m.values[:steps]
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": when, "lat": ("lat", LAT, {"units": "degrees_north"}),
                              "lon": ("lon", LON, {"units": "degrees_east"})})
    data.time.encoding.update(calendar=calendar, units="hours since 2001-01-01")
    data.to_netcdf(path)
    return path


def open_cftime(path):
    """`path` opened with its times as cftime dates, whatever the calendar."""
    if hasattr(xr, "coders"):
        return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    return xr.open_dataset(path, use_cftime=True)


# calendar: (the file's last time, the last input step of the forecast, its first valid time); 6 days from Feb 27
CALENDARS = {"noleap": ("2001-03-04T18:00:00", "2001-02-28T18:00:00", "2001-03-01T00:00:00"),
             "360_day": ("2001-03-02T18:00:00", "2001-02-30T18:00:00", "2001-03-01T00:00:00"),
             "julian": ("2001-03-04T18:00:00", "2001-02-28T18:00:00", "2001-03-01T00:00:00"),
             "proleptic_gregorian": ("2001-03-04T18:00:00", "2001-02-28T18:00:00", "2001-03-01T00:00:00"),
             "standard": ("2001-03-04T18:00:00", "2001-02-28T18:00:00", "2001-03-01T00:00:00")}


@pytest.mark.parametrize("calendar", list(CALENDARS))
def test_calendars_are_read_split_and_written_back(calendar, fields_checkpoint, tmp_path, capsys):
    last, init, lead = CALENDARS[calendar]
    path = calendar_file(tmp_path / f"{calendar}.nc", calendar)
    source = FieldSource([path], ["t2m"])
    assert source.step.delta == np.timedelta64(6, "h") and not source.step.months and len(source) == 24
    assert source.label(source.times[-1]) == (last if source.calendar.epoch is not None else
                                              str(np.datetime64(last, "us")))
    assert (source.calendar.epoch is None) == (calendar in ("standard", "proleptic_gregorian"))
    # a split by the calendar's dates: Feb 30 of 360_day, Feb 28 the last day of February otherwise
    day = "2001-02-30" if calendar == "360_day" else "2001-02-28"
    dm = FieldDataModule(files=[str(path)], variables=["t2m"], frames_in=3, frames_out=2, num_workers=0,
                         train_time=["2001-02-27", day], test_time=["2001-03-01", "2001-03"], cache_dir=tmp_path / "c")
    dm.setup("fit")
    in_february = 16 if calendar == "360_day" else 8  # steps from Feb 27 to the end of February
    assert len(dm.datasets["train"]) == in_february - 4 and len(dm.datasets["test"]) == len(source) - in_february - 4
    if calendar != "360_day":  # no Feb 30 there (nor Feb 29 of 2001)
        with pytest.raises(OptionError, match="data.train_time: '2001-02-30' is not a date of the"):
            FieldDataModule(files=[str(path)], variables=["t2m"], train_time=["2001-02-27", "2001-02-30"],
                            frames_in=3, frames_out=2, cache_dir=tmp_path / "c").setup("fit")

    if calendar in ("noleap", "360_day", "julian"):  # the standard ones: as test_fields.py's predict
        status, out, err = run_predict([fields_checkpoint, path, tmp_path / "out.nc", "--init", init[:13]], capsys)
        assert status == 0 and err == "" and f"from {init[:16]}" in out
        with open_cftime(tmp_path / "out.nc") as back:
            assert back.init_time.values[0].isoformat() == init and back.time.values[0, 0].isoformat() == lead
            assert back.time.values[0, 0].calendar == calendar
    from convgru.training.fields import save_test_forecasts
    from convgru.training.restore import load_module

    with open_cftime(save_test_forecasts(load_module(fields_checkpoint), dm, tmp_path)) as back:  # eval's
        assert back.init_time.values[0].isoformat() == "2001-03-01T12:00:00"
        assert back.time.values[-1, -1].isoformat() == last
        if calendar in ("noleap", "360_day", "julian"):
            assert back.init_time.encoding["calendar"] == calendar


def test_windows_follow_the_calendar(tmp_path):
    """noleap has no Feb 29 (2004 Feb 28 18h to Mar 1 00h is one step), 360_day a Feb 30."""
    for calendar, steps in (("noleap", 9), ("360_day", 9)):
        path = calendar_file(tmp_path / f"{calendar}.nc", calendar, start="2004-02-28", steps=steps)
        source = FieldSource([path], ["t2m"])
        assert len(window_starts(source.times, source.step, 9)) == 1
    with pytest.raises(ValueError, match=r"times in the calendar 360_day, the first file's are noleap"):
        FieldSource([tmp_path / "noleap.nc", tmp_path / "360_day.nc"], ["t2m"])


CENTURIES = {"360_day": ("days since 1850-01-01", np.arange(4800) * 30),  # monthly: 400 years of 360 days
             "standard": ("days since 1900-01-01", np.arange(4870) * 30.0)}  # floats: xarray's datetime64[ns] only


@pytest.mark.parametrize("calendar", list(CENTURIES))
def test_a_time_axis_of_centuries_is_read_whole(calendar, tmp_path):
    """400 years of steps, beyond the 292 years of datetime64[ns] (to 2262), are all read with their dates: a
    non-standard calendar's from cftime, float times of the standard one through cftime, never NaT or cut."""
    units, offsets = CENTURIES[calendar]
    values = np.arange(len(offsets), dtype=np.float32)[:, None, None] + np.zeros((1, 2, 3), np.float32)
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": ("time", offsets, {"units": units, "calendar": calendar}),
                              "lat": ("lat", LAT[:2], {"units": "degrees_north"}),
                              "lon": ("lon", LON[:3], {"units": "degrees_east"})})
    data.to_netcdf(tmp_path / "run.nc")
    source = FieldSource([tmp_path / "run.nc"], ["t2m"])
    assert len(source) == len(offsets)
    if calendar == "360_day":  # 30 days apart at month starts: calendar months
        assert source.step.months == 1 and source.step.text == "1 month"
    else:
        assert source.step.delta == np.timedelta64(30, "D") and not source.step.months
    if calendar == "360_day":  # month k: year 1850 + k // 12, month k % 12 + 1, day 1
        dates = [d.isoformat()[:10] for d in source.calendar.dates(source.times)]
        assert dates == [f"{1850 + k // 12}-{k % 12 + 1:02d}-01" for k in range(len(offsets))]
        assert source.label(source.times[-1]) == "2249-12-01T00:00:00"
    else:
        assert np.array_equal(source.times, np.datetime64("1900-01-01", "us") + offsets.astype("timedelta64[D]"))
        assert source.label(source.times[-1]) == "2299-12-05T00:00:00.000000"
    assert source.read(len(offsets) - 2, len(offsets))[:, 0, 0, 0].tolist() == [len(offsets) - 2, len(offsets) - 1]


def test_undecodable_times_are_refused(tmp_path):
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), np.zeros((3, 8, 16), np.float32))},
                      coords={"time": ("time", [0.0, 1.0, 2.0], {"units": "parsecs"}), "lat": LAT, "lon": LON})
    data.to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(ValueError, match="the time coordinate 'time' holds float64 values, not dates"):
        FieldSource([tmp_path / "odd.nc"], ["t2m"])



@pytest.mark.parametrize("calendar", ["standard", "noleap"])
@pytest.mark.parametrize("step", [0, 2])
def test_an_infinite_time_is_missing_not_the_epoch(tmp_path, calendar, step):
    """inf in a time coordinate is a missing time, as NaN is: xarray decoded it as the units' epoch, which a
    first time passed on as a wrong date (inf, 100, 106 h read as 2000-01-01T00, then 04:00 and 10:00 of the 5th)."""
    hours = [100.0, 106.0, 112.0]
    hours[step] = np.inf
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), np.zeros((3, 8, 16), np.float32))},
                      coords={"time": ("time", hours, {"units": "hours since 2000-01-01", "calendar": calendar}),
                              "lat": LAT, "lon": LON})
    data.to_netcdf(tmp_path / "inf.nc")
    with pytest.raises(ValueError, match=rf"inf.nc: the time coordinate 'time' holds 1 missing time\(s\) \(NaN, "
                                         rf"its _FillValue or inf; the first at step {step} of 3\)"):
        FieldSource([tmp_path / "inf.nc"], ["t2m"])


@pytest.mark.parametrize("stored,error", [
    ("abc", "the checkpoint's data.time_step: expected a positive duration such as 6h"),
    ("1MS", "its times are 6h apart; expected 1MS (the checkpoint's data.time_step: it was trained on steps of 1MS)"),
    ("3h", "its times are 6h apart; expected 3h (the checkpoint's data.time_step"),
])
def test_a_checkpoints_time_step_the_input_cannot_give_is_one_error(tmp_path, capsys, stored, error):
    """A checkpoint's data.time_step (written by training, or by anyone): not a step, or one the input's times
    cannot give (calendar months from 6-hourly times, a finer step), is one error line; nothing written."""
    fields(days=3, gap=()).to_netcdf(tmp_path / "era5_0.nc")
    ckpt = write_checkpoint(tmp_path / "model.ckpt")
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["data"]["time_step"] = stored
    torch.save(checkpoint, ckpt)
    status, _, err = run_predict([ckpt, tmp_path / "era5_0.nc", tmp_path / "out.nc"], capsys)
    last = err.strip().splitlines()[-1]
    assert status == 2 and " error: INPUT " in last and error in last and last.count("INPUT") == 1
    assert not (tmp_path / "out.nc").exists()

# --- 27.8: NetCDF writes that fail on the way ---------------------------------------------------------------

def test_a_failed_netcdf_write_is_one_error_and_leaves_nothing(grids, fields_checkpoint, tmp_path, capsys,
                                                               monkeypatch):
    out = tmp_path / "out.nc"
    out.write_bytes(b"an earlier forecast")

    def fail(self, path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89HDF partial")
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    status, _, err = run_predict([fields_checkpoint, grids["same"], out, "--force"], capsys)
    assert status == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "error: " in line]
    assert len(lines) == 1
    assert f"error: OUTPUT {out}: cannot write the OUTPUT file out.nc in {tmp_path}: the writer failed (NetCDF: HDF " \
           "error): a full disk or a file size limit (ulimit -f)?" in lines[0]
    assert out.read_bytes() == b"an earlier forecast" and sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]

    source = FieldSource([grids["same"]], ["t2m"])  # eval.save_forecasts writes through the same writer
    with pytest.raises(OSError, match=r"cannot write the forecast file forecasts.nc in .*\(NetCDF: HDF error\)"):
        write_forecasts(tmp_path / "forecasts.nc", forecast_dataset(
            source.grid, source.names, source.channels, np.zeros((1, 2, 1, 8, 16), np.float32), source.times[:1],
            source.step, source.calendar))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


@pytest.mark.slow
def test_a_file_size_limit_is_one_error(tmp_path):
    """A real `ulimit -f` (RLIMIT_FSIZE, SIGXFSZ ignored) while the NetCDF is written: one OSError naming the file."""
    script = f"""
import resource, signal
import numpy as np
import xarray as xr
from convgru.data.fields import write_forecasts
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
try:
    write_forecasts({str(tmp_path / 'f.nc')!r}, xr.Dataset({{"t": (("a", "b"), np.ones((400, 400)))}}))
except OSError as error:
    print("OSError:", error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("OSError: cannot write the forecast file f.nc in ") and \
        "file size limit (ulimit -f) is 100000 bytes" in result.stdout, result.stdout + result.stderr
    assert "HDF error" not in result.stderr and list(tmp_path.iterdir()) == []


NAMES = ["t2m", "_t", "2m_temperature", "T (K) [2m]", "température", "é" * 128, "a" * 256, "a" * 257, "é" * 129,
         "t2m ", " t2m", "t\t", "t2m\n", "a/b", "-t", ".t", "+t", "#t", "t\x7f", "\u2028t", "t\u2028", ""]


def test_the_netcdf_name_rule_is_netcdf4s():
    """`netcdf_name_fault` refuses exactly the names that netCDF4 (netCDF-C) refuses."""
    netCDF4 = pytest.importorskip("netCDF4")
    from convgru.data.fields import netcdf_name_fault

    with netCDF4.Dataset("names.nc", "w", diskless=True, persist=False) as dataset:
        for name in NAMES:
            try:
                dataset.createDimension(name, 1)
                takes = True
            except (RuntimeError, ValueError):
                takes = False
            assert (netcdf_name_fault(name) is None) == takes, (name, netcdf_name_fault(name))


def test_the_errors_that_say_a_write_was_stopped():
    from convgru.atomic import write_stopped

    stopped = [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EFBIG, "File too large"),
               OSError(errno.EDQUOT, "Disk quota exceeded"), RuntimeError("NetCDF: HDF error"),
               RuntimeError(os.strerror(errno.ENOSPC)), RuntimeError(os.strerror(errno.EFBIG)),
               OSError("Can't write data (file write failed: errno = 28, error message = 'No space left')")]
    other = [OSError(errno.EACCES, "Permission denied"), RuntimeError("NetCDF: Name contains illegal characters"),
             RuntimeError("NetCDF: Invalid argument"), TypeError("Invalid value for attr 'x': None"),
             OSError("Can't write data (errno = 280)")]
    assert [write_stopped(e) for e in stopped] == [True] * len(stopped)
    assert [write_stopped(e) for e in other] == [False] * len(other)


def test_a_name_netcdf_refuses_is_refused_before_anything_is_written(tmp_path):
    """A name of the input that NetCDF refuses (here an attribute's, with a '/') is one ValueError naming the file,
    the name and the rule before the file is opened; eval.save_forecasts=true refuses it before the test."""
    from convgru.training.fields import check_save_forecasts

    data = fields(days=2, gap=())
    data.t2m.attrs["units/si"] = "K"
    data.to_zarr(tmp_path / "in.zarr", zarr_format=2)
    source = FieldSource([tmp_path / "in.zarr"], ["t2m"])
    forecast = forecast_dataset(source.grid, source.names, source.channels, np.zeros((1, 2, 1, 8, 16), np.float32),
                                source.times[:1], source.step, source.calendar)
    with pytest.raises(ValueError) as raised:
        write_forecasts(tmp_path / "out" / "f.nc", forecast)
    assert str(raised.value) == (
        f"cannot write the forecast file f.nc in {tmp_path / 'out'}: NetCDF refuses the input's attribute name "
        "'units/si' of 't2m' (a '/'); expected names that start with a letter, a digit or '_', hold no '/' or "
        "control character, do not end in a space and take at most 256 bytes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]

    datamodule = FieldDataModule(files=[str(tmp_path / "in.zarr")], variables=["t2m"], frames_in=2, frames_out=2,
                                 num_workers=0, cache_dir=str(tmp_path / "cache"), **SPLIT)
    with pytest.raises(OptionError, match=r"^save_forecasts: cannot write the forecast file forecasts.nc in .*/run: "
                                          r"NetCDF refuses the input's attribute name 'units/si' of 't2m'"):
        check_save_forecasts(datamodule, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_another_writer_error_is_said_with_the_writers_words(grids, tmp_path, monkeypatch):
    """An error of the writer that is not a full disk or a file size limit is a ValueError naming the file with the
    writer's words, not a guess at the disk; nothing is left."""
    def refuse(self, path, *args, **kwargs):
        raise RuntimeError("NetCDF: Invalid argument")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", refuse)
    source = FieldSource([grids["same"]], ["t2m"])
    with pytest.raises(ValueError) as raised:
        write_forecasts(tmp_path / "f.nc", forecast_dataset(
            source.grid, source.names, source.channels, np.zeros((1, 2, 1, 8, 16), np.float32), source.times[:1],
            source.step, source.calendar))
    assert str(raised.value) == f"cannot write the forecast file f.nc in {tmp_path}: the NetCDF writer says " \
        "'NetCDF: Invalid argument'"
    assert list(tmp_path.iterdir()) == []


# --- ACC's climatology on other calendars and grids ------------------------------------------------------------

def test_acc_climatology_by_day_of_year_of_a_noleap_calendar(tmp_path):
    """A noleap file of 2001 and June 2004 (12-hourly; 2004 is the fourth year, where noleap's days of year and a
    Gregorian reading of its times part): the climatology's table is by noleap's day of year (a 61-day window
    around its 365-day year; no day 366), and each target's row is that of its noleap date."""
    from convgru.training.fields import FieldTestScores

    data = seasonal(days=365)
    june = seasonal(days=30).isel(time=slice(0, 60))
    when = [xr.date_range(start, periods=n, freq="12h", calendar="noleap", use_cftime=True)
            for start, n in (("2001-01-01", data.sizes["time"]), ("2004-06-01", june.sizes["time"]))]
    both = xr.concat([data.assign_coords(time=when[0]), june.assign_coords(time=when[1])], "time")
    both.to_netcdf(tmp_path / "noleap.nc")
    dm = FieldDataModule(files=[str(tmp_path / "noleap.nc")], variables=["t2m"], frames_in=2, frames_out=3,
                         train_time=["2001-01-01", "2001-12-31"], test_time=["2004-06-01", "2004-06-30"],
                         cache_dir=tmp_path / "cache", num_workers=0, batch_size=64)
    dm.setup("test")
    table = dm.climatology()
    assert table["hours"] == [0, 12] and "2001-01-01 00:00:00 .. 2001-12-31 12:00:00" in dm.climatology_note
    day = np.array([t.dayofyr for t in when[0]])
    hour, values = np.array([t.hour for t in when[0]]), data.t2m.values.astype(np.float64)
    for d, h in ((1, 0), (59, 12), (60, 0), (152, 0), (365, 12)):
        distance = np.abs(day - d)
        near = (np.minimum(distance, 365 - distance) <= 30) & (hour == h)
        np.testing.assert_allclose(table["values"][(d - 1) * 2 + h // 12, 0], values[near].mean(0), rtol=1e-6)
    assert np.isnan(table["values"][365 * 2:]).all()  # noleap has no day 366
    x, y, rows = next(iter(dm.test_dataloader()))
    starts = dm.datasets["test"].starts
    valid = [when[1][s - len(when[0]) + 2 + k] for s in starts for k in range(3)]
    assert rows.flatten().tolist() == [(t.dayofyr - 1) * 2 + t.hour // 12 for t in valid]
    assert valid[0].dayofyr == 153  # 2004-06-02 of noleap; the times' counts read as Gregorian: 1973-06-01 (day 152)
    scores = FieldTestScores(dm.scoring(), 3)
    scores.update(x, y.nan_to_num(0.5), y, rows)
    summary, _ = scores.results()
    assert float(summary["acc_t2m"]) == pytest.approx(1.0) and math.isfinite(float(summary["climatology/rmse_t2m"]))


def test_acc_on_a_realigned_grid_is_the_training_grids(tmp_path):
    """Eval on files with latitudes descending (ERA5's order) against a checkpoint trained on ascending ones: the
    windows, the climatology (the checkpoint's, or computed again from the flipped training files) and ACC are
    those of the training grid's order."""
    from convgru.training.fields import FieldTestScores

    period = {"train_time": ["2001-01-01", "2001-12-31"], "val_time": None, "test_time": ["2002-01-11", "2002-02-04"]}
    common = {"variables": ["t2m"], "frames_in": 2, "frames_out": 3, "cache_dir": tmp_path / "cache",
              "num_workers": 0, "batch_size": 64, **period}
    data = seasonal()
    data.to_netcdf(tmp_path / "up.nc")
    data.isel(lat=slice(None, None, -1)).to_netcdf(tmp_path / "down.nc")
    data.sel(time=slice("2002-01-11", None)).isel(lat=slice(None, None, -1)).to_netcdf(tmp_path / "new_down.nc")
    trained = FieldDataModule(files=[str(tmp_path / "up.nc")], **common)
    trained.setup("fit")
    stored = {"normalization": trained.normalization, "grid": trained.grid}

    def acc(dm):
        dm.setup("test")
        scores = FieldTestScores(dm.scoring(), 3)
        batch = next(iter(dm.test_dataloader()))
        x, y, rows = batch
        scores.update(x, (y + 0.05 * torch.sin(10 * y)).clamp(0, 1).nan_to_num(0.5), y, rows)
        return batch, {k: float(v) for k, v in scores.results()[0].items()}

    batch, expected = acc(trained)
    for files, climatology in (("new_down.nc", trained.stored_climatology()), ("down.nc", None)):
        flipped = FieldDataModule(files=[str(tmp_path / files)], climatology=climatology, **stored, **common)
        got, scores = acc(flipped)
        assert flipped.source.order is not None and flipped.source.latitudes.tolist() == data.lat.values.tolist()
        for a, b in zip(got, batch):
            torch.testing.assert_close(a, b, equal_nan=True)
        np.testing.assert_allclose(flipped.climatology()["values"], trained.climatology()["values"], rtol=1e-6)
        assert scores.keys() == expected.keys() and "acc_t2m_12h" in scores
        for key in expected:
            assert scores[key] == pytest.approx(expected[key], rel=1e-5), key


def test_predict_escapes_the_variable_names_it_reads(tmp_path, capsys):
    """A variable named with a line separator (U+2028: NetCDF takes it, not a newline) in a Zarr store and the
    checkpoint's data.variables is printed escaped: predict's summary cannot forge a line of output."""
    forged = "t2m\u2028error: forged"
    fields(days=2, gap=()).rename({"t2m": forged}).to_zarr(tmp_path / "in.zarr")
    checkpoint = write_checkpoint(tmp_path / "model.ckpt", variables=(forged,))
    status, out, err = run_predict([checkpoint, tmp_path / "in.zarr", tmp_path / "out.nc"], capsys)
    assert status == 0 and forged not in out + err and "of 't2m\\u2028error: forged' to " in out, out + err
