"""A requeued SLURM job continues in its run folder: from Lightning's auto-requeue checkpoint
(hpc_ckpt_<n>.ckpt) or the later last.ckpt of ResumableOnInterrupt, whichever is newer."""

import os
import shutil

import pytest
import torch

import convgru.training
from conftest import compose_config, tiny
from convgru.training.run_folder import check_fresh_folder, requeued_checkpoint


def test_requeued_checkpoint_is_the_newer_of_hpc_and_last(tmp_path):
    assert requeued_checkpoint(tmp_path) is None and requeued_checkpoint(tmp_path / "missing") is None
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"x")
    assert requeued_checkpoint(tmp_path) is None  # no requeue: a finished run's folder
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    hpc.write_bytes(b"x")
    os.utime(last, (1, 1))
    assert requeued_checkpoint(tmp_path) == hpc
    os.utime(hpc, (0, 0))
    assert requeued_checkpoint(tmp_path) == last
    check_fresh_folder(tmp_path / "checkpoints", str(hpc))  # continuing the run: no refusal
    with pytest.raises(ValueError, match="already holds checkpoints"):
        check_fresh_folder(tmp_path / "checkpoints", None)


@pytest.mark.slow
def test_requeued_run_continues_from_the_hpc_checkpoint(tmp_path, cache_dir, caplog):
    """A first attempt stops after epoch 1, leaving Lightning's hpc_ckpt_1.ckpt; the job, started again in
    the same folder with the same command, trains epoch 2 from it instead of refusing the folder."""
    extra = ["model.scheduler.name=none", "test=false"]
    first = compose_config("train", tmp_path, tiny("train", [*extra, "trainer.max_epochs=1"]), cache_dir)
    convgru.training.train(first)
    shutil.copy(tmp_path / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt")
    again = compose_config("train", tmp_path, tiny("train", [*extra, "trainer.max_epochs=2"]), cache_dir)
    with caplog.at_level("INFO", logger="convgru.training.pipeline"):
        convgru.training.train(again)
    assert f"Requeued job: continuing from {tmp_path / 'hpc_ckpt_1.ckpt'}" in caplog.text
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 4)  # epoch index 1; 8 sequences, batch 4
