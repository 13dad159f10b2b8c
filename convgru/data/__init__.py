"""Data: Moving MNIST (bundled digits, IDX, torchvision), the user's sequence arrays, radar (theirs or synthetic).

Items are `(inputs (T_in, C, H, W), targets (T_out, C, H, W))` float32 in [0, 1].
"""

from .array_module import ArrayDataModule
from .arrays import ArrayFile, SequenceArray
from .datasets import MovingMNISTStream, WindowDataset
from .digits import DigitSplit, read_idx, resolve_digits
from .moving_mnist import generate
from .moving_mnist_module import MovingMNISTDataModule
from .radar_module import RadarDataModule
from .sampler import EpochKeySampler
from .sevir import vil_to_kgm2
from .synthetic_radar import ensure_radar_dataset, generate_radar, write_radar_dataset

__all__ = ["ArrayDataModule", "ArrayFile", "DigitSplit", "EpochKeySampler", "MovingMNISTDataModule",
           "MovingMNISTStream", "RadarDataModule", "SequenceArray", "WindowDataset", "ensure_radar_dataset", "generate",
           "generate_radar", "read_idx", "resolve_digits", "vil_to_kgm2", "write_radar_dataset"]
