"""Safe checkpoint loading: tensors and plain values only, never arbitrary pickled objects."""

import pickle
import re
import zipfile
from pathlib import Path

import torch

import convgru
from convgru.training.module import CHECKPOINT_FORMAT, ForecastModule


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, from a newer convgru, or does not match the model asked for."""


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a Lightning checkpoint with torch.load(weights_only=True); raise CheckpointError with
    what to do when the file is missing, corrupt, holds code objects, or is not a ForecastModule's."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (expected a .ckpt file written by scripts/train.py)")
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
        raise _unreadable(path) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError):
        raise _unreadable(path) from None
    required = ("state_dict", "hyper_parameters")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        raise CheckpointError(f"{path} is not a Lightning training checkpoint (no {' / '.join(required)})")
    if "net" not in checkpoint["hyper_parameters"]:
        raise CheckpointError(f"{path} has no 'net' hyperparameters: it was not written by ForecastModule")
    written = checkpoint.get("convgru") or {}
    if written.get("format", 1) > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} was written by convgru {written.get('version', '?')} in checkpoint format {written['format']}; "
            f"this is convgru {convgru.__version__}, which reads formats up to {CHECKPOINT_FORMAT}. "
            "Upgrade convgru to load it."
        )
    return checkpoint


def _unreadable(path: Path) -> CheckpointError:
    """Why torch.load could not read `path`, as far as its first bytes tell."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        why = "the file is empty (0 bytes)"
    elif head.startswith(b"PK"):
        why = ("the file is truncated or damaged (a PyTorch checkpoint is a zip archive and this one is incomplete; "
               "an interrupted copy or download?)")
    else:
        why = "it is not a PyTorch checkpoint (expected a .ckpt file written by scripts/train.py)"
    return CheckpointError(f"cannot read checkpoint {path}: {why}")


def check_model_config(checkpoint: dict, model: dict, path, source: str = "config", keys=None,
                       resume: bool = False) -> None:
    """Raise CheckpointError where the configured `model` (ForecastModule kwargs) and the checkpoint's
    differ in what defines the forecast: every net option and `future`, or only `keys` (dotted, such
    as "net.kernel_size"). `source` names where the configured values came from; `resume` says to
    select the checkpoint's model (a resumed run must train the same model) rather than drop options."""
    saved, given = _forecast_options(checkpoint["hyper_parameters"]), _forecast_options(model)
    names = sorted(saved.keys() | given.keys()) if keys is None else [k for k in keys if k in saved.keys() | given.keys()]
    differ = [k for k in names if _plain(saved.get(k)) != _plain(given.get(k))]
    if not differ:
        return
    lines = [f"  model.{k}: checkpoint {saved.get(k)!r}, {source} {given.get(k)!r}" for k in differ]
    if resume:
        overrides = " ".join(f"model.{k}={_override(saved.get(k))}" for k in differ)
        fix = f"Pick the model=... (or experiment=...) it was trained with, or pass: {overrides}"
    else:
        fix = "The checkpoint defines the model: drop those options (and any model=/experiment= for another model)."
    raise CheckpointError(f"the model in {path} does not match the {source}:\n" + "\n".join(lines) + "\n" + fix)


def module_from_checkpoint(checkpoint: dict, path="checkpoint") -> ForecastModule:
    """The ForecastModule of a loaded checkpoint (its own hyperparameters and weights, not compiled)."""
    try:
        module = ForecastModule(**{**checkpoint["hyper_parameters"], "compile": False})
        module.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot rebuild the model of {path} from its hyperparameters and weights: {error}") from None
    return module


def load_module(path, map_location="cpu") -> ForecastModule:
    """Rebuild a ForecastModule from a checkpoint's own hyperparameters and weights, safely."""
    module = module_from_checkpoint(load_checkpoint(path, map_location), path)
    return module.to(map_location) if isinstance(map_location, (str, torch.device)) else module


def _forecast_options(hparams: dict) -> dict:
    """{"net.<option>": value, "future": value}: what defines a ForecastModule's forecast."""
    return {**{f"net.{k}": v for k, v in (hparams.get("net") or {}).items()}, "future": hparams.get("future")}


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _override(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return "null" if value is None else str(value)
