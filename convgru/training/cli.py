"""Argument checks shared by scripts/predict.py and scripts/export.py."""

import argparse
from collections.abc import Mapping
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return value


def output_error(path: Path, force: bool, option: str) -> str | None:
    """Why `path` (given as `option`) cannot be written, or None: a missing folder, a folder in its
    place, or an existing file without --force."""
    if not path.parent.is_dir():
        return f"{option} {path}: the folder {path.parent} does not exist"
    if path.is_dir():
        return f"{option} {path} is a folder, expected a file name"
    if path.exists() and not force:
        return f"{option} {path} exists; pass --force to replace it"
    return None


def trained_on(module) -> tuple[int | None, tuple[int, int] | None]:
    """(frames_in, (H, W)) from the checkpoint's data config (hparams["data"]), None where unknown:
    checkpoints of convgru 0.1.0 store no data config."""
    data = module.hparams.get("data")
    data = data if isinstance(data, Mapping) else {}
    size = data.get("image_size")
    if isinstance(size, int):
        size = (size, size)
    return data.get("frames_in"), None if size is None else tuple(size)
