"""Evaluation and prediction from checkpoints; checkpoints load safely or fail clearly."""

import csv
import json
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import convgru
from conftest import ROOT, compose_config, tiny
from convgru.training import CheckpointError, ForecastModule, evaluate, load_checkpoint, train
from convgru.training.upgrade import merge_rz_norm_states

OLD_CHECKPOINT = ROOT / "tests" / "data" / "convgru-0.1.0-tiny.ckpt"  # tiny config, written by convgru 0.1.0

RAN = []


class Exploit:
    """A pickled object whose loading would run code (appends to RAN)."""

    def __reduce__(self):
        return RAN.append, ("exploit ran",)


def _eval_cfg(out, checkpoint, cache_dir, extra=()):
    return compose_config("eval", out, tiny("eval", [f"ckpt_path={checkpoint}", "num_images=2", *extra]), cache_dir)


def _evaluate(out, checkpoint, cache_dir, overrides=()):
    """evaluate() as scripts/eval.py runs it: only `overrides` on the command line (and output paths)."""
    overrides = [f"ckpt_path={checkpoint}", "num_images=2", *overrides]
    return evaluate(compose_config("eval", out, overrides, cache_dir), overrides)


def test_eval_reproduces_test_metrics(trained_run, tmp_path, cache_dir):
    out, metrics, _ = trained_run
    best = next((out / "checkpoints").glob("epoch_*.ckpt"))
    first = evaluate(_eval_cfg(tmp_path / "a", best, cache_dir))
    second = evaluate(_eval_cfg(tmp_path / "b", best, cache_dir))
    assert first == second
    for name in ("mse", "mae", "ssim", "psnr"):
        assert first[name] == pytest.approx(metrics[f"test/{name}"], rel=1e-5)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["mse"] == first["mse"] and saved["ckpt_path"] == str(best)
    rows = list(csv.DictReader(open(tmp_path / "a" / "per_frame.csv")))
    assert [int(r["frame"]) for r in rows] == [1, 2]
    assert np.mean([float(r["mse"]) for r in rows]) == pytest.approx(first["mse"], rel=1e-4)
    assert (tmp_path / "a" / "predictions.png").stat().st_size > 0
    with Image.open(tmp_path / "a" / "predictions.gif") as gif:  # 3 input + 2 forecast frames, 2 sequences
        assert gif.n_frames == 5 and gif.height > 2 * 32 * 4


def test_eval_missing_checkpoint(tmp_path, cache_dir):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        evaluate(_eval_cfg(tmp_path, tmp_path / "missing.ckpt", cache_dir))


@pytest.mark.parametrize("content,why", [(b"", "the file is empty"),
                                         (b"not a checkpoint at all", "it is not a PyTorch checkpoint"),
                                         (b"PK\x03\x04truncated zip", "the file is truncated or damaged")])
def test_corrupt_checkpoint_is_reported(tmp_path, content, why):
    path = tmp_path / "corrupt.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint .*corrupt.ckpt: {why}"):
        load_checkpoint(path)


def test_truncated_real_checkpoint_is_reported(trained_run, tmp_path):
    data = (trained_run[0] / "checkpoints" / "last.ckpt").read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(path)


def test_malicious_checkpoint_is_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}, "payload": Exploit()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="refused to load .*could run code"):
        load_checkpoint(path)
    legacy = tmp_path / "evil_legacy.ckpt"
    legacy.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(legacy)
    assert RAN == []


def test_other_files_are_not_checkpoints(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a Lightning training checkpoint"):
        load_checkpoint(path)


def test_eval_needs_only_the_checkpoint(trained_run, tmp_path, cache_dir):
    out, metrics, _ = trained_run
    best = next((out / "checkpoints").glob("epoch_*.ckpt"))
    result = _evaluate(tmp_path, best, cache_dir)  # the default eval config is another model and data set
    for name in ("mse", "ssim"):
        assert result[name] == pytest.approx(metrics[f"test/{name}"], rel=1e-5)


def test_eval_data_options_apply_on_top_of_the_checkpoint(trained_run, tmp_path, cache_dir):
    best = next((trained_run[0] / "checkpoints").glob("epoch_*.ckpt"))
    overrides = [f"ckpt_path={best}", "data.test_size=2", "data.batch_size=1"]
    cfg = compose_config("eval", tmp_path, overrides, cache_dir)
    evaluate(cfg, overrides)
    assert (cfg.data.test_size, cfg.data.batch_size) == (2, 1)
    assert (cfg.data.image_size, cfg.data.frames_in, cfg.data.num_digits) == (32, 3, 1)  # from the checkpoint


@pytest.mark.parametrize("override,line", [
    ("model.net.kernel_size=5", "model.net.kernel_size: checkpoint 3, command line 5"),
    ("model=convgru4", "model.net.hidden_sizes: checkpoint [4, 4], model=convgru4 [64, 96, 96, 128]"),
    ("model.future=4", "model.future: checkpoint 2, command line 4"),
])
def test_eval_model_option_contradicting_the_checkpoint(trained_run, tmp_path, cache_dir, override, line):
    best = next((trained_run[0] / "checkpoints").glob("epoch_*.ckpt"))
    with pytest.raises(CheckpointError, match=rf"does not match the .*\n(.*\n)*  {re.escape(line)}\n"):
        _evaluate(tmp_path, best, cache_dir, [override])


def test_eval_model_options_that_agree_are_accepted(trained_run, tmp_path, cache_dir):
    best = next((trained_run[0] / "checkpoints").glob("epoch_*.ckpt"))
    _evaluate(tmp_path, best, cache_dir, ["model.net.kernel_size=3", "model.optimizer.lr=0.5"])


def test_checkpoint_from_0_1_0_loads_and_evaluates(tmp_path, cache_dir):
    module = convgru.load(OLD_CHECKPOINT)
    assert isinstance(module, ForecastModule) and module.hparams.data is None
    pred = module.forecast(torch.rand(2, 3, 1, 32, 32))
    assert pred.shape == (2, 2, 1, 32, 32) and 0 <= pred.min() and pred.max() <= 1
    overrides = [f"ckpt_path={OLD_CHECKPOINT}", "num_images=2", *tiny("eval")]  # 0.1.0 did not record its data
    assert evaluate(compose_config("eval", tmp_path, overrides, cache_dir), overrides)["mse"] > 0


def test_checkpoint_from_a_newer_convgru_is_refused(trained_run, tmp_path):
    checkpoint = torch.load(trained_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["convgru"] == {"format": 2, "version": convgru.__version__}
    checkpoint["convgru"] = {"format": 99, "version": "9.0"}
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="written by convgru 9.0 in checkpoint format 99.*Upgrade convgru"):
        convgru.load(tmp_path / "future.ckpt")


def test_load_gives_the_trained_module(trained_run):
    out, _, cfg = trained_run
    module = convgru.load(out / "checkpoints" / "last.ckpt")
    assert module.hparams.data["_target_"] == "convgru.data.MovingMNISTDataModule"
    assert module.hparams.data["cache_dir"] == "${paths.cache_dir}"  # interpolations kept: portable
    x = torch.rand(3, 3, 1, 32, 32)
    pred = module.forecast(x)
    torch.testing.assert_close(pred, module.net(x, 2).clamp(0, 1))
    assert module.forecast(x, future=5).shape == (3, 5, 1, 32, 32)


def test_predict_script(trained_run, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (2, 3, 1, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "in.npy", frames)
    command = [sys.executable, "scripts/predict.py", str(trained_run[0] / "checkpoints" / "last.ckpt"),
               str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--png", str(tmp_path / "out.png")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    pred = np.load(tmp_path / "out.npy")
    assert pred.shape == (2, 2, 1, 32, 32) and pred.dtype == np.float32
    assert 0 <= pred.min() and pred.max() <= 1
    assert (tmp_path / "out.png").stat().st_size > 0


def test_0_1_0_optimizer_state_is_merged_like_its_weights():
    checkpoint = torch.load(OLD_CHECKPOINT, weights_only=True)
    old = checkpoint["optimizer_states"][0]["state"]
    module = convgru.load(OLD_CHECKPOINT)
    merge_rz_norm_states(checkpoint, module)
    optimizer = torch.optim.Adam(module.parameters())
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    names = [name for name, _ in module.named_parameters()]
    rz = optimizer.state[dict(module.named_parameters())["net.encoder.0.norm_rz.weight"]]["exp_avg"]
    # 0.1.0's order in the first cell: conv_x (w, b), conv_h (w, b), norm_r (w, b), norm_z (w, b), norm_n (w, b)
    first = names.index("net.encoder.0.conv_x.weight")
    torch.testing.assert_close(rz, torch.cat([old[first + 4]["exp_avg"], old[first + 6]["exp_avg"]]))


def test_training_resumes_from_a_0_1_0_checkpoint(tmp_path, cache_dir):
    overrides = ["model.net.norm=group", "model.scheduler.name=none", "trainer.max_epochs=2", "test=false",
                 f"ckpt_path={OLD_CHECKPOINT}"]  # its OneCycle schedule ended with its one epoch
    train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 4)
