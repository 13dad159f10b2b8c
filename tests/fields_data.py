"""Small NetCDF files and Zarr stores of gridded fields for the data=fields tests (built with xarray)."""

from pathlib import Path

import numpy as np

LAT = np.linspace(-78.75, 78.75, 8)  # 8 rows, like a coarse WeatherBench grid
LON = np.arange(0, 360, 22.5)  # 16 columns
LEVELS = [250, 500, 850]
GAP = ("2000-01-02T12", "2000-01-02T18")  # two missing 6-hourly steps


def times(days: int = 10, gap=GAP) -> np.ndarray:
    """6-hourly times from 2000-01-01 over `days` days, without the steps of `gap`."""
    every = np.arange(np.datetime64("2000-01-01T00", "ns"), np.datetime64("2000-01-01T00", "ns") +
                      np.timedelta64(days, "D"), np.timedelta64(6, "h"))
    return every[~np.isin(every, np.array(gap, dtype="datetime64[ns]"))]


def land() -> np.ndarray:
    """(8, 16) bool: the points where t2m is missing (NaN)."""
    mask = np.zeros((len(LAT), len(LON)), bool)
    mask[2:4, 5:9] = True
    return mask


def fields(days: int = 10, gap=GAP, seed: int = 0):
    """An xarray Dataset: t2m (K, NaN over `land()`), u10 (m s-1) and z (m2 s-2, on LEVELS) on a
    latitude-longitude grid, 6-hourly from 2000-01-01, with a gap."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    t = times(days, gap)
    hours = (t - t[0]) / np.timedelta64(1, "h")
    wave = np.sin(2 * np.pi * (hours[:, None, None] / 24 + LON[None, None, :] / 360))
    t2m = 280 + 20 * np.cos(np.deg2rad(LAT))[None, :, None] + 3 * wave + rng.normal(0, 0.5, (len(t), 8, 16))
    t2m[:, land()] = np.nan
    u10 = 5 * wave + rng.normal(0, 1, (len(t), 8, 16))
    z = (np.array(LEVELS)[None, :, None, None] * -100 + 100000 + 500 * wave[:, None]
         + rng.normal(0, 50, (len(t), len(LEVELS), 8, 16)))
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), t2m.astype(np.float32), {"units": "K", "long_name": "2 metre temperature"}),
         "u10": (("time", "lat", "lon"), u10.astype(np.float32), {"units": "m s-1"}),
         "z": (("time", "level", "lat", "lon"), z.astype(np.float32),
               {"units": "m2 s-2", "long_name": "Geopotential"})},
        coords={"time": t, "level": ("level", LEVELS, {"units": "hPa", "axis": "Z"}),
                "lat": ("lat", LAT, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", LON, {"standard_name": "longitude", "units": "degrees_east"})},
        attrs={"title": "test fields"})


def write_netcdf(folder: Path, parts: int = 2, **options) -> list[Path]:
    """`fields(**options)` split along time into `parts` NetCDF files era5_<i>.nc in `folder` (written last
    file first, so that their order comes from their times); returns the paths."""
    data = fields(**options)
    cuts = np.array_split(np.arange(data.sizes["time"]), parts)
    paths = [Path(folder) / f"era5_{i}.nc" for i in range(parts)]
    for path, cut in reversed(list(zip(paths, cuts))):
        data.isel(time=cut).to_netcdf(path)
    return paths


def write_zarr(path: Path, chunk_time: int = 1, **options) -> Path:
    """`fields(**options)` as a Zarr store at `path`, `chunk_time` steps per chunk."""
    data = fields(**options)
    encoding = {name: {"chunks": (chunk_time, *data[name].shape[1:])} for name in data.data_vars}
    data.to_zarr(path, encoding=encoding, zarr_format=2, consolidated=True)
    return Path(path)


GRID = {"y": "lat", "x": "lon", "y_values": LAT.tolist(), "x_values": LON.tolist(), "longitude": True}


def write_checkpoint(path: Path, grid: dict | None = GRID, variables=("t2m",)) -> Path:
    """A tiny untrained data=fields checkpoint at `path` (frames_in 3, future 2, one ConvGRU level of 4
    channels): the data config of a run on `fields()` with its normalization and, unless None, its `grid`
    (convgru 0.2.0 recorded none)."""
    import torch

    from convgru.training import ForecastModule

    data = {"_target_": "convgru.data.FieldDataModule", "files": [str(path.parent / "era5_*.nc")],
            "variables": list(variables), "levels": None, "dims": None, "time_step": None, "frames_in": 3,
            "frames_out": 2, "channels": len(variables),
            "normalization": {name: {"mean": 285.0 if name == "t2m" else 0.0, "std": 10.0} for name in variables}}
    if grid is not None:
        data["grid"] = grid
    torch.manual_seed(0)
    module = ForecastModule(net=dict(in_channels=len(variables), out_channels=len(variables), hidden_sizes=[4],
                                     kernel_size=3, stem_channels=4), future=2, data=data)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path
def seasonal(days: int = 400, hours: int = 12, seed: int = 0):
    """A tiny xarray Dataset spanning more than a year (ACC's climatology by day of year and hour of day): t2m (K)
    on a 4x8 latitude-longitude grid every `hours` hours from 2001-01-01 for `days` days, with a seasonal and a
    diurnal cycle and noise."""
    import xarray as xr

    first = np.datetime64("2001-01-01T00", "ns")
    t = np.arange(first, first + np.timedelta64(days, "D"), np.timedelta64(hours, "h"))
    day = (t - t[0]) / np.timedelta64(1, "D")
    lat, lon = np.linspace(-60, 60, 4), np.arange(0, 360, 45.0)
    cycle = 10 * np.cos(2 * np.pi * day / 365.25)[:, None, None] * np.sin(np.deg2rad(lat))[None, :, None] \
        + 3 * np.sin(2 * np.pi * (day[:, None, None] + lon[None, None, :] / 360))
    t2m = 280 + cycle + np.random.default_rng(seed).normal(0, 1, (len(t), 4, 8))
    return xr.Dataset({"t2m": (("time", "lat", "lon"), t2m.astype(np.float32), {"units": "K"})},
                      coords={"time": t, "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
                              "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})})


def write_declared_zarr(path: Path, size: int = 40000, steps: int = 12) -> Path:
    """A Zarr store whose t2m declares `steps` 6-hourly frames of size x size from 2000-01-01 but holds no chunk
    (a store too large to read, a few KB on disk)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    time = root.create_array("time", shape=(steps,), dtype="i8", fill_value=None, attributes={
        "_ARRAY_DIMENSIONS": ["time"], "units": "hours since 2000-01-01", "calendar": "standard"})
    time[:] = np.arange(steps) * 6
    for name, (low, high) in (("lat", (-90, 90)), ("lon", (0, 360))):
        coord = root.create_array(name, shape=(size,), dtype="f4", fill_value=None,
                                  attributes={"_ARRAY_DIMENSIONS": [name]})
        coord[:] = np.linspace(low, high, size, dtype=np.float32)
    root.create_array("t2m", shape=(steps, size, size), chunks=(1, 4000, 4000), dtype="f4", fill_value=np.nan,
                      attributes={"_ARRAY_DIMENSIONS": ["time", "lat", "lon"], "units": "K"})
    zarr.consolidate_metadata(str(path))
    return Path(path)
