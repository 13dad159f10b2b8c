"""Datasets yielding `(inputs (T_in, C, H, W), targets (T_out, C, H, W))` float32 pairs in [0, 1]."""

import numpy as np
import torch
from torch.utils.data import Dataset

from convgru.domain.units import scale

from .arrays import SequenceArray
from .missing import MissingPixels, check_finite
from .moving_mnist import animate, check_params, draw_motion

TRAIN_STREAM = 0  # seed-sequence tag of training sequences; fixed sets use other tags


def to_pair(frames: np.ndarray, frames_in: int, value_range=(0.0, 255.0), clip: bool = True,
            valid: np.ndarray | None = None):
    """Scale frames (T, C, H, W) from `value_range` to [0, 1] and split them into inputs and targets.

    Where `valid` (bool, like `frames`) is False, inputs are 0 and targets NaN (missing pixels)."""
    video = scale(frames, value_range, clip)  # always a copy: never writes to the source
    x, y = video[:frames_in], video[frames_in:]
    if valid is not None:
        missing = torch.from_numpy(~valid)
        x.masked_fill_(missing[:frames_in], 0.0)
        y.masked_fill_(missing[frames_in:], float("nan"))
    return x, y


class MovingMNISTStream(Dataset):
    """Moving MNIST generated on the fly: sample `key` (any int >= 0) comes from a generator seeded by (seed, key).

    `len()` is the number of sequences per epoch; pair it with `EpochKeySampler` for new sequences every epoch.
    No state lives in the dataset, so results do not depend on the number of DataLoader workers.
    """

    def __init__(self, digits: np.ndarray, size: int = 10000, frames_in: int = 10, frames_out: int = 10,
                 num_digits: int = 2, image_size: int = 64, seed: int = 0):
        check_params(num_digits, image_size, digits.shape[1:], frames_in + frames_out)
        self.digits, self.size, self.seed = digits, size, seed
        self.frames_in, self.frames_out = frames_in, frames_out
        self.num_digits, self.image_size = num_digits, image_size

    def __len__(self) -> int:
        return self.size

    def sequences(self, keys) -> np.ndarray:
        """Sequences (len(keys), T, S, S) uint8; each depends only on (seed, key)."""
        draws = [draw_motion(np.random.default_rng([self.seed, TRAIN_STREAM, int(key)]), 1, self.num_digits,
                             len(self.digits)) for key in keys]
        index, start, theta = (np.concatenate(part) for part in zip(*draws))
        return animate(self.digits, index, start, theta, self.frames_in + self.frames_out, self.image_size)

    def __getitems__(self, keys):
        return [to_pair(video[:, None], self.frames_in) for video in self.sequences(keys)]

    def __getitem__(self, key: int):
        return self.__getitems__([key])[0]


class WindowDataset(Dataset):
    """Windows of `frames_in + frames_out` frames cut from sequence arrays.

    `windows` is an int array (M, 3) of (array number, sequence, first frame); `value_range` maps to [0, 1].
    `missing` (one per array, or None) declares missing pixels: inputs 0, targets NaN. NaN or inf that
    are not declared missing raise ValueError naming the file, the sequence and the frames.
    """

    def __init__(self, arrays: list[SequenceArray], windows: np.ndarray, frames_in: int, frames_out: int,
                 value_range=None, clip: bool = True, missing: list[MissingPixels | None] | None = None):
        self.arrays, self.windows = arrays, np.asarray(windows, dtype=np.int64).reshape(-1, 3)
        self.frames_in, self.frames_out = frames_in, frames_out
        self.value_range = tuple(value_range) if value_range is not None else default_range(arrays[0].file.dtype)
        self.clip = clip
        self.missing = missing or [None] * len(arrays)

    @classmethod
    def first_frames(cls, array: SequenceArray, frames_in: int, frames_out: int):
        """One window per sequence of `array`, from its first frame."""
        n = array.num_sequences
        return cls([array], np.stack([np.zeros(n, int), np.arange(n), np.zeros(n, int)], axis=1), frames_in,
                   frames_out)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        source, n, t0 = self.windows[i]
        array, missing = self.arrays[source], self.missing[source]
        frames = array.clip(n, t0, t0 + self.frames_in + self.frames_out)
        valid = missing.valid(frames, n, t0) if missing else None
        check_finite(frames, valid, f"{array.file.where}, sequence {n}", t0, self.frames_in)
        return to_pair(frames, self.frames_in, self.value_range, self.clip, valid)


def default_range(dtype) -> tuple[float, float]:
    """Value range mapped to [0, 1] by default: (0, 255) for uint8, (0, 1) for floats."""
    return (0.0, 255.0) if dtype == np.uint8 else (0.0, 1.0)


def window_starts(num_frames: int, length: int, stride: int | None) -> range:
    """First frames of the windows of `length` frames; one window at frame 0 when `stride` is None."""
    return range(0, num_frames - length + 1, stride or num_frames)
