"""Any frames_in >= 1 and frames_out >= 1 trains, validates, tests and evaluates (one frame ahead: per-lead
scores of one lead time keep their shape), in tiny in-process runs."""

import json

import pytest

from conftest import compose_config, tiny
from convgru.training import evaluate, train


@pytest.mark.slow
@pytest.mark.parametrize("frames_in,frames_out", [(1, 1), (2, 1), (1, 3)])
def test_any_frames_train_test_and_evaluate(frames_in, frames_out, tmp_path, cache_dir):
    frames = [f"data.frames_in={frames_in}", f"data.frames_out={frames_out}", "model.thresholds=[0.5]",
              "logger=csv", *(["model.baselines.extrapolation=null"] if frames_in < 2 else [])]
    metrics = train(compose_config("train", tmp_path / "train", tiny("train", frames), cache_dir))
    assert {"val/mse", "val/loss", "test/mse", "test/csi_0.5", "test/persistence/csi_0.5"} <= set(metrics)
    checkpoint = tmp_path / "train" / "checkpoints" / "last.ckpt"
    overrides = [f"ckpt_path={checkpoint}"]
    results = evaluate(compose_config("eval", tmp_path / "eval", overrides, cache_dir), overrides)
    assert results["mse"] == pytest.approx(metrics["test/mse"], rel=1e-5)
    assert results["csi_0.5"] == pytest.approx(metrics["test/csi_0.5"], rel=1e-5, nan_ok=True)
    rows = (tmp_path / "eval" / "per_frame.csv").read_text().splitlines()
    assert len(rows) == 1 + frames_out and rows[0].startswith("frame,mse")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["mse"] == pytest.approx(results["mse"])
