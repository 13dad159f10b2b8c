"""Safe checkpoint loading: tensors and plain values only, never arbitrary pickled objects."""

import pickle
import re
import zipfile
from pathlib import Path

import torch

from convgru.training.module import ForecastModule


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, or does not match the configured model."""


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a Lightning checkpoint with torch.load(weights_only=True); raise CheckpointError with
    what to do when the file is missing, corrupt, holds code objects, or is not a ForecastModule's."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (pass ckpt_path=<path to a .ckpt file>)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            raise CheckpointError(
                f"refused to load {path}: it holds a pickled {unsafe.group(1)}, not only tensors and plain "
                "values, and loading that could run code. Only load checkpoints written by convgru "
                "from a source you trust."
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt or not a PyTorch checkpoint "
                              f"({str(error).splitlines()[-1] if str(error) else error!r})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or not a PyTorch checkpoint ({error})"
        ) from None
    required = ("state_dict", "hyper_parameters")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        raise CheckpointError(f"{path} is not a Lightning training checkpoint (no {' / '.join(required)})")
    if "net" not in checkpoint["hyper_parameters"]:
        raise CheckpointError(f"{path} has no 'net' hyperparameters: it was not written by ForecastModule")
    return checkpoint


def check_net_matches(checkpoint: dict, net: dict, path="checkpoint") -> None:
    """Raise CheckpointError naming every EncoderForecaster option where `checkpoint` and the
    configured `net` differ, with the overrides that select the checkpoint's model."""
    saved = checkpoint["hyper_parameters"]["net"]
    differ = sorted(key for key in set(saved) | set(net) if _plain(saved.get(key)) != _plain(net.get(key)))
    if differ:
        lines = [f"  {key}: checkpoint {saved.get(key)!r}, config {net.get(key)!r}" for key in differ]
        overrides = " ".join(f"model.net.{key}={_override(saved.get(key))}" for key in differ)
        raise CheckpointError(
            f"the model in {path} does not match the configured model:\n" + "\n".join(lines)
            + f"\nPick the model=... (or experiment=...) it was trained with, or pass: {overrides}"
        )


def load_module(path, map_location="cpu") -> ForecastModule:
    """Rebuild a ForecastModule from a checkpoint's own hyperparameters and weights, safely."""
    checkpoint = load_checkpoint(path, map_location)
    module = ForecastModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _override(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return "null" if value is None else str(value)
