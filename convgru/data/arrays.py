"""Memory-mapped sequence arrays (.npy, .npz) and read-only HDF5 datasets (.h5, .hdf5: SEVIR's `vil`, read
window by window; needs h5py) in the layouts NTCHW, NTHW, TNHW and NHWT."""

import errno
import math
import os
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from convgru._checks import OptionError, shown_name, shown_path

LAYOUTS = ("NTCHW", "NTHW", "TNHW", "NHWT")


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_header(f, where: str) -> tuple[tuple, bool, np.dtype]:
    """Shape, Fortran order and dtype of the .npy array at f's position. Never unpickles: arrays of
    Python objects, and anything that is not a .npy array, raise ValueError naming `where`."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise ValueError(f"format version {version}")
        shape, fortran, dtype = _HEADER_READERS[version](f)
    except (ValueError, OSError, SyntaxError, zipfile.BadZipFile) as error:
        reason = "it does not start with NumPy's header \\x93NUMPY" if "magic string" in str(error) else error
        raise ValueError(f"{where}: not a NumPy array file ({reason}); expected an array written by np.save "
                         "or np.savez (data files are never unpickled)") from None
    if dtype.hasobject:
        raise ValueError(f"{where}: holds Python objects (dtype {dtype}), not numbers; convgru never unpickles "
                         "data files. Save a uint8, integer or float array with np.save")
    return shape, fortran, dtype


def check_path(path: Path, what: str = "array file") -> None:
    """Raise OSError naming `path` when it is a symbolic link loop, FileNotFoundError when it (or the
    file a symbolic link names) does not exist."""
    shown = shown_path(path)
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(f"{shown}: a symbolic link loop (following its links leads back to a link already "
                          f"followed, or through too many links); expected the {what} itself or a link to it") from None
        if error.errno == errno.ENOENT and os.path.islink(path):
            raise FileNotFoundError(f"{what} {shown} not found: it is a symbolic link to "
                                    f"{shown_path(os.readlink(path))}, which does not exist") from None
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise OSError(f"{shown}: cannot open the {what} ({error.strerror or error})") from None


def _check_data(where: str, shape, dtype: np.dtype, found: int) -> None:
    """Raise ValueError naming `where` when the array is empty, its size overflows, or the `found`
    bytes of data after its header are fewer or more than the header announces."""
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: the header is damaged: it announces shape {shape} (a negative size)")
    if 0 in shape:
        raise ValueError(f"{where}: the array is empty (shape {shape})")
    needed = math.prod(shape) * dtype.itemsize
    if needed > sys.maxsize:
        raise ValueError(f"{where}: the header is damaged: its size overflows: shape {shape} {dtype} would be "
                         f"{needed:.3g} bytes, more than any file can hold (at most 2**63 - 1)")
    if found < needed:
        raise ValueError(f"{where}: truncated: the header announces {shape} {dtype} ({needed} bytes of data), "
                         f"found {max(found, 0)} bytes. Write the file again")
    if found > needed:
        raise ValueError(f"{where}: the header announces {shape} {dtype} ({needed} bytes of data), found {found} "
                         f"bytes: {found - needed} bytes more than the header accounts for (a damaged header, or "
                         "data appended to the file). Write the file again with np.save")


def _map_npy(path: Path) -> np.ndarray:
    """Memory-map a .npy file after checking its header and size."""
    with open(path, "rb") as f:
        shape, fortran, dtype = _read_header(f, shown_path(path))
        offset = f.tell()
    _check_data(shown_path(path), shape, dtype, path.stat().st_size - offset)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


def _npz_member(path: Path, key: str | None) -> str:
    """Name of the array `key` in an .npz (the only array when `key` is None)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    except zipfile.BadZipFile as error:
        raise ValueError(f"{shown_path(path)}: not a valid .npz file ({error}): expected a zip archive of .npy arrays "
                         "written by np.savez") from None
    if not names:
        with zipfile.ZipFile(path) as archive:
            others = archive.namelist()
        raise ValueError(f"{shown_path(path)}: the .npz holds no arrays" + (f" (only {others[:5]})" if others else "") +
                         "; expected one or more arrays written by np.savez(path, name=array)")
    if key is None and len(names) == 1:
        return names[0]
    if key not in names:
        raise ValueError(f"{shown_path(path)}: expected key to name one of the arrays {names}, found key={key!r}")
    return key


def _map_npz(path: Path, key: str | None) -> np.ndarray:
    """Memory-map an array stored uncompressed in an .npz; compressed members are read into memory."""
    name = _npz_member(path, key)
    where = f"{shown_path(path)}, array {name!r}"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        warnings.warn(f"{shown_path(path)}: array {name!r} is compressed (np.savez_compressed) and cannot be "
                      "memory-mapped; reading it into memory. Save it with np.save (.npy) or np.savez to memory-map "
                      "it.", stacklevel=3)
        try:
            with zipfile.ZipFile(path) as archive, archive.open(name + ".npy") as member:
                shape, _, dtype = _read_header(member, where)
                header = member.tell()
            _check_data(where, shape, dtype, info.file_size - header)
            with np.load(path) as archive:
                return archive[name]
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise ValueError(f"{where}: cannot be read ({error}): the file is damaged or truncated") from None
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len)
        start = f.tell()
        shape, fortran, dtype = _read_header(f, where)
        offset = f.tell()
    # the member's own bytes (its size in the zip), not the rest of the file (other members, the directory)
    found = min(info.file_size - (offset - start), path.stat().st_size - offset)
    _check_data(where, shape, dtype, found)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)


class ArrayFile:
    """A read-only .npy / .npz array, memory-mapped and reopened lazily after pickling (DataLoader workers)."""

    def __init__(self, path, key: str | None = None):
        self.path, self.key = Path(path), key
        self.where = shown_path(self.path)  # the path as messages show it
        check_path(self.path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.where} is a folder: expected a .npy or .npz file (name the files in it)")
        if not self.path.is_file():
            raise FileNotFoundError(f"array file {self.where} not found")
        if self.path.stat().st_size == 0:
            raise ValueError(f"{self.where}: the file is empty (0 bytes)")
        if self.path.suffix not in (".npy", ".npz"):
            raise ValueError(f"{self.where}: expected a .npy or .npz file, found suffix {self.path.suffix!r}")
        self._array = None
        self.shape, self.dtype = self.array.shape, self.array.dtype

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            if self.path.suffix == ".npz":
                self._array = _map_npz(self.path, self.key)
            else:
                self._array = _map_npy(self.path)
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_array": None}

    def __new__(cls, path=None, key: str | None = None):
        """An HDF5File (needs h5py) for .h5 / .hdf5 paths."""
        if cls is ArrayFile and Path(str(path)).suffix in (".h5", ".hdf5"):
            cls = HDF5File
        return super().__new__(cls)


def _h5py():
    """The h5py module; ImportError naming the package to install without it."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError("reading .h5 / .hdf5 array files needs h5py: pip install h5py") from error
    return h5py


def dataset_names(group) -> list[str]:
    """Paths of every dataset in an HDF5 group, e.g. ['id', 'vil']."""
    h5py, names = _h5py(), []
    group.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


class HDF5File(ArrayFile):
    """The dataset `key` of an HDF5 file (its only dataset when `key` is None), read-only.

    `ArrayFile(path, key)` gives one for .h5 / .hdf5 paths. `array` is the h5py Dataset: indexing
    it reads just that slice. The file is opened on first use of `array` and again in every other
    process (after pickling or a fork), so each DataLoader worker reads through its own handle.
    """

    def __init__(self, path, key: str | None = None):
        self.path, self.key = Path(path), key
        self.where = shown_path(self.path)  # the path as messages show it
        check_path(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"array file {self.where} not found")
        h5py = _h5py()
        try:
            file = h5py.File(self.path, "r")
        except OSError as error:  # h5py's words may hold the file name
            raise ValueError(f"{self.where}: expected an HDF5 file, could not open it "
                             f"({shown_name(str(error), None)})") from None
        with file:
            names = dataset_names(file)
            if key is None and len(names) == 1:
                self.key = names[0]
            elif key not in names:
                raise ValueError(f"{self.where}: expected key to name one of the datasets {names}, found key={key!r}")
            self.shape, self.dtype = file[self.key].shape, file[self.key].dtype
        self._file = self._array = self._pid = None

    @property
    def array(self):
        """The h5py Dataset."""
        if self._array is None or self._pid != os.getpid():
            self._file = _h5py().File(self.path, "r")
            self._array, self._pid = self._file[self.key], os.getpid()
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_array": None, "_pid": None}


class SequenceArray:
    """Sequences of an ArrayFile in a given layout; `clip(n, t0, t1)` gives frames (t1 - t0, C, H, W)."""

    def __init__(self, file: ArrayFile, layout: str = "NTCHW"):
        if layout not in LAYOUTS:
            raise OptionError("layout", f"expected one of {LAYOUTS}, found {layout!r}")
        if len(file.shape) != len(layout):
            raise ValueError(f"{file.where}: layout {layout} expects a {len(layout)}-d array, "
                             f"found shape {file.shape}")
        if not any(np.issubdtype(file.dtype, kind) for kind in (np.integer, np.floating, np.bool_)):
            raise ValueError(f"{file.where}: expected numbers (dtype uint8, another integer, float or bool), "
                             f"found dtype {file.dtype}")
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
