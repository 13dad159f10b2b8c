"""A new user's first hour: a run on the CPU that would take hours says so after its first steps, the
progress bar redraws by time, caches say their size before they are written, and SIGTERM sent to the
whole process group (DataLoader workers too) stops with the resume command, not a worker traceback."""

import logging
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_lightning.accelerators import CPUAccelerator

from conftest import ROOT, tiny
from convgru.data.cache import write_npy
from convgru.training import callbacks
from convgru.training.callbacks import ProgressBar, SlowRunWarning, terminated_workers


def _trainer(**changes):
    """What SlowRunWarning reads of a Trainer: the issue's run, convgru3 on Moving MNIST on a CPU."""
    values = dict(accelerator=CPUAccelerator(), is_global_zero=True, num_training_batches=625, num_val_batches=[63],
                  enable_validation=True, estimated_stepping_batches=625 * 50, accumulate_grad_batches=1,
                  current_epoch=0)
    return SimpleNamespace(**{**values, **changes})


def _steps(warning, trainer, seconds, monkeypatch, count=3):
    clock = iter(np.arange(count + 1) * seconds)
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: float(next(clock)))
    warning.on_train_start(trainer, None)
    for _ in range(count):
        warning.on_train_batch_start(trainer)
        warning.on_train_batch_end(trainer)


def test_a_slow_run_on_the_cpu_says_so_once(monkeypatch, capsys):
    warning = SlowRunWarning(steps=3, seconds=20)
    _steps(warning, _trainer(), 80.0, monkeypatch, count=1)  # 80 s per step: said after the first step
    printed = capsys.readouterr().out
    assert printed.count("This run is slow here") == 1
    assert "80 s per training step on the CPU" in printed
    assert "about 14 h per epoch (625 training and 63 validation steps) and 30 days for the 50 epochs left" in printed
    assert "python scripts/train.py experiment=quickstart" in printed
    assert "cut it with trainer.max_steps=7 (about 10 min of training) or trainer.limit_train_batches=N" in printed
    warning.on_train_batch_start(_trainer())
    warning.on_train_batch_end(_trainer())
    assert capsys.readouterr().out == ""


def test_the_quickstart_is_not_recommended_to_itself(monkeypatch, capsys):
    """experiment=quickstart slow on a busy CPU: the line says how to cut it, not to run what is running."""
    monkeypatch.setattr(callbacks, "_running", lambda choice: choice == ("experiment", "quickstart"))
    _steps(SlowRunWarning(), _trainer(estimated_stepping_batches=625 * 3), 3.0, monkeypatch)
    printed = capsys.readouterr().out
    assert "This run is slow here" in printed and "experiment=quickstart" not in printed
    assert "cut it with trainer.max_steps=200 (about 10 min of training)" in printed


@pytest.mark.parametrize("trainer, seconds", [
    (_trainer(), 0.05),                                            # fast enough: 30 min for the run
    (_trainer(accelerator=object()), 80.0),                        # on a GPU it is what the user asked for
    (_trainer(num_training_batches=float("inf")), 80.0),           # no length to estimate
])
def test_no_warning_when_not_slow_or_not_on_the_cpu(trainer, seconds, monkeypatch, capsys):
    _steps(SlowRunWarning(), trainer, seconds, monkeypatch)
    assert "slow" not in capsys.readouterr().out


def test_progress_bar_redraws_by_time_as_well_as_by_steps(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    bar = ProgressBar(refresh_rate=10, refresh_seconds=1.0)
    assert bar._should_update(1, 625)  # the first step: drawn, with its time per step and estimate
    assert not bar._should_update(2, 625)
    now[0] += 1.5
    assert bar._should_update(3, 625)
    assert bar._should_update(10, 625) and not bar._should_update(11, 625)


def test_a_cache_says_its_size_before_it_is_written(tmp_path, caplog):
    path = tmp_path / "cache" / "set.npy"
    with caplog.at_level(logging.INFO, logger="convgru.data.cache"):
        write_npy(path, (10, 20, 64, 64), np.uint8, [(0, np.zeros((10, 20, 64, 64), np.uint8))], "Moving MNIST cache")
    assert f"Writing the Moving MNIST cache {path} (819.3 kB)" in caplog.text


def test_a_worker_ended_by_sigterm_is_a_stop_not_a_bug():
    assert terminated_workers(RuntimeError("DataLoader worker (pid 5044) is killed by signal: Terminated. "))
    assert not terminated_workers(RuntimeError("DataLoader worker (pid 5044) is killed by signal: Segmentation fault"))
    assert terminated_workers(RuntimeError("DataLoader worker (pid(s) 12) exited unexpectedly"),
                              SimpleNamespace(received_sigterm=True))
    assert not terminated_workers(ValueError("DataLoader worker (pid 1) is killed by signal: Terminated."))


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_a_resumable_checkpoint(tmp_path, cache_dir):
    """`kill -TERM -<pgid>` reaches the DataLoader workers too: last.ckpt, the resume command, exit status
    143, no traceback."""
    run = tmp_path / "run"
    command = [sys.executable, "scripts/train.py", *tiny("train"), "data.train_size=4000", "data.num_workers=1",
               "test=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    printed = tmp_path / "stdout.txt"
    with open(printed, "w") as stdout:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
    try:
        start = time.monotonic()
        while not re.search(r"Epoch 0: .*\| *[1-9]\d*/\d+", printed.read_text()):  # a step done, by the bar
            assert process.poll() is None and time.monotonic() - start < 180, process.stderr.read()[-3000:]
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and "DataLoader worker" not in stderr, stderr[-3000:]
    assert "Stopped by SIGTERM at epoch 0" in stderr, stderr[-3000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] > 0
    assert f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in stderr


def test_lightnings_advertisements_and_save_note_are_left_out(tmp_path, caplog):
    """A run prints no "💡 Tip: ..." of Lightning's and no "`weights_only` was not set" (a note on saving that
    reads like a security warning); Lightning's other messages stay."""
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import TensorBoardLogger

    from convgru.training.report import quiet_lightning

    quiet_lightning()
    with caplog.at_level(logging.INFO):
        pl.Trainer(logger=TensorBoardLogger(tmp_path), accelerator="cpu", enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)
        logging.getLogger("pytorch_lightning.trainer.connectors.checkpoint_connector").info(
            "`weights_only` was not set, defaulting to `False`.")
    assert "GPU available" in caplog.text  # Lightning's own messages about the run
    assert "Tip" not in caplog.text and "litlogger" not in caplog.text and "weights_only" not in caplog.text


def test_lightnings_pytree_deprecation_warning_is_left_out():
    """Every fit, validation and test printed torch's FutureWarning on the `LeafSpec` that Lightning's
    CombinedLoader builds (pytorch_lightning/utilities/_pytree.py); the same words raised from other code stay."""
    import warnings

    from pytorch_lightning.utilities._pytree import _tree_flatten

    from convgru.training.report import quiet_lightning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tree_flatten([1, 2])  # Lightning's LeafSpec(), as a CombinedLoader flattens its data loaders
        assert [w.category for w in caught] == [FutureWarning] and "LeafSpec" in str(caught[0].message)
        caught.clear()
        quiet_lightning()  # in front of "always"
        _tree_flatten([1, 2])
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)  # not Lightning's
        assert [w.filename for w in caught] == [__file__]


def test_lightnings_warnings_that_convgru_answers_are_left_out():
    """Lightning's warnings that convgru answers (its advice on DistributedSampler in a test, a mid-epoch resume, a
    checkpoint folder that holds checkpoints, a changed dirpath), as Lightning words them, are left out; another
    PossibleUserWarning stays."""
    import warnings

    from pytorch_lightning.utilities.warnings import PossibleUserWarning

    from convgru.training.report import quiet_lightning

    said = [("Using `DistributedSampler` with the dataloaders. During `trainer.test()`, it is recommended to use "
             "`Trainer(devices=1, num_nodes=1)`", PossibleUserWarning),
            ("You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not "
             "resumable. This can cause unreliable results if further training is done.", PossibleUserWarning),
            ("Checkpoint directory /runs/a/checkpoints exists and is not empty.", UserWarning),
            ("The dirpath has changed from '/runs/a' to '/runs/b', therefore `best_model_score`, ...", UserWarning)]
    other = "The number of training batches (2) is smaller than the logging interval Trainer(log_every_n_steps=50)."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()  # in front of "always"
        for message, category in said:
            warnings.warn(message, category, stacklevel=1)
        warnings.warn(other, PossibleUserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [other]


def test_one_tensorboard_command_for_the_runs_of_a_task(tmp_path):
    """The run summary's command is the README's: the task's folder above runs/ (logs/train), a sweep's folder."""
    from convgru.training.report import tensorboard_command

    logs = tmp_path / "logs" / "train"
    assert tensorboard_command(logs / "runs" / "quickstart_2026-12-03_16-32-37") == f"tensorboard --logdir {logs}"
    sweep = logs / "multiruns" / "quickstart_2026-12-03_16-32-37"
    assert tensorboard_command(sweep / "3+lr-0.002") == f"tensorboard --logdir {sweep}"
