"""Callbacks: predicted frames of fixed validation sequences in TensorBoard (or PNG files), a
resumable checkpoint when a run is stopped (SIGTERM, Ctrl-C), a progress bar redrawn by time too,
and a warning, after the first steps, when a run on the CPU would take hours."""

import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

import pytorch_lightning as pl
from PIL import Image
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import save_image

from convgru.training.images import first_forecasts, forecast_grid
from convgru.training.paste import paste_command
from convgru.training.report import say


class PredictionImages(pl.Callback):
    """At every validation epoch end, log rows input / target / prediction of the first
    `num_sequences` validation sequences under the tag `tag` (a PNG per epoch without TensorBoard):
    with `figures`, the forecast maps of `convgru.training.figures` in physical units (radar on the
    colour scale `colors`, fields per variable as `<tag>/forecasts_<name>`), else the frames in grey."""

    def __init__(self, num_sequences: int = 4, tag: str = "val/predictions", figures: bool = False,
                 colors: str = "pysteps"):
        self.num_sequences = num_sequences
        self.tag = tag
        self.figures, self.colors = figures, colors

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.loggers:
            return
        loader = trainer.val_dataloaders
        dataset = (loader[0] if isinstance(loader, (list, tuple)) else loader).dataset
        if self.figures:
            from convgru.training.figures import as_image, forecast_panels, rendering_of  # matplotlib

            rendering = rendering_of(pl_module, trainer.datamodule, self.colors)
            panels, _ = forecast_panels(*(rendering.physical(t) for t in first_forecasts(
                pl_module, dataset, self.num_sequences)), rendering)
            images = {self.tag if len(panels) == 1 else f"{self.tag}/{name}": as_image(figure)
                      for name, figure in panels.items()}
        else:
            images = {self.tag: forecast_grid(pl_module, dataset, self.num_sequences)}
        for logger in trainer.loggers:
            for tag, image in images.items():
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image(tag, image, global_step=trainer.global_step,
                                                dataformats="HWC" if self.figures else "CHW")
                elif getattr(logger, "log_dir", None):
                    folder = Path(logger.log_dir) / tag.replace("/", "_")
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"epoch_{trainer.current_epoch:03d}.png"
                    if self.figures:
                        Image.fromarray(image).save(path)
                    else:
                        save_image(image, path)


class ResumableOnInterrupt(pl.Callback):
    """When training is stopped by SIGTERM (what SLURM and most schedulers send before they kill a
    job) or Ctrl-C, write `last.ckpt` in the checkpoint folder from the step it stopped at, and print
    the one command that resumes it. Lightning stops after the current batch (SIGTERM) or at once
    (Ctrl-C); the checkpoint holds the epoch, the global step and the optimizer's state. SIGTERM sent
    to the whole process group (`kill -TERM -<pgid>`, some schedulers) also ends the DataLoader
    workers, and PyTorch stops the step at once with a worker error (`terminated_workers`): the run
    stops as at Ctrl-C, from the last whole step."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        sigterm = isinstance(exception, SIGTERMException) or terminated_workers(exception, trainer)
        if not (sigterm or isinstance(exception, KeyboardInterrupt)) or trainer.state.fn != TrainerFn.FITTING:
            return  # stopped while fitting: training, validating between epochs or the sanity check
        if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # workers ending now must not stop the save with an error
        what = "SIGTERM" if sigterm else "Ctrl-C"
        if trainer.global_step == 0:
            if trainer.is_global_zero:
                say(f"\nStopped by {what} before the first training step: nothing to resume.", logging.WARNING,
                    sys.stderr)
            return
        folder = Path(trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback
                      and trainer.checkpoint_callback.dirpath else Path(trainer.default_root_dir) / "checkpoints")
        path = folder / "last.ckpt"
        if trainer.checkpoint_callback and trainer.checkpoint_callback.dirpath == str(folder):
            # ModelCheckpoint's state names this file its last: the resumed run writes its last.ckpt over it
            # (else, finding a last.ckpt it did not write, it would write last-v1.ckpt beside it)
            trainer.checkpoint_callback.last_model_path = str(path)
        trainer.save_checkpoint(path, weights_only=False)  # all of the state: the optimizer's, the loops'
        if trainer.is_global_zero:
            say(f"\nStopped by {what} at epoch {trainer.current_epoch}, step {trainer.global_step}; saved {path}. "
                f"Resume with:\n  {resume_command(path)}", logging.WARNING, sys.stderr)


def batches_done(checkpoint: dict) -> int:
    """The training batches of its epoch that a checkpoint was saved after, 0 at an epoch's end (Lightning's
    loop state: fit_loop's epoch_loop.batch_progress)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
    return 0 if progress.get("is_last_batch", True) else int(progress.get("current", {}).get("processed", 0))


class MidEpochResume(pl.Callback):
    """Say, in one line instead of Lightning's warning, what resuming a checkpoint saved `done` training
    batches into its epoch does: the data loaders cannot restore their place in an epoch, so Lightning trains
    the epoch's remaining batches drawn afresh from the training set (a new shuffle) and the epochs after it
    whole."""

    def __init__(self, done: int):
        self.done = done

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.num_training_batches
        if trainer.is_global_zero and math.isfinite(total) and 0 < self.done < total:
            say(f"Resuming epoch {trainer.current_epoch} after {self.done} of its {total} training batches: the rest "
                f"of it is {total - self.done} batches drawn afresh from the training set (a new shuffle: some "
                "sequences are seen twice in this epoch, others not at all); the epochs after it are whole.")


class OwnCheckpoints(pl.Callback):
    """On a resume, keep only the checkpoints of this run's checkpoint folder in every ModelCheckpoint's
    restored state (best, last, k-th best, the best k). A checkpoint copied from another run (`cp -a run1
    run2`), or one whose state names another folder, would otherwise make the test after training load,
    and the top-k bookkeeping remove, files outside this run; the best is then chosen among this run's own
    checkpoints, as one line says."""

    def __init__(self, source):
        self.source = source

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # after the restore
        for callback in trainer.checkpoint_callbacks:
            folder = Path(callback.dirpath).resolve() if callback.dirpath else None

            def own(file, folder=folder) -> bool:
                return bool(file) and folder is not None and Path(file).resolve().parent == folder

            dropped = [f for f in (callback.best_model_path, callback.last_model_path, callback.kth_best_model_path,
                                   *callback.best_k_models) if f and not own(f)]
            if not dropped:
                continue
            if not own(callback.best_model_path):
                callback.best_model_path, callback.best_model_score = "", None
            callback.last_model_path = callback.last_model_path if own(callback.last_model_path) else ""
            callback.best_k_models = {k: v for k, v in callback.best_k_models.items() if own(k)}
            if not own(callback.kth_best_model_path):
                callback.kth_best_model_path, callback.kth_value = "", None
            if trainer.is_global_zero:
                say(f"{self.source} names checkpoints outside this run's folder {folder} ({dropped[0]}"
                    f"{f' and {len(dropped) - 1} more' if len(dropped) > 1 else ''}): left out, the best checkpoint "
                    "is chosen among this run's own")


def terminated_workers(exception: BaseException, trainer: pl.Trainer | None = None) -> bool:
    """Whether `exception` is PyTorch's error for DataLoader workers ended by SIGTERM ("DataLoader worker
    (pid N) is killed by signal: Terminated"), or for workers that exited after the trainer received
    SIGTERM: the job was terminated, not a bug of the data."""
    if not isinstance(exception, RuntimeError) or "DataLoader worker" not in str(exception):
        return False
    return "killed by signal: Terminated" in str(exception) or bool(getattr(trainer, "received_sigterm", False))


def resume_command(path) -> str:
    """The command line of this run (its Hydra overrides) with its run folder and ckpt_path=`path`. A job of a
    sweep (-m) resumes as one run in its job's folder, with the values it was given: `hydra.mode=RUN`, as
    hparams_search=optuna, among a trial's overrides, would otherwise start a new sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    overrides = []
    if HydraConfig.initialized():
        overrides = [o for o in HydraConfig.get().overrides.task
                     if not o.lstrip("+~").startswith(("ckpt_path=", "hydra.run.dir="))]
        overrides.append(("hydra.run.dir", HydraConfig.get().runtime.output_dir))  # continue in the same folder
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            overrides.append(("hydra.mode", "RUN"))
    return paste_command("train", [*overrides, ("ckpt_path", str(path))])


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDMProgressBar, redrawn every `refresh_rate` batches and also after any batch that
    ends `refresh_seconds` or more after the last redraw: when batches are slow (a GPU-sized model on
    a CPU), the bar shows the time per step and the estimate from the first step on, not after ten."""

    def __init__(self, refresh_rate: int = 10, refresh_seconds: float = 1.0, process_position: int = 0,
                 leave: bool = False):
        super().__init__(refresh_rate, process_position, leave)
        self.refresh_seconds = refresh_seconds
        self._drawn = -math.inf

    def _should_update(self, current: int, total: int) -> bool:  # TQDMProgressBar's test, on every batch end
        now = time.monotonic()
        if super()._should_update(current, total) or (self.is_enabled and now - self._drawn >= self.refresh_seconds):
            self._drawn = now
            return True
        return False


QUICKSTART = paste_command("train", ["experiment=quickstart"]) + " (minutes on a CPU)"
QUICKSTART_CHOICE = ("experiment", "quickstart")  # the run QUICKSTART starts: never recommended to itself


def _running(choice: tuple[str, str]) -> bool:
    """Whether this run is a Hydra run that chose `choice` (group, option), e.g. experiment=quickstart."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and HydraConfig.get().runtime.choices.get(choice[0]) == choice[1]


class SlowRunWarning(pl.Callback):
    """After the first training steps of a run on the CPU, when the rest of the run would take more than
    `hours`, say so in one line: the measured time per step, the estimates per epoch and for the run,
    and `alternative`, a run sized for a CPU. The time per step is measured over the first `steps`
    steps, or over those done after `seconds` when steps are slower. Validation steps are estimated at
    a third of a training step (a forward pass of the three passes of a training step). The line also
    says how to cut this run (trainer.max_steps for about 10 minutes, trainer.limit_train_batches); the
    alternative is left out when it is the run itself (experiment=quickstart)."""

    def __init__(self, hours: float = 1.0, steps: int = 3, seconds: float = 20.0,
                 alternative: str = QUICKSTART):
        self.hours, self.steps, self.seconds, self.alternative = hours, steps, seconds, alternative
        self._start, self._batches, self._done, self._itself = None, 0, False, False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._batches = None, 0
        self._done = not isinstance(trainer.accelerator, CPUAccelerator) or not trainer.is_global_zero
        self._itself = self.alternative == QUICKSTART and _running(QUICKSTART_CHOICE)

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if self._start is None:
            self._start = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self._done or self._start is None:
            return
        self._batches += 1
        elapsed = time.monotonic() - self._start
        if self._batches < self.steps and elapsed < self.seconds:
            return
        self._done = True
        message = self.message(trainer, elapsed / self._batches)
        if message:
            say(message, logging.WARNING)

    def message(self, trainer: pl.Trainer, per_step: float) -> str | None:
        """The warning for `per_step` seconds per training batch, or None when the run is not slow."""
        train = trainer.num_training_batches
        total = trainer.estimated_stepping_batches * trainer.accumulate_grad_batches
        if not (math.isfinite(train) and train > 0 and math.isfinite(total)):
            return None
        val = sum(b for b in trainer.num_val_batches if math.isfinite(b)) if trainer.enable_validation else 0
        epoch = per_step * (train + val / 3)
        epochs = max(total / train - trainer.current_epoch, 0)
        if epoch * epochs < self.hours * 3600:
            return None
        steps = max(int(600 / per_step), 1)  # training steps in about 10 minutes
        cut = (f"cut it with {paste_command(None, [('trainer.max_steps', steps)])} (about 10 min of training) or "
               f"trainer.limit_train_batches=N (N batches per epoch)")
        return (f"This run is slow here: {per_step:.3g} s per training step on the CPU (no GPU in use), about "
                f"{duration(epoch)} per epoch ({train} training and {val} validation steps) and "
                f"{duration(epoch * epochs)} for the {epochs:.3g} epoch{'' if epochs == 1 else 's'} left; "
                + (f"{cut}." if self._itself else f"a run sized for a CPU: {self.alternative}; or {cut}."))


def duration(seconds: float) -> str:
    """`seconds` as people read a duration: '45 s', '12 min', '3.5 h', '29 days'."""
    for unit, scale in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * scale:
            return f"{seconds / scale:.2g} {unit}" if seconds < 10 * scale else f"{seconds / scale:.0f} {unit}"
    return f"{seconds:.0f} s"
