"""A training run killed mid-epoch resumes from last.ckpt; checkpoint writes are atomic."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny
from convgru.training import AtomicCheckpointIO, load_checkpoint

STEPS_PER_EPOCH = 50  # data.train_size=200 at batch 4


def _train_command(run, cache_dir, *extra):
    return [sys.executable, "scripts/train.py", *tiny("train"), "data.train_size=200", "trainer.max_epochs=2",
            "test=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}", *extra]


def _wait_for(condition, process, timeout=240.0):
    start = time.monotonic()
    while not condition():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() - start < timeout, "training did not get there in time"
        time.sleep(0.02)


@pytest.mark.slow
def test_run_killed_in_its_second_epoch_resumes_from_last_checkpoint(tmp_path, cache_dir):
    run, folder = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
    process = subprocess.Popen(_train_command(run, cache_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (folder / "last.ckpt").is_file(), process)  # epoch 0 done and saved
        time.sleep(0.1)  # into the second epoch
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    written = sorted(folder.glob("*.ckpt"))
    assert [p.name for p in written] == ["epoch_000.ckpt", "last.ckpt"]
    for path in written:  # every checkpoint written before the kill is whole
        load_checkpoint(path)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, STEPS_PER_EPOCH)  # only the second epoch's steps are lost

    resumed = tmp_path / "resumed"
    result = subprocess.run(_train_command(resumed, cache_dir, f"ckpt_path={folder / 'last.ckpt'}"), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    final = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (final["epoch"], final["global_step"]) == (1, 2 * STEPS_PER_EPOCH)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def crash(obj, file):
        Path(file).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    """A checkpoint writer killed mid-write (SIGKILL) leaves its temporary file; the next write removes it."""
    code = ("import os, signal, torch; from convgru.training import AtomicCheckpointIO; "
            "torch.save = lambda obj, path: (open(path, 'wb').write(b'half'), os.kill(os.getpid(), signal.SIGKILL)); "
            f"AtomicCheckpointIO().save_checkpoint({{'w': 1}}, {str(tmp_path / 'epoch_003.ckpt')!r})")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    assert [p.name.split(".convgru")[0] for p in tmp_path.iterdir()] == ["epoch_003.ckpt"]  # the leftover
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1)}}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
