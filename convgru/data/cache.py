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


def ensure_fixed_set(path: Path, stream: int, digits: np.ndarray, size: int, num_frames: int, num_digits: int,
                     image_size: int, seed: int) -> Path:
    """Generate the (size, T, S, S) uint8 set at `path` unless it is there; returns `path`.

    Chunk c comes from a generator seeded by (seed, stream, c). The file is filled under a temporary
    name and renamed into place, so readers never see a partial file.
    """
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        except OSError as error:
            raise type(error)(f"cannot write the Moving MNIST cache in {path.parent} ({error.strerror or error}); "
                              "set paths.cache_dir (or data.cache_dir) to a writable folder") from error
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(size, num_frames, image_size, image_size))
            for c, start in enumerate(range(0, size, CHUNK)):
                rng = np.random.default_rng([seed, stream, c])
                n = min(CHUNK, size - start)
                out[start:start + n] = generate(digits, n, rng, num_frames, num_digits, image_size)
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path
