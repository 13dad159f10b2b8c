"""Error-sweep cases of data=fields (NetCDF / Zarr fields): variables, levels, channels and time splits that
do not fit the files; collected by test_errors.py."""

from pathlib import Path

from cases_data import with_resources
from convgru.training import cli
from convgru.training.options import instantiate
from fields_data import write_declared_zarr, write_netcdf
from sweep import Case, assert_kept, checkpoint_run, compose_config, digest, eval_with, raised, tiny_checkpoint

FIELDS = ["data=fields", "data.files=[{dir}/era5_*.nc]", "data.variables=[t2m]", "data.frames_in=3",
          "data.frames_out=2", "data.num_workers=0", "data.train_time=[2000-01-01,2000-01-06]",
          "data.val_time=[2000-01-07,2000-01-08]", "data.test_time=[2000-01-09,2000-01-10]"]


def fields_run(overrides, split: str = "train", write=lambda folder: write_netcdf(folder, 2)) -> callable:
    """Write two NetCDF files of fields into the folder (or what `write` writes), build data=fields with
    `overrides` ({dir} is the folder), set it up and take the first batch of `split`."""
    def run(folder: Path) -> str:
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
         r"file\}\) of shape \(366 x hours, C, H, W\) for 1 channel\(s\) \['t2m'\] on the 8x16 grid, found shape "
         r"\[366, 1, 2, 2\] with 0 values"),
    Case("save-forecasts-not-fields", "eval.save_forecasts=true with data that are not NetCDF / Zarr fields",
         "ckpt_path=/data/model.ckpt save_forecasts=true",
         checkpoint_run(tiny_checkpoint, eval_with("save_forecasts=true")),
         r"save_forecasts: expected data=fields \(forecasts are written as NetCDF on the data's grid\), found the "
         r"data module MovingMNISTDataModule"),
]
