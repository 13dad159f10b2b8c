"""Fixed Moving MNIST sets, generated once and cached as uint8 .npy files (written atomically)."""

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .moving_mnist import STEP_LENGTH, generate

GENERATOR_VERSION = 1  # bump when the generator's output changes, so caches regenerate
CHUNK = 500  # sequences per generator; fixed, so a set never depends on memory limits


def cache_path(cache_dir, split: str, digits: np.ndarray, size: int, num_frames: int, num_digits: int,
               image_size: int, seed: int) -> Path:
    """File name that holds every generation parameter and a digest of the digits."""
    digest = hashlib.sha1(digits.tobytes() + f"{digits.shape}|{STEP_LENGTH}|{GENERATOR_VERSION}".encode())
    name = (f"moving_mnist_{split}_n{size}_t{num_frames}_s{image_size}_d{num_digits}_seed{seed}_"
            f"{digest.hexdigest()[:12]}.npy")
    return Path(cache_dir) / name


def write_npy(path: Path, shape: tuple, dtype, chunks, what: str = "cache") -> Path:
    """Write an .npy of `shape` and `dtype` at `path`, filled chunk by chunk by `chunks`, an iterable
    of (start, array) along the first axis. The file is filled under a temporary name beside `path`
    and renamed into place, so readers never see a partial file; it gets the usual permissions."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    except OSError as error:
        raise type(error)(f"cannot write the {what} in {path.parent} ({error.strerror or error}); "
                          "set paths.cache_dir (or data.cache_dir) to a writable folder") from error
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for start, array in chunks:
            out[start:start + len(array)] = array
        out.flush()
        del out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def ensure_fixed_set(path: Path, stream: int, digits: np.ndarray, size: int, num_frames: int, num_digits: int,
                     image_size: int, seed: int) -> Path:
    """Generate the (size, T, S, S) uint8 set at `path` unless it is there (atomically, `write_npy`);
    returns `path`. Chunk c comes from a generator seeded by (seed, stream, c)."""
    if not path.is_file():
        chunks = ((start, generate(digits, min(CHUNK, size - start), np.random.default_rng([seed, stream, c]),
                                   num_frames, num_digits, image_size))
                  for c, start in enumerate(range(0, size, CHUNK)))
        write_npy(path, (size, num_frames, image_size, image_size), np.uint8, chunks, "Moving MNIST cache")
    return path
