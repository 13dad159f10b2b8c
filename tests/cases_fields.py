"""Error-sweep cases of data=fields (NetCDF / Zarr fields): variables, levels, channels and time splits that
do not fit the files; collected by test_errors.py."""

from pathlib import Path
from unittest import mock

import numpy as np
import torch

from cases_data import with_resources
from convgru.training import cli
from convgru.training.options import instantiate
from fields_data import fields, write_checkpoint, write_declared_zarr, write_netcdf
from sweep import (
    Case,
    assert_kept,
    checkpoint_run,
    compose_config,
    digest,
    eval_with,
    predict_run,
    raised,
    tiny_checkpoint,
)

FIELDS = ["data=fields", "data.files=[{dir}/era5_*.nc]", "data.variables=[t2m]", "data.frames_in=3",
          "data.frames_out=2", "data.num_workers=0", "data.train_time=[2000-01-01,2000-01-06]",
          "data.val_time=[2000-01-07,2000-01-08]", "data.test_time=[2000-01-09,2000-01-10]"]


def fields_run(overrides, split: str = "train", write=lambda folder: write_netcdf(folder, 2)) -> callable:
    """Write two NetCDF files of fields into the folder (or what `write` writes; None: nothing), build data=fields
    with `overrides` ({dir} is the folder), set it up and take the first batch of `split`."""
    def run(folder: Path) -> str:
        if write is not None:
            write(folder)
        before = digest(folder)
        options = cli.quote_non_ascii([o.replace("{dir}", str(folder)) for o in [*FIELDS, *overrides]])

        def build():
            cfg = compose_config("train", folder.parent / "out", options, folder.parent / "cache")
            datamodule = instantiate(cfg.data, "data")
            datamodule.setup("fit")
            next(iter(getattr(datamodule, f"{split}_dataloader")()))
        message = raised(build)
        assert_kept(folder, before)
        return message
    return run


def shifted_grid(folder: Path) -> list:
    """A fields checkpoint and a file on its grid's size with latitudes 1 degree off."""
    data = fields(days=2, gap=())
    data.assign_coords(lat=data.lat + 1.0).to_netcdf(folder / "shifted.nc")
    return [write_checkpoint(folder / "model.ckpt"), folder / "shifted.nc", folder / "out.nc"]


FORGED = "v\nerror: forged"  # a name that would print a line of its own


def forged_input(folder: Path) -> list:
    """A fields checkpoint and an INPUT .nc that is not NetCDF, whose name holds a line break."""
    (folder / f"{FORGED}.nc").write_bytes(b"not NetCDF")
    return [write_checkpoint(folder / "model.ckpt"), folder / f"{FORGED}.nc", folder / "out.nc"]


def forged_grid_name(folder: Path) -> list:
    """`shifted_grid` with a checkpoint whose stored grid names its latitude dimension with a line break."""
    arguments = shifted_grid(folder)
    checkpoint = torch.load(arguments[0], weights_only=True)
    checkpoint["hyper_parameters"]["data"]["grid"]["y"] = FORGED
    torch.save(checkpoint, arguments[0])
    return arguments


def latitudes_beyond_poles(folder: Path) -> None:
    """era5_0.nc with latitudes -100..100 (degrees_north), which no grid of the Earth has."""
    data = fields(days=10)
    data.assign_coords(lat=("lat", np.linspace(-100, 100, 8), data.lat.attrs)).to_netcdf(folder / "era5_0.nc")


def video_for_fields(folder: Path) -> list:
    (folder / "clip.mp4").write_bytes(b"a video")
    return [write_checkpoint(folder / "model.ckpt"), folder / "clip.mp4", folder / "out.mp4"]


def fields_for_frames(folder: Path) -> list:
    write_netcdf(folder, 1)
    tiny_checkpoint(folder / "model.ckpt")
    return [folder / "model.ckpt", folder / "era5_0.nc", folder / "out.nc"]


def failed_write(folder: Path) -> list:
    write_netcdf(folder, 1)
    (folder / "out.nc").write_bytes(b"an earlier forecast")
    return [write_checkpoint(folder / "model.ckpt"), folder / "era5_0.nc", folder / "out.nc", "--force"]


def fail_mid_write(self, path, *args, **kwargs):
    """xarray's Dataset.to_netcdf as a full disk (or ulimit -f) ends it: part of the file, then netCDF4's error."""
    Path(path).write_bytes(b"\x89HDF\r\n part of a file")
    raise RuntimeError("NetCDF: HDF error")


def zarr_input(folder: Path, variable: str = "t2m", attrs: dict | None = None) -> list:
    """A fields checkpoint of `variable`, a Zarr store era5.zarr of `fields()` with t2m renamed `variable` (and
    `attrs` added to it) and an earlier out.nc: predict's arguments, with --force."""
    data = fields(days=2, gap=()).rename({"t2m": variable})
    data[variable].attrs.update(attrs or {})
    data.to_zarr(folder / "era5.zarr", zarr_format=2)
    (folder / "out.nc").write_bytes(b"an earlier forecast")
    return [write_checkpoint(folder / "model.ckpt", variables=(variable,)), folder / "era5.zarr", folder / "out.nc",
            "--force"]


def calendar_run(calendar: str, train_time: str) -> callable:
    """data=fields on a NetCDF file in `calendar` with data.train_time=`train_time`."""
    def run(folder: Path) -> str:
        import xarray as xr

        data = fields(days=3, gap=())
        data = data.assign_coords(time=xr.date_range("2001-02-27", periods=data.sizes["time"], freq="6h",
                                                     calendar=calendar, use_cftime=True))
        data.to_netcdf(folder / "era5_0.nc")
        return fields_run([f"data.train_time={train_time}", "data.val_time=null", "data.test_time=null"],
                          write=None)(folder)
    return run


def monthly_file(folder: Path) -> None:
    """era5_0.nc: t2m at the month starts of 2000 and 2001 (monthly means, as ERA5's)."""
    import xarray as xr

    data = fields(days=6, gap=())
    data.assign_coords(time=xr.date_range("2000-01-01", periods=data.sizes["time"], freq="MS")).to_netcdf(
        folder / "era5_0.nc")


def calendars_across_1582(folder: Path) -> None:
    """era5_0.nc in the standard calendar before 1582-10-15 (cftime dates), era5_1.nc after it in another
    calendar, proleptic_gregorian (datetime64): a true mix of calendars."""
    import xarray as xr

    data = fields(days=4, gap=())
    for i, (start, calendar) in enumerate((("1582-10-03", "standard"), ("1582-10-15", "proleptic_gregorian"))):
        part = data.isel(time=slice(8 * i, 8 * i + 8))
        part = part.assign_coords(time=xr.date_range(start, periods=8, freq="6h", calendar=calendar, use_cftime=True))
        part.time.encoding.update(calendar=calendar, units=f"hours since {start}")
        part.to_netcdf(folder / f"era5_{i}.nc")


def cf_months_file(folder: Path) -> None:
    """era5_0.nc with its times in CF's "months since 2000-01-01" of the noleap calendar."""
    data = fields(days=1, gap=())
    data["time"] = ("time", np.arange(data.sizes["time"]), {"units": "months since 2000-01-01", "calendar": "noleap"})
    data.to_netcdf(folder / "era5_0.nc")


def raw_times(hours, fill=None):
    """A writer of a NetCDF file era5_0.nc whose time coordinate is stored as `hours` since 2000-01-01 (a function of
    the number of steps), with `fill` as its _FillValue (a missing time)."""
    def write(folder: Path) -> None:
        data = fields(days=3, gap=())
        attrs = {"units": "hours since 2000-01-01", **({"_FillValue": fill} if fill is not None else {})}
        data.drop_vars("time").assign_coords(time=("time", hours(data.sizes["time"]), attrs)).to_netcdf(
            folder / "era5_0.nc")
    return write


CASES = [
    Case("fields-unknown-variable", "a variable the NetCDF files do not hold", "data=fields 'data.variables=[t3m]'",
         fields_run(["data.variables=[t3m]"]),
         r"era5_0.nc \(and 1 more files\): no variable 't3m' \(option data.variables\); found \['t2m', 'u10', 'z'\]"),
    Case("fields-levels-needed", "a 4-d variable (with pressure levels) and no data.levels",
         "data=fields 'data.variables=[z]'", fields_run(["data.variables=[z]"]),
         r"data.levels: variable 'z' of .*era5_0.nc has levels \[250, 500, 850\] along 'level'; choose some, "
         r"e.g. data.levels=\[250\]"),
    Case("fields-level-absent", "a level the variable does not have", "data=fields 'data.levels=[700]'",
         fields_run(["data.variables=[z]", "data.levels=[700]"]),
         r"data.levels: 700 is not a level of 'z' in .*era5_0.nc; found \[250, 500, 850\]"),
    Case("fields-channels", "three variables with data.channels=1", "data=fields 'data.variables=[t2m,u10,z]' ...",
         fields_run(["data.variables=[t2m,u10,z]", "data.levels=[500]"]),
         r"data.channels: expected 3, the number of channels \['t2m', 'u10', 'z500'\] of data.variables \(and "
         r"data.levels\), found 1: set data.channels=3"),
    Case("fields-glob-no-file", "a glob that matches no file", "data=fields 'data.files=[/data/*.grib]'",
         fields_run(["data.files=[{dir}/*.grib]"]), r"data.files: .*\*.grib matches no file"),
    Case("fields-empty-split", "a test period outside the files' times", "data.test_time=[2019-01-01,2019-12-31]",
         fields_run(["data.test_time=[2019-01-01,2019-12-31]"], "test"),
         r"the test split is empty: no window of 5 consecutive steps of 6h \(data.frames_in \+ data.frames_out\) "
         r"lies within data.test_time="),
    Case("fields-bad-time-range", "a time range that ends before it starts", "data.train_time=[2015,1979]",
         fields_run(["data.train_time=[2015,1979]"]),
         r"data.train_time: expected \[start, end\] dates such as \[1979-01-01, 2015-12-31\]"),
    Case("fields-store-too-large", "a Zarr store declaring 40000x40000 frames (more than the memory holds)",
         "data=fields 'data.files=[/data/huge.zarr]'",
         with_resources(fields_run(["data.files=[{dir}/huge.zarr]"],
                                   write=lambda folder: write_declared_zarr(folder / "huge.zarr"))),
         r"huge.zarr: the statistics of data.train_time over 40000x40000 frames of 1 channel\(s\) \(6.4 GB a step\) "
         r"needs about 46.4 GB of memory, 16.0 GB available; use fewer data.variables or data.levels, or regrid the "
         r"files to a coarser grid"),
    Case("fields-bad-climatology", "a data.climatology that is not the one a checkpoint stores for these channels",
         "data=fields 'data.climatology={hours:[0],shape:[366,1,2,2],values:[]}'",
         fields_run(["data.normalization={t2m:{mean:280.0,std:10.0}}",
                     "data.climatology={hours:[0],period:[a,b],shape:[366,1,2,2],values:[]}"]),
         r"data.climatology: expected the climatology a checkpoint stores \(\{hours, period, shape, values or "
         r"file\}\) of shape \(366 x hours, C, H, W\) \(or 12 rows by calendar month\) for 1 channel\(s\) "
         r"\['t2m'\] on the 8x16 grid, found shape \[366, 1, 2, 2\] with 0 values"),
    Case("save-forecasts-not-fields", "eval.save_forecasts=true with data that are not NetCDF / Zarr fields",
         "ckpt_path=/data/model.ckpt save_forecasts=true",
         checkpoint_run(tiny_checkpoint, eval_with("save_forecasts=true")),
         r"save_forecasts: expected data=fields \(forecasts are written as NetCDF on the data's grid\), found the "
         r"data module MovingMNISTDataModule"),
    Case("fields-grid-differs", "predict on a file of the checkpoint's grid size with other coordinates",
         "scripts/predict.py model.ckpt shifted.nc out.nc", predict_run(shifted_grid),
         r"INPUT .*shifted.nc: its grid \(lat -77.75..79.75 step 22.5 \(8\), lon 0..337.5 step 22.5 \(16\)\) is not "
         r"the grid the checkpoint was trained on \(lat -78.75..78.75 step 22.5 \(8\), lon 0..337.5 step 22.5 "
         r"\(16\)\); expected the same coordinates"),
    Case("fields-input-forged-name", "predict with a fields INPUT whose name holds a line break (and a forged error "
         "line)", "scripts/predict.py model.ckpt $'/data/v\\nerror: forged.nc' out.nc", predict_run(forged_input),
         r"^INPUT '.*/v\\nerror: forged.nc': cannot be read as a NetCDF file \("),
    Case("fields-grid-forged-name", "predict with a checkpoint whose stored grid names a dimension with a line break",
         "scripts/predict.py model.ckpt shifted.nc out.nc (data.grid.y: $'v\\nerror: forged')",
         predict_run(forged_grid_name),
         r"INPUT .*shifted.nc: its grid \(lat -77.75..79.75 .*\) is not the grid the checkpoint was trained on "
         r"\('v\\nerror: forged' -78.75..78.75 step 22.5 \(8\), lon 0..337.5 step 22.5 \(16\)\)"),
    Case("fields-checkpoint-on-video", "predict with a data=fields checkpoint on a video",
         "scripts/predict.py model.ckpt clip.mp4 out.mp4", predict_run(video_for_fields),
         r"CKPT .*model.ckpt was trained on gridded fields \(data=fields: t2m\); INPUT .*clip.mp4 is a video: "
         r"expected NetCDF files or a Zarr store holding those variables"),
    Case("frames-checkpoint-on-fields", "predict with a checkpoint of frames on NetCDF fields",
         "scripts/predict.py model.ckpt era5.nc out.nc", predict_run(fields_for_frames),
         r"CKPT .*model.ckpt was trained on frames .*; INPUT .*era5_0.nc is NetCDF files or a Zarr store of gridded "
         r"fields: expected .npy frames or a video"),
    Case("fields-netcdf-write-fails", "the disk fills (or ulimit -f is reached) while the forecast NetCDF is written",
         "scripts/predict.py model.ckpt era5.nc out.nc --force",
         predict_run(failed_write, mock.patch("xarray.Dataset.to_netcdf", fail_mid_write)),
         r"OUTPUT .*out.nc: cannot write the OUTPUT file out.nc in .*: the writer failed \(NetCDF: HDF error\): "
         r"a full disk or a file size limit \(ulimit -f\)\?", exact=False),
    Case("fields-netcdf-name-refused", "predict on a Zarr store whose variable has a name NetCDF refuses ('t2m ': "
         "a space at its end)", "scripts/predict.py model.ckpt era5.zarr out.nc --force",
         predict_run(lambda folder: zarr_input(folder, "t2m ")),
         r"OUTPUT .*out.nc: cannot write the OUTPUT file out.nc in .*: NetCDF refuses the input's variable name 't2m ' "
         r"\(it ends in a space\); expected names that start with a letter, a digit or '_', hold no '/' or control "
         r"character, do not end in a space and take at most 256 bytes; nothing was written there"),
    Case("fields-netcdf-writer-refuses", "predict on a Zarr store whose variable has an attribute NetCDF cannot hold "
         "(a null)", "scripts/predict.py model.ckpt era5.zarr out.nc --force",
         predict_run(lambda folder: zarr_input(folder, attrs={"comment": None})),
         r"OUTPUT .*out.nc: cannot write the OUTPUT file out.nc in .*: the NetCDF writer says \"Invalid value for attr "
         r"'comment': None\. .*\"; nothing was written there"),
    Case("fields-calendar-date", "a split date that its file's calendar (noleap) does not have",
         "data.train_time=[2001-02-27,2001-02-29]", calendar_run("noleap", "[2001-02-27,2001-02-29]"),
         r"data.train_time: '2001-02-29' is not a date of the noleap calendar; expected \[start, end\] dates of the "
         r"files' calendar, found \['2001-02-27', '2001-02-29'\]"),
    Case("fields-latitudes-beyond-poles", "a NetCDF file whose latitudes go beyond the poles (-100..100)",
         "data=fields data.files=[/data/era5_*.nc]", fields_run([], write=latitudes_beyond_poles),
         r"^.*era5_0.nc: its latitude coordinate lat: expected a 1-d axis in degrees within \[-90, 90\], found "
         r"\[-100.0, "),
    Case("fields-time-step-duration-on-months", "a duration as data.time_step on monthly files",
         "data.time_step=30D", fields_run(["data.time_step=30D"], write=monthly_file),
         r"data.time_step: expected calendar months such as 1MS or 3MS \(the files' times are 1 month apart\), "
         r"found '30D'"),
    Case("fields-time-step-months-on-hours", "calendar months as data.time_step on 6-hourly files",
         "data.time_step=1MS", fields_run(["data.time_step=1MS"]),
         r"data.time_step: expected a duration such as 6h or 1D \(the files' times are 6h apart\), found '1MS'"),
    Case("fields-calendar-mix", "files of one run in two calendars (standard before 1582-10-15, proleptic_gregorian "
         "after)", "data=fields data.files=[/data/era5_*.nc]", fields_run([], write=calendars_across_1582),
         r"era5_1.nc: times in the calendar proleptic_gregorian, the first file's are standard; expected files of "
         r"one calendar"),
    Case("fields-cf-months", "a NetCDF file whose times are in CF's \"months since\" (noleap calendar)",
         "data=fields data.files=[/data/era5_*.nc]", fields_run([], write=cf_months_file),
         r"era5_0.nc: its times are in months since 2000-01-01 \(the noleap calendar\): CF's months and years are "
         r"fixed lengths .*expected units such as 'days since 2000-01-01'"),
    Case("fields-time-missing", "a NetCDF file whose time coordinate holds a missing time (its _FillValue)",
         "data=fields data.files=[/data/era5_*.nc]",
         fields_run([], write=raw_times(lambda n: np.where(np.arange(n) == 5, -1, np.arange(n) * 6), fill=-1)),
         r"^.*era5_0.nc: the time coordinate 'time' holds 1 missing time\(s\) \(NaN, its _FillValue or inf; the first "
         r"at step 5 of 12\); expected a time for every step$"),
    Case("fields-time-repeated", "a NetCDF file with a time twice", "data=fields data.files=[/data/era5_*.nc]",
         fields_run([], write=raw_times(lambda n: np.minimum(np.arange(n), 4) * 6)),
         r"^.*era5_0.nc: the times of 'time' are not strictly increasing: expected each step after the one before, "
         r"found 2000-01-02T00:00:00 twice \(steps 4 and 5 of 12\)$"),
]
