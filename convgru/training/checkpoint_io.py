"""Checkpoint writes that a killed or crashed run cannot leave half-done."""

from pathlib import Path

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from convgru.atomic import atomic_write

ADVICE = ("the previous checkpoints are kept whole; free some space (or set paths.log_dir to another disk) and "
          "resume from last.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint with `convgru.atomic.atomic_write`: to a temporary file beside it,
    flushed to disk, then renamed over the target, so a run killed at any moment leaves the previous
    file or the new one, never a partial one, and a full disk is one error naming the folder and the
    bytes needed. Lightning's own writer stages the file in the system's temp folder and moves it,
    which is a copy (and can be cut short) when that folder is on another disk. Remote paths (s3://,
    ...) go through Lightning's writer."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "checkpoint", _tensor_bytes(checkpoint), ADVICE) as tmp:
            torch.save(checkpoint, tmp)


def _tensor_bytes(value) -> int:
    """Bytes of the tensors in a (nested) checkpoint: about what torch.save writes."""
    if torch.is_tensor(value):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0
