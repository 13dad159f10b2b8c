"""LightningDataModule for the user's own sequence arrays (.npy / .npz, memory-mapped)."""

import os

import numpy as np

from convgru._checks import OptionError, shown, shown_path
from convgru.domain.units import check_value_range

from .arrays import LAYOUTS, ArrayFile, SequenceArray
from .base import SequenceDataModule
from .datasets import WindowDataset, window_starts
from .files import unique_files, unique_split_files
from .missing import MissingPixels, check_finite

SPLITS = ("train", "val", "test")


def _sequences(arrays: list[SequenceArray]) -> list[tuple[int, int]]:
    """Every (array number, sequence) pair, in file order."""
    return [(i, n) for i, a in enumerate(arrays) for n in range(a.num_sequences)]


def _as_list(files) -> list:
    return [files] if isinstance(files, (str, bytes)) or not hasattr(files, "__iter__") else list(files)


def _numbers(name: str, value, count: int, expected: str) -> list[float]:
    """`value` as a list of `count` floats, or ValueError naming option `name`."""
    try:
        numbers = [float(v) for v in value] if not isinstance(value, str) else []
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != count:
        raise OptionError(name, f"expected {expected}, found {value!r}")
    return numbers


def _check_sample(array: SequenceArray, missing: MissingPixels | None, frames: int = 16) -> None:
    """Check `frames` frames spread over the array for NaN / inf that are not declared missing."""
    if not np.issubdtype(array.file.dtype, np.floating):
        return
    total = array.num_sequences * array.num_frames
    for index in np.unique(np.linspace(0, total - 1, min(frames, total)).astype(np.int64)):
        n, t = divmod(int(index), array.num_frames)
        frame = array.clip(n, t, t + 1)
        check_finite(frame, missing.valid(frame, n, t) if missing else None, f"{array.file.where}, sequence {n}", t)


class ArrayDataModule(SequenceDataModule):
    """Sequences from arrays of shape (N, T, C, H, W), (N, T, H, W) or time-major (T, N, H, W) (`layout`).

    Splits come from `train_files` / `val_files` / `test_files`, or from `files` cut in order by
    `split` fractions (whole sequences, so windows never straddle splits). Each sequence gives the
    window at frame 0, or windows every `stride` frames. uint8 maps [0, 255] to [0, 1], floats are
    taken as in [0, 1]; `value_range=[low, high]` maps low..high to [0, 1] instead (clipped if `clip`),
    and is required for other integer dtypes.

    Missing pixels: `missing_value` (nan or the files' no-data number) and `mask_file` (a .npy of shape
    (H, W), a static coverage mask, or shaped like each data file; nonzero = valid) declare them; they
    are 0 in the inputs and NaN in the targets. NaN or inf that are not declared raise ValueError.
    """

    def __init__(self, files=None, split=(0.8, 0.1, 0.1), train_files=None, val_files=None, test_files=None,
                 layout: str = "NTCHW", key: str | None = None, frames_in: int = 10, frames_out: int = 10,
                 channels: int = 1, stride: int | None = None, value_range=None, clip: bool = True,
                 missing_value: float | str | None = None, mask_file=None,
                 batch_size: int = 16, num_workers: int = 2, pin_memory: bool = True,
                 persistent_workers: bool = True):
        super().__init__(frames_in, frames_out, channels, batch_size, num_workers, pin_memory, persistent_workers)
        per_split = (train_files, val_files, test_files)
        if (files is None) == all(f is None for f in per_split):
            raise OptionError("files", "expected either files (cut into train / val / test by split) or "
                             f"train_files/val_files/test_files, found files={files!r}, train_files={train_files!r}, "
                             f"val_files={val_files!r}, test_files={test_files!r}")
        for name, value in zip(("files", *(f"{s}_files" for s in SPLITS)), (files, *per_split)):
            if value is not None and not all(isinstance(p, (str, os.PathLike)) for p in _as_list(value)):
                raise OptionError(name, f"expected a .npy/.npz path or a list of them, found {value!r}")
        if files is not None:
            split = _numbers("split", split, 3, "3 fractions (train, val, test) >= 0 summing to 1")
            if min(split) < 0 or abs(sum(split) - 1) > 1e-6:
                raise OptionError("split", f"expected 3 fractions (train, val, test) >= 0 summing to 1, found {split}")
        if layout not in LAYOUTS:
            raise OptionError("layout", f"expected one of {LAYOUTS}, found {layout!r}")
        if stride is not None and (not isinstance(stride, int) or stride < 1):
            raise OptionError("stride", f"expected null or an integer >= 1, found {stride!r}")
        value_range = check_value_range(value_range)
        if missing_value is not None:
            try:
                missing_value = float(missing_value)
            except (TypeError, ValueError):
                raise OptionError("missing_value", f"expected null, nan or a number, found {missing_value!r}") from None
        self.files, self.split = files, split
        self.split_files = dict(zip(SPLITS, per_split))
        self.layout, self.key, self.stride = layout, key, stride
        self.value_range, self.clip = value_range, clip
        self.missing_value, self.mask_file = missing_value, mask_file
        self.datasets: dict[str, WindowDataset] = {}

    @property
    def length(self) -> int:
        return self.frames_in + self.frames_out

    def _open(self, files) -> tuple[list[SequenceArray], list[MissingPixels | None]]:
        """Open and check files (layout, dtype, channels, frame size and count, values in a sample of
        frames); return them with their missing pixels."""
        arrays = [SequenceArray(ArrayFile(path, self.key), self.layout) for path in _as_list(files)]
        for a in arrays:
            if a.frame_shape[0] != self.channels:
                raise ValueError(f"{a.file.where}: expected channels={self.channels} (option channels), "
                                 f"found {a.frame_shape[0]} in shape {a.file.shape} ({self.layout})")
            if (a.frame_shape, a.file.dtype) != (arrays[0].frame_shape, arrays[0].file.dtype):
                raise ValueError(f"{a.file.where}: expected frames {arrays[0].frame_shape} {arrays[0].file.dtype} "
                                 f"like {arrays[0].file.where}, found {a.frame_shape} {a.file.dtype}")
            if a.num_frames < self.length:
                raise ValueError(f"{a.file.where}: expected at least frames_in + frames_out = {self.length} "
                                 f"frames per sequence, found {a.num_frames} (shape {a.file.shape}, {self.layout})")
            if a.file.dtype != np.uint8 and np.issubdtype(a.file.dtype, np.integer) and self.value_range is None:
                raise ValueError(f"{a.file.where}: {a.file.dtype} values need value_range=[low, high], the values "
                                 "that map to 0 and 1 (e.g. [0, 70] for radar dBZ); only uint8 (0..255) and "
                                 "float (0..1) have a default")
        missing = [self._missing(a) for a in arrays]
        for a, m in zip(arrays, missing):
            _check_sample(a, m)
            if m is not None:
                self._check_some_valid(a, m)
        return arrays, missing

    def _missing(self, array: SequenceArray) -> MissingPixels | None:
        """The declared missing pixels of `array` (missing_value, mask_file), or None."""
        if self.mask_file is None:
            return MissingPixels(self.missing_value) if self.missing_value is not None else None
        mask = ArrayFile(self.mask_file)
        if mask.shape == array.file.shape:
            return MissingPixels(self.missing_value, SequenceArray(mask, self.layout))
        if mask.shape == array.frame_shape[1:]:
            static = np.asarray(mask.array)
            if not static.any():
                raise ValueError(f"data.mask_file {mask.where}: no valid pixel: every value of the {mask.shape} "
                                 "mask is 0; expected a mask that is nonzero where pixels are valid")
            return MissingPixels(self.missing_value, static)
        raise ValueError(f"mask_file {mask.where}: expected shape (H, W) = {array.frame_shape[1:]} or the shape "
                         f"{array.file.shape} of {array.file.where}, found {mask.shape}")

    def _check_some_valid(self, array: SequenceArray, missing: MissingPixels, frames: int = 64) -> None:
        """ValueError naming the option and file when `missing` leaves no valid pixel in `array` (read
        `frames` frames at a time; stops at the first valid pixel, usually in the first frames)."""
        def blocks(source: SequenceArray):
            for n in range(source.num_sequences):
                for t0 in range(0, source.num_frames, frames):
                    yield n, t0, source.clip(n, t0, min(t0 + frames, source.num_frames))
        if any(missing.valid(block, n, t0).any() for n, t0, block in blocks(array)):
            return
        if isinstance(missing.mask, SequenceArray) and not any(block.any() for _, _, block in blocks(missing.mask)):
            raise ValueError(f"data.mask_file {missing.mask.file.where}: no valid pixel: every value of the mask is 0; "
                             "expected a mask that is nonzero where pixels are valid")
        value = missing.value
        reason = ("is NaN (data.missing_value=nan)" if np.isnan(value) else
                  f"equals data.missing_value={value:g}")
        if missing.mask is not None:
            reason += f" or is masked out by data.mask_file {shown_path(self.mask_file)}"
        raise ValueError(f"{array.file.where}: no valid pixel: every pixel {reason}; expected some valid pixels "
                         "(is data.missing_value the files' no-data value?)")

    def _windows(self, arrays: list[SequenceArray], sequences) -> np.ndarray:
        """(M, 3) windows (array, sequence, first frame) of the given (array, sequence) pairs."""
        rows = [(i, n, t0) for i, n in sequences
                for t0 in window_starts(arrays[i].num_frames, self.length, self.stride)]
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def _build(self) -> None:
        if self.files is not None:
            arrays, missing = self._open(unique_files(_as_list(self.files), "data.files")[0])
            pairs = _sequences(arrays)
            n_train, n_val = (int(f * len(pairs)) for f in self.split[:2])
            chunks = (pairs[:n_train], pairs[n_train:n_train + n_val], pairs[n_train + n_val:])
            for name, chunk in zip(SPLITS, chunks):
                self._add(name, arrays, missing, self._windows(arrays, chunk),
                          f"split={self.split} of {len(pairs)} sequences, split whole; give more sequences, other "
                          f"data.split fractions or data.{name}_files")
            return
        for name, files in self.split_files.items():
            if files is None:
                raise ValueError(f"{name}_files: expected one or more array files, found None")
        paths = self._split_paths()
        for name, files in self.split_files.items():
            arrays, missing = self._open(paths[name])
            pairs = _sequences(arrays)
            self._add(name, arrays, missing, self._windows(arrays, pairs), f"{name}_files={shown(files, None)}")

    def _split_paths(self) -> dict[str, list]:
        """The files of each split (train_files, val_files, test_files), a file named by two splits in the
        first alone (`convgru.data.files.unique_split_files`), so that none reaches two through a link."""
        options = {name: f"data.{name}_files" for name in self.split_files}
        unique, _ = unique_split_files({options[name]: _as_list(files) for name, files in self.split_files.items()})
        return {name: unique[option] for name, option in options.items()}

    def _add(self, name: str, arrays, missing, windows: np.ndarray, origin: str) -> None:
        if len(windows) == 0:
            raise ValueError(f"{name} split is empty: expected at least one sample, found none ({origin})")
        self.datasets[name] = WindowDataset(arrays, windows, self.frames_in, self.frames_out, self.value_range,
                                            self.clip, missing)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self._build()

    def train_dataloader(self):
        return self._loader(self.datasets["train"], shuffle=True)

    def val_dataloader(self):
        return self._loader(self.datasets["val"])

    def test_dataloader(self):
        return self._loader(self.datasets["test"])
