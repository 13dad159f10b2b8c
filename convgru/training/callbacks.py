"""Callbacks: predicted frames of fixed validation sequences in TensorBoard (or PNG files), and a
resumable checkpoint when a run is stopped (SIGTERM, Ctrl-C)."""

import logging
import shlex
import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import save_image

from convgru.training.console import say
from convgru.training.images import forecast_grid


class PredictionImages(pl.Callback):
    """At every validation epoch end, log rows input / target / prediction of the first
    `num_sequences` validation sequences under the tag `tag` (a PNG per epoch without TensorBoard)."""

    def __init__(self, num_sequences: int = 4, tag: str = "val/predictions"):
        self.num_sequences = num_sequences
        self.tag = tag

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.loggers:
            return
        loader = trainer.val_dataloaders
        dataset = (loader[0] if isinstance(loader, (list, tuple)) else loader).dataset
        grid = forecast_grid(pl_module, dataset, self.num_sequences)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.tag, grid, global_step=trainer.global_step)
            elif getattr(logger, "log_dir", None):
                folder = Path(logger.log_dir) / self.tag.replace("/", "_")
                folder.mkdir(parents=True, exist_ok=True)
                save_image(grid, folder / f"epoch_{trainer.current_epoch:03d}.png")


class ResumableOnInterrupt(pl.Callback):
    """When training is stopped by SIGTERM (what SLURM and most schedulers send before they kill a
    job) or Ctrl-C, write `last.ckpt` in the checkpoint folder from the step it stopped at, and print
    the one command that resumes it. Lightning stops after the current batch (SIGTERM) or at once
    (Ctrl-C); the checkpoint holds the epoch, the global step and the optimizer's state."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not trainer.training:
            return
        what = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl-C"
        if trainer.global_step == 0:
            if trainer.is_global_zero:
                say(f"\nStopped by {what} before the first training step: nothing to resume.", logging.WARNING,
                    sys.stderr)
            return
        folder = Path(trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback
                      and trainer.checkpoint_callback.dirpath else Path(trainer.default_root_dir) / "checkpoints")
        path = folder / "last.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            say(f"\nStopped by {what} at epoch {trainer.current_epoch}, step {trainer.global_step}; saved {path}. "
                f"Resume with:\n  {resume_command(path)}", logging.WARNING, sys.stderr)


def resume_command(path) -> str:
    """The command line of this run (its Hydra overrides) with its run folder and ckpt_path=`path`."""
    from hydra.core.hydra_config import HydraConfig

    overrides, folder = [], []
    if HydraConfig.initialized():
        overrides = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("ckpt_path=")]
        folder = [f"hydra.run.dir={HydraConfig.get().runtime.output_dir}"]  # continue in the same folder
    return " ".join(shlex.quote(a) for a in ["python", "scripts/train.py", *overrides, *folder, f"ckpt_path={path}"])
