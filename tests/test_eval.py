"""Evaluation from checkpoints: scripts/eval.py's evaluate() reproduces the test metrics, needs only the
checkpoint, takes data options on top of it and refuses model options that contradict it."""

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import compose_config, tiny
from convgru.training import CheckpointError, evaluate


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


def test_eval_needs_only_the_checkpoint(trained_run, tmp_path, cache_dir, capsys):
    out, metrics, _ = trained_run
    best = next((out / "checkpoints").glob("epoch_*.ckpt"))
    result = _evaluate(tmp_path, best, cache_dir)  # the default eval config is another model and data set
    for name in ("mse", "ssim"):
        assert result[name] == pytest.approx(metrics[f"test/{name}"], rel=1e-5)
    assert "Testing DataLoader 0: 100%" in capsys.readouterr().out  # train's progress bar, drawn into a file too


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
