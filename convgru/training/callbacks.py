"""Callbacks: predicted frames of fixed validation sequences in TensorBoard (or PNG files)."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import save_image

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
