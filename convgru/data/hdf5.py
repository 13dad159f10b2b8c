"""Read-only HDF5 datasets (e.g. SEVIR's `vil`, (N, 384, 384, 49) uint8) as sequence arrays, read window by window."""

import os
from pathlib import Path

try:
    import h5py
except ImportError as error:
    raise ImportError("reading .h5 / .hdf5 array files needs h5py: pip install h5py") from error

from convgru._checks import shown_name, shown_path

from .arrays import ArrayFile, check_path


def dataset_names(group: h5py.Group) -> list[str]:
    """Paths of every dataset in an HDF5 group, e.g. ['id', 'vil']."""
    names = []
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
    def array(self) -> h5py.Dataset:
        if self._array is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._array, self._pid = self._file[self.key], os.getpid()
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_array": None, "_pid": None}
