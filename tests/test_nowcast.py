"""Nowcasting end to end: radar configs, skill scores of the model and of persistence, NaN-masked targets."""

import csv
import json
import subprocess
import sys

import h5py
import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.image import peak_signal_noise_ratio

from conftest import NOWCAST as TINY
from conftest import ROOT, compose_config
from convgru.data import RadarDataModule, ensure_radar_dataset
from convgru.domain.extrapolation import Extrapolation, PystepsNowcast
from convgru.training import ForecastModule, FrameMetrics, evaluate, skill_scores, train

THRESHOLDS = [20, 30, 40]
NET = {"hidden_sizes": [4], "kernel_size": 3, "stem_channels": 4}
def _test_set(cfg):
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("test")
    x, y = (torch.stack(items) for items in zip(*datamodule.datasets["test"]))
    return x, y


def test_nowcast_logs_skill_of_model_and_baselines(nowcast_run):
    out, metrics, cfg, _ = nowcast_run
    scores = [f"{s}_{t}" for s in ("csi", "pod", "far", "hss", "ets", "sedi", "bias") for t in (*THRESHOLDS, "mean")]
    scores += ["bmse", "bmae"]
    assert {f"val/{k}" for k in scores} | {f"test/{k}" for k in scores} <= set(metrics)
    assert {f"test/persistence/{k}" for k in scores} <= set(metrics)
    assert {f"test/extrapolation/{k}" for k in scores} <= set(metrics)
    windows = [f"{s}_{t}" for s in ("csi_pool4", "csi_pool16", "fss_1px", "fss_5px", "fss_11px", "fss_21px")
               for t in (*THRESHOLDS, "mean")]
    assert {f"test/{k}" for k in windows} | {f"test/extrapolation/{k}" for k in windows} <= set(metrics)
    x, y = _test_set(cfg)  # persistence and extrapolation scored by hand on the same test set
    expected = skill_scores(x[:, -1:].expand_as(y) * 70, y * 70, THRESHOLDS)
    for key in ("csi_20", "pod_40", "far_30", "hss_mean", "bias_20"):
        assert metrics[f"test/persistence/{key}"] == pytest.approx(expected[key], rel=1e-5, nan_ok=True)
    expected = skill_scores(Extrapolation("lucaskanade", (0, 70))(x, y.shape[1]), y, THRESHOLDS, (0, 70))
    for key in ("csi_20", "pod_30", "hss_mean"):
        assert metrics[f"test/extrapolation/{key}"] == pytest.approx(expected[key], rel=1e-5, nan_ok=True)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test/persistence/csi_20"] == pytest.approx(metrics["test/persistence/csi_20"])


def test_nowcast_recipe_scores_sprog_and_steps_once_per_test_set(nowcast_run, cache_dir):
    _, metrics, cfg, printed = nowcast_run
    assert (cfg.data.synthetic.num_sequences, list(cfg.data.split)) == (24, [0.8, 0.05, 0.15])
    for name in ("sprog", "steps"):
        keys = ("csi_20", "hss_mean", "ets_40", "sedi_30", "fss_21px_mean", "bmse")
        assert {f"test/{name}/{k}" for k in keys} <= set(metrics)
    assert "S-PROG: 4 test sequences forecast in" in printed and "STEPS mean: 4 test sequences" in printed
    assert "sprog (pysteps' S-PROG)" in printed and "steps (pysteps' STEPS ensemble mean)" in printed
    x, y = _test_set(cfg)  # S-PROG and STEPS forecast by hand on the same test set: read from the cache
    for name, options in (("sprog", {"n_cascade_levels": 3}), ("steps", {"members": 2, "n_cascade_levels": 3})):
        baseline = PystepsNowcast(name, options, (0, 70), "dBZ", cache_dir=cache_dir)
        expected = skill_scores(baseline(x, 2), y, THRESHOLDS, (0, 70))  # the test set is one batch
        assert len(x) == 4 and baseline.cached == 4 and baseline.sequences == 0
        for key in ("csi_20", "hss_mean", "ets_30"):
            assert metrics[f"test/{name}/{key}"] == pytest.approx(expected[key], rel=1e-5, nan_ok=True)


def test_quickstart_config_takes_the_data_units_and_thresholds(tmp_path):
    cfg = compose_config("train", tmp_path, TINY)
    assert (cfg.data._target_, cfg.data.units, list(cfg.data.value_range)) == ("convgru.data.RadarDataModule",
                                                                                "dBZ", [0, 70])
    model = cfg.model
    assert (list(model.thresholds), list(model.value_range), model.loss_units, model.loss) == (
        THRESHOLDS, [0, 70], "dBZ", "mse+l1")


def test_eval_writes_scores_per_lead_time(nowcast_run, tmp_path, cache_dir, capsys):
    out, metrics, _, _ = nowcast_run
    best = next((out / "checkpoints").glob("epoch_*.ckpt"))
    overrides = [f"ckpt_path={best}", "num_images=2"]
    result = evaluate(compose_config("eval", tmp_path, overrides, cache_dir), overrides)
    for key in ("csi_20", "hss_40", "persistence/csi_20", "persistence/far_mean", "mse"):
        assert result[key] == pytest.approx(metrics[f"test/{key}"], rel=1e-5, nan_ok=True)
    rows = list(csv.DictReader(open(tmp_path / "per_frame.csv")))
    assert [int(r["frame"]) for r in rows] == [1, 2]
    assert {"csi_20", "pod_30", "bias_40", "csi_mean", "persistence/csi_20", "persistence/hss_40"} <= set(rows[0])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["persistence/csi_30"] == pytest.approx(result["persistence/csi_30"], nan_ok=True)
    printed = capsys.readouterr().out
    assert "persistence/csi_20" in printed and "model vs persistence" in printed and "persist" in printed


def test_radar_config_generates_synthetic_data_in_the_cache(tmp_path):
    cfg = compose_config("train", tmp_path, ["data=radar", "data.synthetic.num_sequences=10",
                                             "data.synthetic.image_size=16", "data.num_workers=0"])
    assert (cfg.data.frames_in, cfg.data.frames_out, list(cfg.model.thresholds)) == (13, 12, THRESHOLDS)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, RadarDataModule) and not list((tmp_path / "cache").glob("*.npy"))
    datamodule.setup("fit")  # generates the file
    path = ensure_radar_dataset(tmp_path / "cache", 10, seed=0, num_frames=25, image_size=16, dynamics="evolving")
    assert [p.name for p in (tmp_path / "cache").glob("*.npy")] == [path.name]
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape[1:] == (13, 1, 16, 16) and y.shape[1:] == (12, 1, 16, 16)
    torch.testing.assert_close(datamodule.datasets["train"][0][0][:, 0] * 70, torch.from_numpy(np.load(path)[0, :13]))


def _sevir_like(path, n=4, size=16, frames=12):
    """A SEVIR-like VIL file: `vil` (N, H, W, T) uint8 pixel values 0..254 in moving blobs."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    vil = np.zeros((n, size, size, frames), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(4, 12, 2)
        for t in range(frames):
            vil[i, :, :, t] = 254 * np.exp(-((yy - cy) ** 2 + (xx - cx - 0.5 * t) ** 2) / 20)
    with h5py.File(path, "w") as f:
        f["vil"] = vil
    return path


def test_sevir_files_on_the_radar_config(tmp_path, cache_dir):
    file = _sevir_like(tmp_path / "SEVIR_VIL_TEST.h5")
    overrides = ["data=radar", f"data.files=[{file}]", "data.key=vil", "data.layout=NHWT", "data.units=pixel",
                 "data.value_range=[0,255]", "data.thresholds=[16,74,133,160,181,219]", "data.stride=4",
                 "data.frames_in=2", "data.frames_out=2", "data.split=[0.5,0.25,0.25]", "data.batch_size=2",
                 "data.num_workers=0", "model=convgru1", "model.net.hidden_sizes=[4]", "model.net.stem_channels=4",
                 "model.net.kernel_size=3", "trainer=cpu", "+trainer.fast_dev_run=true"]
    metrics = train(compose_config("train", tmp_path, overrides, cache_dir))
    assert {"test/csi_74", "test/persistence/csi_219", "val/hss_16"} <= set(metrics)
    assert metrics["test/persistence/csi_16"] > 0.3  # the blobs move slowly: persistence has skill


def test_nan_masked_targets_give_finite_loss_and_metrics(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 1, 16, 16, generator=g), torch.rand(8, 2, 1, 16, 16, generator=g)
    y[:, :, :, :5] = float("nan")  # a strip of missing target pixels in every frame
    y[0, 1] = float("nan")  # one frame missing entirely
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    module = ForecastModule(NET, future=2, loss="bmse", value_range=[0, 70], loss_units="dBZ", thresholds=[20, 40],
                            data={"missing_value": "nan"})
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader, loader)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    trainer.test(module, loader, verbose=False)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    assert {"val/loss", "val/mse", "val/ssim", "val/psnr", "test/csi_20", "test/persistence/csi_20"} <= set(metrics)
    # FAR and bias are undefined without forecast events, SEDI where POD or the false alarm rate is 0 or 1
    undefined = ("far_", "bias_", "sedi_")
    assert all(np.isfinite(v) for k, v in metrics.items() if not k.split("/")[-1].startswith(undefined))
    assert np.isfinite(metrics["test/bmse"]) and np.isfinite(metrics["test/persistence/bmae"])


def test_frame_metrics_over_valid_pixels():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(2, 2, 1, 16, 16, generator=g), torch.rand(2, 2, 1, 16, 16, generator=g)
    metrics = FrameMetrics(2)
    metrics.update(pred, target)
    full = metrics.compute()
    psnr = peak_signal_noise_ratio(pred.flatten(0, 1), target.flatten(0, 1), data_range=1.0, dim=(1, 2, 3),
                                   reduction="none").view(2, 2).mean(0)
    torch.testing.assert_close(full["psnr"], psnr)
    masked = target.clone()
    masked[..., 8:] = float("nan")  # the right half missing: scores of the left half
    metrics.reset()
    metrics.update(pred, masked)
    half = metrics.compute()
    metrics.reset()
    metrics.update(pred[..., :8], target[..., :8])
    left = metrics.compute()
    torch.testing.assert_close(half["mse"], 2 * left["mse"])  # per valid pixel, scaled to the whole frame
    torch.testing.assert_close(half["mae"], 2 * left["mae"])
    torch.testing.assert_close(half["psnr"], left["psnr"])
    assert torch.isfinite(half["ssim"]).all() and (half["ssim"] > full["ssim"]).all()  # filled pixels agree


def test_checkpoint_from_0_1_0_builds_a_module_without_scores():
    hparams = torch.load(ROOT / "tests" / "data" / "convgru-0.1.0-tiny.ckpt", weights_only=True)["hyper_parameters"]
    assert "thresholds" not in hparams and "value_range" not in hparams
    module = ForecastModule(**hparams)
    assert not module.skill and (module.hparams.thresholds, module.hparams.value_range) == (None, None)
    assert type(module.loss_fn).__name__ == "WeightedLoss" and "loss_fn" in dict(module.named_children())


def test_nan_targets_without_a_declared_mask_are_an_error():
    module = ForecastModule(NET, future=2)
    y = torch.rand(1, 2, 1, 8, 8)
    y[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN values .*declares no missing pixels.*data.missing_value"):
        module.validation_step((torch.rand(1, 3, 1, 8, 8), y), 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"value_range": [0, 70], "thresholds": [20, 80]}, r"model.thresholds: .*at most 70 \(model.value_range"),
    ({"thresholds": [20]}, r"model.thresholds: expected thresholds above 0 and at most 1 .*found 20"),
    ({"thresholds": [30, 20]}, "model.thresholds: expected a non-empty, increasing list"),
    ({"value_range": [70, 0]}, r"model.value_range: expected \[low, high\] with high > low"),
    ({"loss": "bmse", "value_range": [0, 70], "loss_units": "mm"}, "model.loss_units must be one of"),
    ({"loss": "bmse", "value_range": [0, 255], "loss_units": "pixel"}, "give model.loss_thresholds in pixel"),
    ({"thresholds": [0.5], "net": {**NET, "in_channels": 2}}, "persistence needs model.net.in_channels"),
])
def test_bad_model_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForecastModule(**{"net": NET, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"thresholds": [20, 80]}, r"thresholds: expected thresholds above 0 and at most 70 \(value_range"),
    ({"units": "mm"}, r"units: expected one of \['dBZ', 'mm/h', 'kg/m\^2', 'pixel'\], found 'mm'"),
    ({"value_range": None}, r"value_range: expected \[low, high\]"),
    ({"synthetic": None}, "files: expected array files .* or the synthetic option"),
    ({"synthetic": {"num_sequences": 4, "size": 8}}, r"synthetic: unknown option\(s\) \['size'\]"),
    ({"units": "mm/h"}, "units: synthetic radar is reflectivity in dBZ"),
    ({"layout": "NTCHW"}, "layout: synthetic radar is stored"),
])
def test_bad_radar_options(tmp_path, kwargs, match):
    options = {"value_range": [0, 70], "synthetic": {"num_sequences": 4}, "cache_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match):
        RadarDataModule(**options)


@pytest.mark.slow
def test_quickstart_script_prints_model_vs_baselines(tmp_path):
    command = [sys.executable, "scripts/train.py", *TINY, f"paths.log_dir={tmp_path}/logs",
               f"paths.cache_dir={tmp_path}/cache"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout[result.stdout.index("model vs persistence"):]
    title, table = out[:out.index(":\n")], out[out.index(":\n") + 2:].splitlines()
    assert "vs extrapolation" in title and "vs sprog" in title and "FSS-N: fractions skill score" in title
    assert table[0].split() == ["dBZ", "forecast", "CSI", "POD", "FAR", "HSS", "ETS", "SEDI", "bias"]
    assert table[17] == "" and table[18].split() == ["dBZ", "forecast", "CSI-p4", "CSI-p16", "FSS-1", "FSS-5",
                                                     "FSS-11", "FSS-21"]
    for first, columns in ((1, 7), (19, 6)):
        rows = [row.split() for row in table[first:first + 16]]
        assert [row[0] for row in rows[::4]] == ["20", "30", "40", "mean"]
        assert [row[-columns - 1] for row in rows] == ["model", "persistence", "extrapolation", "sprog"] * 4
        assert all(len(row) in (columns + 1, columns + 2) for row in rows)
    assert max(len(line) for line in out.splitlines()[:36]) <= 100  # whole in a terminal and the docs


def test_skill_table_splits_to_fit_its_width():
    """The categorical scores in one table and the neighbourhood scores in a second one of the same rows
    when one line would be wider than `width`; one table when it fits."""
    from convgru.training.report import skill_table

    names = ["csi", "pod", "far", "hss", "ets", "sedi", "bias", "csi_pool4", "fss_5px"]
    scores = {f"{who}{name}_{key}": 0.5 for who in ("", "persistence/") for name in names for key in ("20", "mean")}
    wide = skill_table(scores, [20], "dBZ", width=200)
    assert "\n\n" not in wide and wide.splitlines()[0].split()[-2:] == ["CSI-p4", "FSS-5"]
    split = skill_table(scores, [20], "dBZ", width=90)
    first, second = (part.splitlines() for part in split.split("\n\n"))
    assert first[0].split()[2:] == ["CSI", "POD", "FAR", "HSS", "ETS", "SEDI", "bias"]
    assert second[0].split()[2:] == ["CSI-p4", "FSS-5"] and len(first) == len(second) == 5
    assert max(len(line) for line in split.splitlines()) <= 90


@pytest.mark.slow  # matplotlib and TensorBoard's event reader: about 5 s
def test_skill_against_training_time_figure(nowcast_run, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import skill_vs_time

    out, metrics, _, _ = nowcast_run
    assert skill_vs_time.model_curve(out, "val/csi_mean")[0][1] == pytest.approx(metrics["val/csi_mean"], rel=1e-5)
    found = skill_vs_time.baselines(out, "fss_21px_mean")
    assert set(found) == {"persistence", "extrapolation", "sprog", "steps"}
    # model.baselines' order, as the test figures have it (metrics.json is sorted): their colours there
    assert skill_vs_time.methods(out, found) == ["model", "persistence", "extrapolation", "sprog", "steps"]
    assert skill_vs_time.main([str(out), "--out", str(tmp_path / "skill.png")]) == 0
    assert (tmp_path / "skill.png").stat().st_size > 1000
    assert skill_vs_time.main([str(tmp_path / "none")]) == 2


def test_table_over_seeds(nowcast_run, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import nowcast_table

    out, metrics, _, _ = nowcast_run
    other = tmp_path / "seed2"
    other.mkdir()
    saved = json.loads((out / "metrics.json").read_text())
    shifted = {k: (v + 0.1 if k == "test/steps/csi_20" else v) for k, v in saved.items()}
    (other / "metrics.json").write_text(json.dumps(shifted))
    assert nowcast_table.main([str(out), str(other), "--scores", "csi", "hss"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "|" in line]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in lines}
    steps = metrics["test/steps/csi_20"]
    assert f"{steps + 0.05:.3f} [{steps:.3f}-{steps + 0.1:.3f}]" in rows[("20", "steps")]
    assert f"{metrics['test/csi_mean']:.3f} [" in rows[("mean", "model")]
    assert {f for _, f in rows if _ == "30"} == {"model", "persistence", "extrapolation", "sprog", "steps"}
