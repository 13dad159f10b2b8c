"""DDP through trainer=ddp with Hydra's output directories: two CPU processes (gloo)."""

import subprocess
import sys

import pytest
import torch

from conftest import ROOT, tiny


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, cache_dir):
    overrides = [o for o in tiny("train") if not o.startswith("trainer=")]
    command = [sys.executable, "scripts/train.py", *overrides, "trainer=ddp", "trainer.accelerator=cpu",
               "trainer.devices=2", "trainer.precision=32-true", "trainer.max_epochs=1",
               f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "distributed_backend=gloo" in output
    run = tmp_path / "run"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # 8 training sequences, batch 4, split over 2 processes: 1 step per epoch
    assert checkpoint["global_step"] == 1
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [".hydra", "checkpoints", "tensorboard"]
    assert output.count("Checkpoints:") == 1
