"""Loader options shared by the data modules."""

import signal

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset, Sampler

from convgru._checks import OptionError


class SequenceDataModule(pl.LightningDataModule):
    """Base of the data modules: batches `(x, y)` with x (B, T_in, C, H, W) and y (B, T_out, C, H, W).

    `pin_memory` applies only when CUDA is available; `persistent_workers` only when num_workers > 0.
    """

    def __init__(self, frames_in: int = 10, frames_out: int = 10, channels: int = 1, batch_size: int = 16,
                 num_workers: int = 2, pin_memory: bool = True, persistent_workers: bool = True):
        super().__init__()
        for name, value, least in (("frames_in", frames_in, 1), ("frames_out", frames_out, 1),
                                   ("channels", channels, 1), ("batch_size", batch_size, 1),
                                   ("num_workers", num_workers, 0)):
            if not isinstance(value, int) or value < least:
                raise OptionError(name, f"expected an integer >= {least}, found {value!r}")
        self.frames_in, self.frames_out, self.channels = frames_in, frames_out, channels
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers

    def _loader(self, dataset: Dataset, sampler: Sampler | None = None, shuffle: bool = False) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.num_workers, worker_init_fn=_worker_init if self.num_workers else None,
                          pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.persistent_workers and self.num_workers > 0)


def _worker_init(worker_id: int) -> None:
    """A DataLoader worker leaves Ctrl-C (SIGINT) to its main process, which stops training cleanly
    (a resumable checkpoint, one line). SIGTERM is left as it is: the DataLoader stops its workers
    with it. Then seeds the worker as Lightning does (seed_everything(workers=True))."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pl_worker_init_function(worker_id)
