"""data=fields: gridded fields from NetCDF files and Zarr stores (channels, time split, gaps, lazy reads,
normalization), the weather scores (latitude-weighted RMSE, ACC) and forecasts written back as NetCDF."""

import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("xarray")

import xarray as xr  # noqa: E402

from convgru._checks import OptionError  # noqa: E402
from convgru.data import (
    FieldDataModule,  # noqa: E402
    field_module,  # noqa: E402
)
from convgru.data.fields import FieldSource, TimeStep, expand, window_starts  # noqa: E402
from convgru.domain.fields import (  # noqa: E402
    FieldScores,
    acc_from_sums,
    anomaly_sums,
    denormalize,
    latitude_weights,
    normalize,
    weighted_rmse,
)
from fields_data import (  # noqa: E402
    GAP,
    LAT,
    fields,
    land,
    seasonal,
    times,
    write_declared_zarr,
    write_netcdf,
    write_zarr,
)

SPLIT = {"train_time": ["2000-01-01", "2000-01-06"], "val_time": ["2000-01-07", "2000-01-08"],
         "test_time": ["2000-01-09", "2000-01-10"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two NetCDF files (written out of order) and a Zarr store of the same fields."""
    folder = tmp_path_factory.mktemp("fields")
    return {"netcdf": write_netcdf(folder, 2), "zarr": write_zarr(folder / "era5.zarr"), "folder": folder}


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """A NetCDF file of 13 months of 12-hourly t2m on a 4x8 grid (a climatology by day of year needs a year)."""
    path = tmp_path_factory.mktemp("year") / "year.nc"
    seasonal().to_netcdf(path)
    return path


YEAR = {"train_time": ["2001-01-01", "2001-12-31"], "val_time": ["2002-01-01", "2002-01-10"],
        "test_time": ["2002-01-11", "2002-02-04"]}


def year_module(path, tmp_path, **options):
    return FieldDataModule(**{"files": [str(path)], "variables": ["t2m"], "frames_in": 2, "frames_out": 3,
                              "cache_dir": tmp_path / "cache", "batch_size": 16, "num_workers": 0, **YEAR, **options})


def module(files, tmp_path, **options):
    settings = {"variables": ["t2m", "u10", "z"], "levels": [500, 850], "channels": 4, **SPLIT,
                "frames_in": 3, "frames_out": 2, "cache_dir": tmp_path / "cache", "batch_size": 2, "num_workers": 0,
                **options}
    return FieldDataModule(files=files, **settings)


@pytest.mark.parametrize("kind", ["netcdf", "zarr"])
def test_channels_in_order_with_levels(data, kind, tmp_path):
    files = [str(data["folder"] / "era5_*.nc")] if kind == "netcdf" else [str(data["zarr"])]
    source = FieldSource(expand(files), ["u10", "z", "t2m"], [850, 500])
    assert source.names == ["u10", "z850", "z500", "t2m"]
    assert source.units == ["m s-1", "m2 s-2", "m2 s-2", "K"]
    truth = fields()
    np.testing.assert_array_equal(source.times, truth.time.values)  # files ordered by their times
    block = source.read(5, 9)
    np.testing.assert_array_equal(block[:, 0], truth.u10.values[5:9])
    np.testing.assert_array_equal(block[:, 1], truth.z.sel(level=850).values[5:9])
    np.testing.assert_array_equal(block[:, 2], truth.z.sel(level=500).values[5:9])
    np.testing.assert_array_equal(block[:, 3], truth.t2m.values[5:9])  # NaN over land, as in the file
    np.testing.assert_allclose(source.latitudes, LAT)


def test_dimensions_from_cf_attributes_or_given(tmp_path):
    odd = fields().rename({"lat": "row", "lon": "col", "time": "when", "level": "plev"})
    odd["row"].attrs, odd["col"].attrs = {"axis": "Y"}, {"axis": "X"}
    odd["when"].attrs["axis"] = "T"
    odd.to_netcdf(tmp_path / "odd.nc")
    source = FieldSource([tmp_path / "odd.nc"], ["z"], [500])
    assert source.channels[0].dims == {"time": "when", "y": "row", "x": "col", "level": "plev"}
    for name in ("row", "col", "when"):
        odd[name].attrs = {}
    odd.to_netcdf(tmp_path / "bare.nc")
    with pytest.raises(ValueError, match="no time, y, x dimension.*data.dims"):
        FieldSource([tmp_path / "bare.nc"], ["t2m"])
    given = FieldSource([tmp_path / "bare.nc"], ["t2m"], dims={"time": "when", "y": "row", "x": "col"})
    assert given.read(0, 2).shape == (2, 1, 8, 16)


def test_time_split_skips_windows_across_the_gap(data, tmp_path):
    dm = module([str(p) for p in data["netcdf"]], tmp_path)
    dm.setup()
    t = times()
    step = TimeStep(np.timedelta64(6, "h"))
    gap = np.array(GAP, dtype="datetime64[ns]")
    seen = set()
    for split, (first, last) in zip(("train", "val", "test"), SPLIT.values()):
        starts = dm.datasets[split].starts
        assert len(starts) > 0
        for s in starts:
            window = t[s:s + 5]
            assert step.follows(window).all(), "a window crosses the gap"
            assert window[0] >= np.datetime64(first) and window[-1] < np.datetime64(last) + np.timedelta64(1, "D")
            assert not (window[0] < gap[0] < window[-1])
            seen.add(int(s))
        # every window inside the period and off the gap is there: a brute-force count
        inside = [s for s in range(len(t) - 4) if step.follows(t[s:s + 5]).all()
                  and t[s] >= np.datetime64(first) and t[s + 4] < np.datetime64(last) + np.timedelta64(1, "D")]
        assert list(starts) == inside
    assert len(seen) == sum(len(d) for d in dm.datasets.values())  # splits share no window
    assert window_starts(t, step, 5, stride=3).tolist() == window_starts(t, step, 5)[::3].tolist()


def test_time_step_subsamples(data):
    source = FieldSource(data["netcdf"], ["u10"], time_step="12h")
    assert (np.diff(source.times) >= np.timedelta64(12, "h")).all()
    assert source.times[0] == np.datetime64("2000-01-01T00") and len(source.times) == 19
    with pytest.raises(OptionError, match="time_step: 3h is finer than the data's spacing"):
        FieldSource(data["netcdf"], ["u10"], time_step="3h")
    with pytest.raises(OptionError, match="time_step: expected a positive duration such as 6h"):
        FieldSource(data["netcdf"], ["u10"], time_step="6")


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_normalization_stats_match_numpy_and_are_cached(data, tmp_path, monkeypatch, caplog):
    dm = module([str(data["zarr"])], tmp_path)
    with caplog.at_level("INFO", logger="convgru.data.field_module"):
        dm.setup()
    assert "Computing the statistics of data.train_time: 22 steps of 4x8x16 (45.1 kB) from" in caplog.text  # said first
    truth = fields().sel(time=slice("2000-01-01", "2000-01-06"))
    for name, values in (("t2m", truth.t2m.values), ("u10", truth.u10.values),
                         ("z500", truth.z.sel(level=500).values)):
        stats = dm.normalization[name]
        assert stats["mean"] == pytest.approx(np.nanmean(values.astype(np.float64)), rel=1e-9)
        assert stats["std"] == pytest.approx(np.nanstd(values.astype(np.float64)), rel=1e-9)
    assert "climatology" not in dm.stats() and "under a year" in dm.stats()["note"]  # 10 days: no ACC
    assert dm.stats_path().is_file()
    monkeypatch.setattr(field_module, "CHUNK_BYTES", 1)  # one step at a time: the same numbers
    streamed = field_module.field_stats(dm.source, np.arange(8))
    whole = dm.source.read(0, 8).astype(np.float64)
    np.testing.assert_allclose(streamed["std"], np.nanstd(whole, axis=(0, 2, 3)), rtol=1e-9)
    monkeypatch.setattr(field_module, "field_stats", lambda *a: pytest.fail("the cache was not used"))
    again = module([str(data["zarr"])], tmp_path)
    again.setup()
    assert again.normalization == dm.normalization


def test_items_are_normalized_with_missing_points(data, tmp_path):
    dm = module([str(data["zarr"])], tmp_path)
    dm.setup()
    x, y, rows = dm.datasets["train"][0]
    assert x.shape == (3, 4, 8, 16) and y.shape == (2, 4, 8, 16) and rows.tolist() == [-1, -1]  # no climatology
    s = int(dm.datasets["train"].starts[0])
    raw = dm.source.read(s, s + 5)
    mean = [dm.normalization[n]["mean"] for n in dm.source.names]
    std = [dm.normalization[n]["std"] for n in dm.source.names]
    expected = normalize(raw, mean, std)
    assert torch.isnan(y[:, 0][:, torch.from_numpy(land())]).all() and not torch.isnan(y[:, 1:]).any()
    assert (x[:, 0][:, torch.from_numpy(land())] == 0.5).all() and not x.isnan().any()
    np.testing.assert_allclose(y.numpy(), expected[3:], rtol=1e-6)
    np.testing.assert_allclose(denormalize(y, mean, std).numpy(), raw[3:], rtol=1e-5)
    copy = pickle.loads(pickle.dumps(dm.datasets["train"]))  # as DataLoader workers get it: files reopened
    assert copy.source._datasets is None
    torch.testing.assert_close(copy[0][1], y, equal_nan=True)
    strict = module([str(data["zarr"])], tmp_path, missing_value=None)
    strict.setup()
    with pytest.raises(ValueError, match="NaN in input and target frames"):
        strict.datasets["train"][0]


def count_fetches(monkeypatch) -> list:
    """[(key, bytes)] of every chunk read from a local Zarr store from now on."""
    import zarr.storage

    fetched = []
    original = zarr.storage.LocalStore.get

    async def get(self, key, prototype=None, byte_range=None):
        out = await original(self, key, prototype, byte_range)
        if out is not None:
            fetched.append((key, len(out)))
        return out

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    return fetched


def test_batches_read_only_their_windows(data, tmp_path, monkeypatch):
    """A batch reads the chunks of its windows, not the store: counted in bytes fetched from the store."""
    dm = module([str(data["zarr"])], tmp_path, variables=["t2m"], levels=None, channels=1)
    dm.setup()
    fetched = count_fetches(monkeypatch)
    next(iter(dm.test_dataloader()))
    chunks = [key for key, _ in fetched if key.startswith("t2m/")]
    assert len(chunks) == 2 * 5  # batch 2, 5 steps, one step per chunk
    store = sum(p.stat().st_size for p in (data["zarr"] / "t2m").iterdir() if p.name[0].isdigit())
    assert sum(n for _, n in fetched) < store / 3


def test_windows_are_served_from_whole_time_chunks(tmp_path, monkeypatch, caplog):
    """A store chunked along time is read a whole chunk at a time, each chunk once while it stays in the
    cache: an epoch over the whole series in one chunk fetches it once (a window at a time fetched it once per
    window), a batch fetches each of its chunks once; the items are those read step by step; one line says so."""
    from convgru.data import fields as fields_module

    whole = write_zarr(tmp_path / "whole.zarr", chunk_time=len(times()))
    dm = module([str(whole)], tmp_path, variables=["t2m"], levels=None, channels=1)
    with caplog.at_level("WARNING", logger="convgru.data.field_module"):
        dm.setup()
    assert "its chunks hold 38 time steps, more than four windows of 5: each chunk is read whole once" in caplog.text
    fetched = count_fetches(monkeypatch)
    train = pickle.loads(pickle.dumps(dm.datasets["train"]))  # as a DataLoader worker gets it: no cache yet
    items = [train[i] for i in range(len(train))]
    assert len([key for key, _ in fetched if key.startswith("t2m/")]) == 1 < len(items)
    monkeypatch.setattr(fields_module, "CACHE_BYTES", 0)  # too small: read as asked, a window at a time
    fresh = module([str(whole)], tmp_path, variables=["t2m"], levels=None, channels=1)
    fresh.setup()
    fetched.clear()
    for i in range(len(items)):
        torch.testing.assert_close(fresh.datasets["train"][i], items[i], equal_nan=True)  # NaN over land
    assert len([key for key, _ in fetched if key.startswith("t2m/")]) == len(items)
    monkeypatch.setattr(fields_module, "CACHE_BYTES", 1 << 28)
    four = module([str(write_zarr(tmp_path / "four.zarr", chunk_time=4))], tmp_path, variables=["t2m"], levels=None,
                  channels=1)
    four.setup()
    four.datasets["test"] = pickle.loads(pickle.dumps(four.datasets["test"]))
    fetched.clear()
    next(iter(four.test_dataloader()))
    chunks = [key for key, _ in fetched if key.startswith("t2m/")]
    assert len(chunks) == len(set(chunks)) <= 2 * 2  # batch 2 windows of 5 steps: at most 2 chunks of 4 each


def test_latitude_weighted_rmse_and_acc_by_hand():
    rng = np.random.default_rng(1)
    lat = np.array([-60.0, 0.0, 45.0])
    f, t, c = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4)), rng.normal(size=(3, 4))
    t[1, 0, 2] = np.nan
    w = np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean()
    weights = latitude_weights(lat)
    np.testing.assert_allclose(weights.numpy(), w)
    rmse = weighted_rmse(torch.tensor(f), torch.tensor(t), weights).numpy()
    for i in range(2):
        valid = ~np.isnan(t[i])
        ww = np.broadcast_to(w[:, None], (3, 4))[valid]
        assert rmse[i] == pytest.approx(math.sqrt((ww * (f[i] - t[i])[valid] ** 2).sum() / ww.sum()))
    # all points valid: Rasp et al. eq. 1, the 1 / (N_lat N_lon) form
    assert float(weighted_rmse(torch.tensor(f[0]), torch.tensor(f[0] + 2), weights)) == pytest.approx(2.0)
    sums = anomaly_sums(torch.tensor(f), torch.tensor(t), torch.tensor(c), weights).sum(0)
    valid = ~np.isnan(t)
    fa, ta = (f - c)[valid], (t - c)[valid]
    ww = np.broadcast_to(w[None, :, None], t.shape)[valid]
    hand = (ww * fa * ta).sum() / math.sqrt((ww * fa ** 2).sum() * (ww * ta ** 2).sum())
    assert float(acc_from_sums(sums)) == pytest.approx(hand)
    metric = FieldScores(1, 1, weights, acc=True)
    metric.update(torch.tensor(f)[:, None, None], torch.tensor(t)[:, None, None], torch.tensor(c)[None, None, None])
    scores = metric.compute()
    assert float(scores["rmse"]) == pytest.approx(rmse.mean())  # (1, 1), squeezed by torchmetrics
    assert float(scores["acc"]) == pytest.approx(hand)
    assert math.isnan(float(acc_from_sums(anomaly_sums(torch.tensor(c), torch.tensor(t[0]), torch.tensor(c),
                                                      weights))))


def test_forecast_netcdf_round_trips(data, tmp_path):
    from convgru.data.fields import forecast_dataset, write_forecasts

    source = FieldSource(data["netcdf"], ["t2m", "z"], [500, 850])
    values = np.random.default_rng(0).normal(size=(2, 3, 3, 8, 16)).astype(np.float32)
    inits = source.times[[4, 9]]
    write_forecasts(tmp_path / "f.nc", forecast_dataset(source.grid, source.names, source.channels, values, inits,
                                                        source.step))
    with xr.open_dataset(tmp_path / "f.nc") as back:
        np.testing.assert_array_equal(back.t2m.values, values[:, :, 0])
        np.testing.assert_array_equal(back.z.sel(level=850).values, values[:, :, 2])
        np.testing.assert_array_equal(back.lat.values, LAT)
        assert back.lat.attrs["standard_name"] == "latitude" and back.t2m.attrs["units"] == "K"
        assert (back.lead_time.values == np.array([6, 12, 18], "timedelta64[h]")).all()
        np.testing.assert_array_equal(back.init_time.values, inits)
        assert back.time.values[1, 0] == inits[1] + np.timedelta64(6, "h")


def test_weatherbench_experiment_composes(tmp_path):
    from conftest import compose_config

    cfg = compose_config("train", tmp_path, ["experiment=weatherbench", "data.files=[era5.nc]"])
    assert cfg.data._target_ == "convgru.data.FieldDataModule"
    assert (cfg.data.frames_in, cfg.data.frames_out, list(cfg.data.variables)) == (12, 12, ["t2m"])
    assert list(cfg.data.train_time) == ["1979-01-01", "2015-12-31"] and list(cfg.data.test_time)[1] == "2018-12-31"
    assert cfg.model.net.in_channels == cfg.model.net.out_channels == 1 and cfg.model.future == 12


@pytest.mark.slow
def test_train_eval_and_predict_netcdf(data, tmp_path, capsys):
    """experiment=quickstart data=fields trains; eval scores it against persistence and climatology and writes
    its test forecasts; predict.py writes a NetCDF forecast on the input's grid, in physical units."""
    import importlib.util
    import json

    import convgru.training
    from conftest import ROOT, compose_config

    folder = data["folder"]
    overrides = ["experiment=quickstart", "data=fields", f"data.files=[{folder}/era5_*.nc]", "data.variables=[t2m]",
                 *(f"data.{k}=[{a},{b}]" for k, (a, b) in SPLIT.items()), "data.frames_in=3", "data.frames_out=2",
                 "data.num_workers=0", "data.batch_size=4", "model.net.hidden_sizes=[4,4]", "model.net.stem_channels=4",
                 "trainer.max_epochs=1", "callbacks.prediction_images.num_sequences=2", "logger=csv"]
    metrics = convgru.training.train(compose_config("train", tmp_path / "run", overrides, tmp_path / "cache"))
    for key in ("test/rmse_t2m", "test/persistence/rmse_t2m_12h"):
        assert math.isfinite(metrics[key]), key
    assert 0 < metrics["test/rmse_t2m"] < 10  # kelvin, not normalized units
    assert "test/acc_t2m" not in metrics and "test/climatology/rmse_t2m" not in metrics  # 10 days: no climatology
    assert "ACC and the climatology baseline left out: the training period" in capsys.readouterr().out
    ckpt = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))
    stored = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data"]["normalization"]
    assert set(stored) == {"t2m"} and 280 < stored["t2m"]["mean"] < 310
    grid = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data"]["grid"]  # eval and predict align to it
    assert (grid["y"], grid["x"], grid["y_values"], grid["longitude"]) == ("lat", "lon", LAT.tolist(), True)
    # the files' own step (data.time_step=null): predict reads new input at it
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["data"]["time_step"] == "6h"

    options = [f"ckpt_path={ckpt}", "save_forecasts=true", "figures.enabled=true"]
    summary = convgru.training.evaluate(compose_config("eval", tmp_path / "eval", options, tmp_path / "cache"), options)
    figures = tmp_path / "eval" / "figures"
    assert {"rmse.png", "forecasts_t2m.png", "scores.png"} <= {p.name for p in figures.iterdir()}  # no ACC: < a year
    assert (figures / "rmse.csv").read_text().splitlines()[0].startswith("lead_time_h,rmse_t2m,persistence/rmse_t2m")
    assert "Scores of the fields on the test set" in capsys.readouterr().out
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["rmse_t2m_12h"] == pytest.approx(summary["rmse_t2m_12h"])
    header = (tmp_path / "eval" / "per_frame.csv").read_text().splitlines()[0].split(",")
    assert {"rmse_t2m", "persistence/rmse_t2m", "mse", "ssim"} <= set(header)
    with xr.open_dataset(tmp_path / "eval" / "forecasts.nc") as forecasts:
        assert forecasts.t2m.dims == ("init_time", "lead_time", "lat", "lon") and forecasts.sizes["init_time"] == 4
        assert 200 < float(forecasts.t2m.mean()) < 350

    new = tmp_path / "test_only.nc"  # eval on new files: no training period in them
    fields().sel(time=slice("2000-01-09", None)).to_netcdf(new)
    overrides = [f"ckpt_path={ckpt}", f"++data.files=[{new}]"]
    summary = convgru.training.evaluate(compose_config("eval", tmp_path / "eval_new", overrides, tmp_path / "cache"),
                                        overrides)
    assert math.isfinite(summary["rmse_t2m"]) and math.isfinite(summary["persistence/rmse_t2m"])
    assert "acc_t2m" not in summary and "ACC and the climatology baseline left out: they need the training files" \
        in capsys.readouterr().out

    spec = importlib.util.spec_from_file_location("predict_script", ROOT / "scripts" / "predict.py")
    predict = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(predict)
    out = tmp_path / "forecast.nc"
    predict.main([str(ckpt), str(data["netcdf"][1]), str(out), "--init", "2000-01-08T00", "--png",
                  str(tmp_path / "forecast.png")])
    assert (tmp_path / "forecast.png").stat().st_size > 0  # maps in K, one variable: one file
    with xr.open_dataset(out) as back, xr.open_dataset(data["netcdf"][1]) as source:
        np.testing.assert_array_equal(back.lat.values, source.lat.values)
        np.testing.assert_array_equal(back.lon.values, source.lon.values)
        assert back.t2m.attrs == source.t2m.attrs and back.t2m.shape == (1, 2, 8, 16)
        assert back.init_time.values[0] == np.datetime64("2000-01-08T00")
        assert back.time.values[0, 1] == np.datetime64("2000-01-08T12")
        assert 200 < float(back.t2m.mean()) < 350
    with pytest.raises(SystemExit):
        predict.main([str(ckpt), str(data["netcdf"][1]), str(out)])  # exists: not replaced without --force
    assert "OUTPUT" in capsys.readouterr().err
    coarse = tmp_path / "twelve_hourly.nc"  # steps the model was not trained on: refused, not forecast
    with xr.open_dataset(data["netcdf"][1]) as source:
        source.isel(time=slice(None, None, 2)).to_netcdf(coarse)
    with pytest.raises(SystemExit):
        predict.main([str(ckpt), str(coarse), str(tmp_path / "coarse_forecast.nc")])
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.endswith("twelve_hourly.nc: its times are 12h apart; expected 6h (the checkpoint's data.time_step: "
                         "it was trained on steps of 6h), or a step that divides it (the input is then read every "
                         "6h)") and not (tmp_path / "coarse_forecast.nc").exists()


def test_without_xarray_names_the_extra(monkeypatch, tmp_path):
    from convgru.data.fields import open_dataset

    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray raises ImportError
    with pytest.raises(OptionError, match=r'data=fields: NetCDF and Zarr .*need xarray.*pip install -e ".\[fields\]"'):
        open_dataset(tmp_path / "era5.nc")


def test_a_folder_of_files_per_variable(tmp_path):
    """WeatherBench's layout: yearly files per variable, each holding one variable; all at the same times."""
    data = fields()
    for name in ("t2m", "u10"):
        for i, cut in enumerate(np.array_split(np.arange(data.sizes["time"]), 3)):
            (tmp_path / name).mkdir(exist_ok=True)
            data[[name]].isel(time=cut).to_netcdf(tmp_path / name / f"{name}_{i}.nc")
    source = FieldSource(expand([str(tmp_path / "u10" / "*.nc"), str(tmp_path / "t2m" / "*.nc")]), ["t2m", "u10"])
    assert source.names == ["t2m", "u10"] and len(source.times) == data.sizes["time"]
    block = source.read(10, 16)  # across two files of each variable
    np.testing.assert_array_equal(block[:, 0], data.t2m.values[10:16])
    np.testing.assert_array_equal(block[:, 1], data.u10.values[10:16])
    data[["u10"]].isel(time=slice(0, 20)).to_netcdf(tmp_path / "short.nc")
    with pytest.raises(ValueError, match="variable 'u10' covers 20 times .* expected every variable"):
        FieldSource([tmp_path / "t2m" / "t2m_0.nc", tmp_path / "t2m" / "t2m_1.nc", tmp_path / "t2m" / "t2m_2.nc",
                     tmp_path / "short.nc"], ["t2m", "u10"])


def test_predict_never_writes_into_the_input_or_another_format(data, tmp_path, capsys):
    """OUTPUT inside an input Zarr store (one of its chunks), or not a .nc file: refused in one line, before the
    checkpoint is read; the store is unchanged."""
    import hashlib
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("predict_script", ROOT / "scripts" / "predict.py")
    predict = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(predict)
    store = tmp_path / "st.zarr"
    xr.open_dataset(data["netcdf"][0]).to_zarr(store)
    chunk = next(p for p in sorted(store.rglob("*")) if p.is_file() and "t2m" in p.parts and not p.suffix)
    before = hashlib.sha256(chunk.read_bytes()).hexdigest()
    for output, message in ((chunk, "expected a NetCDF file (.nc)"), (store / "t2m" / "fc.nc", "is INPUT or inside it"),
                            (tmp_path / "f.zarr", "expected a NetCDF file (.nc)")):
        with pytest.raises(SystemExit):
            predict.main([str(tmp_path / "missing.ckpt"), str(store), str(output), "--force"])
        assert message in capsys.readouterr().err
    assert hashlib.sha256(chunk.read_bytes()).hexdigest() == before and not (store / "t2m" / "fc.nc").exists()


def hand_climatology(truth, period):
    """The climatology by hand: {(day of year, hour): mean over the period's steps at that hour within 30 days}."""
    train = truth.t2m.sel(time=slice(*period))
    day, hour, values = train.time.dt.dayofyear.values, train.time.dt.hour.values, train.values.astype(np.float64)

    def at(d, h):
        distance = np.abs(day - d)
        return values[(np.minimum(distance, 366 - distance) <= 30) & (hour == h)].mean(0)
    return at


def test_acc_against_the_climatology_by_day_of_year_and_hour_by_hand(year, tmp_path):
    """ACC's anomalies are from the training period's climatology at each target's valid time (day of year,
    hour of day, 61-day window), checked against a hand computation; persistence gets no credit for the
    diurnal cycle (12 h: anti-phase)."""
    from convgru.training.fields import FieldTestScores
    from convgru.training.report import field_table

    dm = year_module(year, tmp_path)
    dm.setup()
    truth, at = seasonal(), hand_climatology(seasonal(), YEAR["train_time"])
    table = dm.climatology()
    assert table["hours"] == [0, 12] and table["values"].shape == (366 * 2, 1, 4, 8)
    for d, h in ((1, 0), (45, 12), (200, 0), (366, 12)):
        np.testing.assert_allclose(table["values"][(d - 1) * 2 + h // 12, 0], at(d, h), rtol=1e-6)
    scoring = dm.scoring()
    assert "by day of year and hour of day (00, 12 h), smoothed over 61 days" in scoring["note"]
    scores = FieldTestScores(scoring, 3)
    forecasts, targets = [], []
    dataset = dm.datasets["test"]
    for x, y, rows in dm.test_dataloader():
        forecast = (y + 0.02 * torch.sin(torch.arange(y.numel()).reshape(y.shape))).clamp(0, 1)
        scores.update(x, forecast, y, rows)
        forecasts.append(denormalize(forecast, dm.normalization["t2m"]["mean"], dm.normalization["t2m"]["std"]))
        targets.append(denormalize(y, dm.normalization["t2m"]["mean"], dm.normalization["t2m"]["std"]))
    summary, _ = scores.results()
    f, t = torch.cat(forecasts).double().numpy()[:, :, 0], torch.cat(targets).double().numpy()[:, :, 0]
    times_ = dataset.source.times[dataset.starts[:, None] + 2 + np.arange(3)[None]]
    clim = np.array([[at(int(d), int(h)) for d, h in zip(*(truth.time.sel(time=row).dt.dayofyear.values,
                                                             truth.time.sel(time=row).dt.hour.values))]
                     for row in times_])
    w = np.cos(np.deg2rad(truth.lat.values))
    w = (w / w.mean())[None, :, None]
    for k, hours in enumerate((12, 24, 36)):
        fa, ta = f[:, k] - clim[:, k], t[:, k] - clim[:, k]
        hand = (w * fa * ta).sum() / math.sqrt((w * fa ** 2).sum() * (w * ta ** 2).sum())
        assert float(summary[f"acc_t2m_{hours}h"]) == pytest.approx(hand, rel=1e-5)
    assert abs(float(summary["persistence/acc_t2m_12h"])) < 0.3  # no credit for the diurnal cycle
    assert float(summary["climatology/rmse_t2m"]) < float(summary["persistence/rmse_t2m_12h"])
    text = field_table({k: float(v) for k, v in summary.items()}, note=scoring["note"])
    assert "ACC against the climatology of 2001-01-01 00:00:00 .. 2001-12-31 12:00:00" in text


def test_eval_on_new_files_with_or_without_the_stored_climatology(year, tmp_path, monkeypatch):
    """A file outside the training period: the checkpoint's normalization and climatology (plain values) score
    ACC; without a stored climatology RMSE and persistence are scored and the table says why ACC is not."""
    from convgru.training.fields import FieldTestScores
    from convgru.training.report import field_table

    dm = year_module(year, tmp_path)
    dm.setup()
    stored = dm.stored_climatology()
    assert stored["shape"] == [732, 1, 4, 8] and len(stored["values"]) == 732 * 32
    assert all(type(v) is float for v in stored["values"][:5]) and stored["hours"] == [0, 12]
    new = tmp_path / "feb.nc"
    seasonal().sel(time=slice("2002-01-11", None)).to_netcdf(new)
    again = year_module(new, tmp_path, normalization=dm.normalization, climatology=stored, val_time=None)
    again.setup()
    np.testing.assert_array_equal(again.scoring()["climatology"], dm.scoring()["climatology"])
    x, y, rows = next(iter(again.test_dataloader()))
    assert torch.equal(rows, next(iter(dm.test_dataloader()))[2])  # the same valid times, the same rows
    bare = year_module(new, tmp_path, normalization=dm.normalization, val_time=None)
    bare.setup()
    scoring = bare.scoring()
    assert scoring["climatology"] is None and "need the training files" in scoring["note"]
    scores = FieldTestScores(scoring, 3)
    scores.update(x, y.nan_to_num(0.5), y, rows)
    summary, _ = scores.results()
    assert "acc_t2m" not in summary and "climatology/rmse_t2m" not in summary and "persistence/rmse_t2m" in summary
    text = field_table({k: float(v) for k, v in summary.items()}, note=scoring["note"])
    assert "need the training files" in text and "data.train_time=['2001-01-01" in text
    assert "rmse" not in field_table({"rmse_t2m_12h": 1.0, "acc_t2m_12h": None}).split("\n")[-1]  # null: empty cell
    with pytest.raises(OptionError, match="data.climatology: expected the climatology a checkpoint stores"):
        year_module(new, tmp_path, normalization=dm.normalization, climatology={**stored, "shape": [732, 1, 8, 4]},
                    val_time=None).setup()
    monkeypatch.setattr(field_module, "CHECKPOINT_CLIMATOLOGY", 1000)  # larger: a file beside the checkpoints
    assert dm.stored_climatology() is None
    large = dm.stored_climatology(tmp_path / "checkpoints")
    assert "values" not in large and Path(large["file"]).parent == tmp_path / "checkpoints"
    from_file = year_module(new, tmp_path, normalization=dm.normalization, climatology=large, val_time=None)
    np.testing.assert_array_equal(from_file.climatology()["values"], dm.climatology()["values"])
    Path(large["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="data.climatology.file .*npz: not found; the checkpoint's climatology"):
        year_module(new, tmp_path, normalization=dm.normalization, climatology=large, val_time=None).setup()


def test_statistics_cache_is_keyed_by_the_dimensions(year, tmp_path):
    """y and x swapped (data.dims) transpose the climatology: another cache file."""
    plain = year_module(year, tmp_path)
    swapped = year_module(year, tmp_path, dims={"time": "time", "y": "lon", "x": "lat"})
    assert plain.stats_path() != swapped.stats_path()
    assert plain.stats_path() == year_module(year, tmp_path).stats_path()


def predict_script():
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("predict_script", ROOT / "scripts" / "predict.py")
    predict = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(predict)
    return predict


def save_checkpoint(path, data):
    from convgru.training import ForecastModule

    module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2, data=data)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def test_declared_sizes_are_checked_before_reading(tmp_path, capsys, monkeypatch):
    """A Zarr store declaring 40000x40000 frames (a few KB on disk): the statistics pass, eval's batches and
    predict stop with one error naming the store and the size, before reading; so does a checkpoint trained on
    30000x30000 frames for a small video (its frames would be resized to that size)."""
    monkeypatch.setattr("convgru.data.resources.available_memory", lambda: 16 * 10**9)
    store = write_declared_zarr(tmp_path / "huge.zarr")
    options = {"files": [str(store)], "variables": ["t2m"], "frames_in": 2, "frames_out": 2, "val_time": None,
               "test_time": None, "cache_dir": tmp_path / "cache", "num_workers": 0,
               "train_time": ["2000-01-01", "2000-01-02"]}
    with pytest.raises(ValueError, match=r"huge.zarr: the statistics of data.train_time over 40000x40000 frames of 1 "
                                         r"channel\(s\) \(6.4 GB a step\) needs about .* 16.0 GB available; use fewer"):
        FieldDataModule(**options).setup()
    with pytest.raises(ValueError, match=r"huge.zarr: a batch of 16 windows of 4 steps of 40000x40000 frames .* lower "
                                         r"data.batch_size"):
        FieldDataModule(**options, normalization={"t2m": {"mean": 280.0, "std": 10.0}}).setup()
    data = {"_target_": "convgru.data.FieldDataModule", "variables": ["t2m"], "frames_in": 2, "frames_out": 2,
            "normalization": {"t2m": {"mean": 280.0, "std": 10.0}}}
    ckpt = save_checkpoint(tmp_path / "fields.ckpt", data)
    with pytest.raises(SystemExit):
        predict_script().main([str(ckpt), str(store), str(tmp_path / "out.nc")])
    err = capsys.readouterr().err
    assert f"error: INPUT {store}: the forecast of 1 sequence(s) of 2 frames of 40000x40000" in err
    assert "forecast fewer frames (--future) or smaller frames" in err and not (tmp_path / "out.nc").exists()

    pytest.importorskip("av")
    from clips import square_frames, write_clip

    clip = tmp_path / "clip.mp4"
    write_clip(clip, square_frames(t=6))
    video = {"_target_": "convgru.data.VideoDataModule", "channels": 1, "image_size": [30000, 30000],
             "crop": "center", "frame_step": 1, "frames_in": 3, "frames_out": 2}
    ckpt = save_checkpoint(tmp_path / "video.ckpt", video)
    with pytest.raises(SystemExit):
        predict_script().main([str(ckpt), str(clip), str(tmp_path / "out.npy")])
    err = capsys.readouterr().err
    assert f"error: INPUT {clip}: decoding its 6 frames of 24x32 pixels" in err
    assert "into 6 frames of 30000x30000 with 1 channel(s) (data.image_size" in err and "needs about" in err
