"""Memory-mapped sequence arrays (.npy, .npz; HDF5 in hdf5.py) in the layouts NTCHW, NTHW, TNHW and NHWT."""

import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np

LAYOUTS = ("NTCHW", "NTHW", "TNHW", "NHWT")


def _npz_member(path: Path, key: str | None) -> str:
    """Name of the array `key` in an .npz (the only array when `key` is None)."""
    with zipfile.ZipFile(path) as archive:
        names = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    if key is None and len(names) == 1:
        return names[0]
    if key not in names:
        raise ValueError(f"{path}: expected key to name one of the arrays {names}, found key={key!r}")
    return key


def _map_npz(path: Path, key: str | None) -> np.ndarray:
    """Memory-map an array stored uncompressed in an .npz; compressed members are read into memory."""
    name = _npz_member(path, key)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        warnings.warn(f"{path}: array {name!r} is compressed (np.savez_compressed) and cannot be memory-mapped; "
                      "reading it into memory. Save it with np.save (.npy) or np.savez to memory-map it.",
                      stacklevel=3)
        with np.load(path) as archive:
            return archive[name]
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


class ArrayFile:
    """A read-only .npy / .npz array, memory-mapped and reopened lazily after pickling (DataLoader workers)."""

    def __init__(self, path, key: str | None = None):
        self.path, self.key = Path(path), key
        if not self.path.is_file():
            raise FileNotFoundError(f"array file {self.path} not found")
        if self.path.suffix not in (".npy", ".npz"):
            raise ValueError(f"{self.path}: expected a .npy or .npz file, found suffix {self.path.suffix!r}")
        self._array = None
        self.shape, self.dtype = self.array.shape, self.array.dtype

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            if self.path.suffix == ".npz":
                self._array = _map_npz(self.path, self.key)
            else:
                self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_array": None}

    def __new__(cls, path=None, key: str | None = None):
        """An HDF5File (convgru.data.hdf5, needs h5py) for .h5 / .hdf5 paths."""
        if cls is ArrayFile and Path(str(path)).suffix in (".h5", ".hdf5"):
            from .hdf5 import HDF5File
            cls = HDF5File
        return super().__new__(cls)


class SequenceArray:
    """Sequences of an ArrayFile in a given layout; `clip(n, t0, t1)` gives frames (t1 - t0, C, H, W)."""

    def __init__(self, file: ArrayFile, layout: str = "NTCHW"):
        if layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {LAYOUTS}, found {layout!r}")
        if len(file.shape) != len(layout):
            raise ValueError(f"{file.path}: layout {layout} expects a {len(layout)}-d array, "
                             f"found shape {file.shape}")
        if file.dtype != np.uint8 and not np.issubdtype(file.dtype, np.floating):
            raise ValueError(f"{file.path}: expected dtype uint8 or float, found {file.dtype}")
        self.file, self.layout = file, layout
        dims = dict(zip(layout, file.shape))
        self.num_sequences, self.num_frames = dims["N"], dims["T"]
        self.frame_shape = (dims.get("C", 1), dims["H"], dims["W"])

    def clip(self, n: int, t0: int, t1: int) -> np.ndarray:
        a = self.file.array
        if self.layout == "NTCHW":
            return a[n, t0:t1]
        if self.layout == "NTHW":
            return a[n, t0:t1, None]
        if self.layout == "NHWT":
            return np.moveaxis(a[n, :, :, t0:t1], -1, 0)[:, None]
        return a[t0:t1, n, None]
