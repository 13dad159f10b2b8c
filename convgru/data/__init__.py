"""Data: Moving MNIST (bundled digits, IDX, torchvision) and the user's own sequence arrays.

Items are `(inputs (T_in, C, H, W), targets (T_out, C, H, W))` float32 in [0, 1].
"""

from .array_module import ArrayDataModule
from .arrays import ArrayFile, SequenceArray
from .datasets import MovingMNISTStream, WindowDataset
from .digits import DigitSplit, read_idx, resolve_digits
from .moving_mnist import generate
from .moving_mnist_module import MovingMNISTDataModule
from .sampler import EpochKeySampler

__all__ = ["ArrayDataModule", "ArrayFile", "DigitSplit", "EpochKeySampler", "MovingMNISTDataModule",
           "MovingMNISTStream", "SequenceArray", "WindowDataset", "generate", "read_idx", "resolve_digits"]
