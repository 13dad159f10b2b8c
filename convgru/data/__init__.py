"""Data: Moving MNIST (bundled digits, IDX, torchvision), the user's sequence arrays and videos, radar
(theirs or synthetic), gridded fields from NetCDF / Zarr (`FieldDataModule`, data=fields).

Items are `(inputs (T_in, C, H, W), targets (T_out, C, H, W))` float32 in [0, 1]. The Lightning data
modules (`ArrayDataModule`, `MovingMNISTDataModule`, `RadarDataModule`, `VideoDataModule`,
`FieldDataModule`) are imported on first use, so that `import convgru.data` loads neither Lightning nor
Hydra.
"""

import importlib

from .arrays import ArrayFile, SequenceArray
from .datasets import MovingMNISTStream, WindowDataset
from .digits import DigitSplit, read_idx, resolve_digits
from .moving_mnist import generate
from .sampler import EpochKeySampler
from .sevir import vil_to_kgm2
from .synthetic_radar import ensure_radar_dataset, generate_radar, write_radar_dataset

_DATA_MODULES = {"ArrayDataModule": "array_module", "MovingMNISTDataModule": "moving_mnist_module",
                 "RadarDataModule": "radar_module", "VideoDataModule": "video_module",
                 "FieldDataModule": "field_module"}

__all__ = ["ArrayDataModule", "ArrayFile", "DigitSplit", "EpochKeySampler", "FieldDataModule", "MovingMNISTDataModule",
           "MovingMNISTStream", "RadarDataModule", "SequenceArray", "WindowDataset", "ensure_radar_dataset", "generate",
           "VideoDataModule", "generate_radar", "read_idx", "resolve_digits", "vil_to_kgm2", "write_radar_dataset"]


def __getattr__(name: str):
    """The Lightning data modules, imported on first use (they import Lightning)."""
    if name in _DATA_MODULES:
        return getattr(importlib.import_module(f".{_DATA_MODULES[name]}", __name__), name)
    raise AttributeError(f"module 'convgru.data' has no attribute {name!r}")
