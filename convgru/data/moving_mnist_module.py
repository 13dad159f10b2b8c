"""LightningDataModule for Moving MNIST: on-the-fly training sequences, cached fixed val / test sets."""

from pathlib import Path

import numpy as np

from convgru._checks import OptionError, shown_path

from .arrays import ArrayFile, SequenceArray, check_path
from .base import SequenceDataModule
from .cache import (
    CHUNK,
    USER_CACHE,
    cache_path,
    ensure_fixed_set,
    fixed_set_bytes,
    generation_bytes,
)
from .datasets import MovingMNISTStream, WindowDataset
from .digits import DIGIT_SHAPE, DigitSplit, resolve_digits
from .moving_mnist import check_params
from .resources import check_memory
from .sampler import EpochKeySampler

VAL_STREAM, TEST_STREAM = 1, 2
MOVING_MNIST_URL_MD5 = "be083ec986bfe91a449d63653c411eb2"  # torchvision's checksum of mnist_test_seq.npy


class MovingMNISTDataModule(SequenceDataModule):
    """Moving MNIST (Srivastava et al. 2015) with digits from the bundled bank, IDX files or torchvision.

    Training sequences are new every epoch (seeded by `seed`); validation and test sets are fixed
    (seeded by `eval_seed`), drawn from held-out digits and cached in `cache_dir`. `test_file` (the
    standard time-major `mnist_test_seq.npy`, (20, 10000, 64, 64) uint8) replaces the generated test set.
    """

    def __init__(self, train_size: int = 10000, val_size: int = 1000, test_size: int = 10000,
                 frames_in: int = 10, frames_out: int = 10, num_digits: int = 2, image_size: int = 64,
                 seed: int = 0, eval_seed: int = 0, digits: str = "bundled", digit_bank=None,
                 mnist_root=USER_CACHE / "mnist", idx_train=None, idx_test=None,
                 holdout_fraction: float = 0.2, download: bool = False, fallback_to_bundled: bool = False,
                 test_file=None, cache_dir=USER_CACHE, channels: int = 1,
                 batch_size: int = 16, num_workers: int = 2, pin_memory: bool = True,
                 persistent_workers: bool = True):
        super().__init__(frames_in, frames_out, channels, batch_size, num_workers, pin_memory, persistent_workers)
        if channels != 1:
            raise OptionError("channels", f"Moving MNIST has 1 channel, found channels={channels}")
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if not isinstance(value, int) or value < 1:
                raise OptionError(name, f"expected an integer >= 1 (sequences), found {value!r}")
        check_params(num_digits, image_size, DIGIT_SHAPE, frames_in + frames_out)
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.num_digits, self.image_size, self.seed, self.eval_seed = num_digits, image_size, seed, eval_seed
        self.digit_options = dict(digits=digits, digit_bank=digit_bank, mnist_root=mnist_root, idx_train=idx_train,
                                  idx_test=idx_test, holdout_fraction=holdout_fraction, download=download,
                                  fallback_to_bundled=fallback_to_bundled)
        self.download = download
        self.test_file = Path(test_file) if test_file is not None else None
        self.cache_dir = Path(cache_dir)
        self._digits: DigitSplit | None = None
        self.train_set = self.val_set = self.test_set = None
        self._check_memory()

    def _check_memory(self) -> None:
        """ValueError naming the options before a fixed set or a training batch is generated that does
        not fit in memory (e.g. frames_in=100000)."""
        frames, s = self.num_frames, self.image_size
        options = f"data.frames_in={self.frames_in}, data.frames_out={self.frames_out}, data.image_size={s}: "
        sets = [("val_size", "validation", self.val_size)]
        if self.test_file is None:
            sets.append(("test_size", "test", self.test_size))
        for name, split, size in sets:
            check_memory(fixed_set_bytes(size, frames, self.num_digits, s),
                         f"{options}generating the Moving MNIST {split} set (data.{name}={size} sequences of "
                         f"{frames} frames of {s}x{s}, {min(size, CHUNK)} at a time)",
                         f"lower data.frames_in, data.frames_out, data.image_size or data.{name}")
        batch = self.batch_size * frames * s * s * (1 + 4 + 4)  # uint8 frames, float32 pairs, the batch
        check_memory(batch + generation_bytes(self.batch_size, frames, self.num_digits, s),
                     f"{options}generating a training batch (data.batch_size={self.batch_size} sequences of "
                     f"{frames} frames of {s}x{s})", "lower data.frames_in, data.frames_out, data.image_size "
                     "or data.batch_size")

    @property
    def num_frames(self) -> int:
        return self.frames_in + self.frames_out

    @property
    def digits(self) -> DigitSplit:
        """Training and held-out digits, loaded once."""
        if self._digits is None:
            self._digits = resolve_digits(**self.digit_options)
        return self._digits

    def prepare_data(self) -> None:
        """Download what is configured and write the cached fixed sets (runs once per node)."""
        self._fixed_set("val")
        if self.test_file is None:
            self._fixed_set("test")
        else:
            self._standard_test_file()

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = MovingMNISTStream(self.digits.train, self.train_size, self.frames_in, self.frames_out,
                                               self.num_digits, self.image_size, self.seed)
        if stage in (None, "fit", "validate"):
            self.val_set = self._fixed_set("val")
        if stage in (None, "test"):
            self.test_set = self._fixed_set("test") if self.test_file is None else self._standard_test_set()

    def _fixed_set(self, split: str) -> WindowDataset:
        """The cached validation or test set (generated on first use) as a dataset."""
        size, stream = (self.val_size, VAL_STREAM) if split == "val" else (self.test_size, TEST_STREAM)
        params = (self.digits.heldout, size, self.num_frames, self.num_digits, self.image_size, self.eval_seed)
        path = ensure_fixed_set(cache_path(self.cache_dir, split, *params), stream, *params)
        return WindowDataset.first_frames(SequenceArray(ArrayFile(path), "NTHW"), self.frames_in, self.frames_out)

    def _standard_test_file(self) -> Path:
        """Path of `test_file`, downloaded with torchvision's URL when missing and `download` is set."""
        check_path(self.test_file, "test_file")
        if not self.test_file.is_file():
            if not self.download:
                raise FileNotFoundError(f"test_file {shown_path(self.test_file)} not found; give the path of "
                                        "mnist_test_seq.npy or set download=true to fetch it there")
            from torchvision.datasets import MovingMNIST
            from torchvision.datasets.utils import download_url

            try:
                download_url(MovingMNIST._URL, str(self.test_file.parent), self.test_file.name, MOVING_MNIST_URL_MD5)
            except (OSError, RuntimeError) as err:
                raise RuntimeError(f"test_file: downloading {MovingMNIST._URL} to {shown_path(self.test_file)} failed: "
                                   f"{err}. Download it on a machine with internet and copy it there.") from err
        return self.test_file

    def _standard_test_set(self) -> WindowDataset:
        """The standard time-major test file as a dataset of its first `frames_in + frames_out` frames."""
        sequences = SequenceArray(ArrayFile(self._standard_test_file()), "TNHW")
        expected = (self.image_size, self.image_size)
        if sequences.file.dtype != np.uint8 or sequences.frame_shape[1:] != expected:
            raise ValueError(f"test_file {sequences.file.where}: expected (T, N, {self.image_size}, {self.image_size}) "
                             f"uint8 like mnist_test_seq.npy, found {sequences.file.shape} {sequences.file.dtype}")
        if sequences.num_frames < self.num_frames:
            raise ValueError(f"test_file {sequences.file.where}: expected at least frames_in + frames_out = "
                             f"{self.num_frames} frames, found {sequences.num_frames}")
        return WindowDataset.first_frames(sequences, self.frames_in, self.frames_out)

    def train_dataloader(self):
        return self._loader(self.train_set, sampler=EpochKeySampler(self.train_set))

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        return self._loader(self.test_set)
