"""A callback for the multi-node tests: every rank writes its weights and global step when training ends."""

from pathlib import Path

import pytorch_lightning as pl
import torch


class RankWeights(pl.Callback):
    """Write {global_step, world_size, state_dict} to `<folder>/rank<global rank>.pt` at the end of fit."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": trainer.global_step, "world_size": trainer.world_size,
                    "state_dict": {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}},
                   self.folder / f"rank{trainer.global_rank}.pt")
