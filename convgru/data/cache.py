"""Fixed Moving MNIST sets, generated once and cached as uint8 .npy files (written atomically).

`write_npy` fills a cache file with `convgru.atomic.atomic_write` (a temporary name beside it, renamed
into place), reserving its blocks first, so a full disk gives one error naming the folder and the
bytes needed and leaves no partial file; the temporary files of writers that died mid-write (killed,
power cut) are removed before it writes, so they never pile up.
"""

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from convgru._checks import shown_path
from convgru.atomic import FULL, atomic_write, remove_stale_tmp, size_text

from .moving_mnist import STEP_LENGTH, generate
from .resources import check_memory

GENERATOR_VERSION = 1  # bump when the generator's output changes, so caches regenerate
CHUNK = 500  # sequences per generator; fixed, so a set never depends on memory limits
log = logging.getLogger(__name__)


def user_cache_dir() -> Path:
    """convgru's folder in the user's cache: $XDG_CACHE_HOME/convgru, else ~/.cache/convgru (the XDG base
    directory specification). The data modules' default cache_dir, and the configs' paths.cache_dir when
    convgru runs installed from a wheel rather than from a checkout."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "convgru"


USER_CACHE = user_cache_dir()  # the default cache_dir of the data modules (their configs set paths.cache_dir)


def cache_path(cache_dir, split: str, digits: np.ndarray, size: int, num_frames: int, num_digits: int,
               image_size: int, seed: int) -> Path:
    """File name that holds every generation parameter and a digest of the digits."""
    digest = hashlib.sha1(digits.tobytes() + f"{digits.shape}|{STEP_LENGTH}|{GENERATOR_VERSION}".encode())
    name = (f"moving_mnist_{split}_n{size}_t{num_frames}_s{image_size}_d{num_digits}_seed{seed}_"
            f"{digest.hexdigest()[:12]}.npy")
    return Path(cache_dir) / name


def npy_size(shape: tuple, dtype) -> int:
    """Bytes of the .npy file np.save writes for an array of `shape` and `dtype`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": tuple(shape)})
    return len(header.getvalue()) + int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize


def write_npy(path: Path, shape: tuple, dtype, chunks, what: str = "cache") -> Path:
    """Write an .npy of `shape` and `dtype` at `path`, filled chunk by chunk by `chunks`, an iterable
    of (start, array) along the first axis, with `convgru.atomic.atomic_write`: readers never see a
    partial file, and a full disk (checked first, and while writing) is one OSError naming the folder
    and the bytes needed. Logs the file and its size first (at INFO: the scripts print it)."""
    path = Path(path)
    size = npy_size(shape, dtype)
    log.info(f"Writing the {what} {shown_path(path)} ({size_text(size)})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(f"cannot write the {what} in {shown_path(path.parent)} ({error.strerror or error}); "
                          "set paths.cache_dir (or data.cache_dir) to a writable folder") from error
    advice = "free space there or set paths.cache_dir (or data.cache_dir) to a folder on a disk with room"
    with atomic_write(path, what, size, advice) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        if hasattr(os, "posix_fallocate"):  # reserve the blocks now: a full disk is an OSError here, not a crash
            with open(tmp, "r+b") as f:        # (SIGBUS) when a memory-mapped page is written later
                try:
                    os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
                except OSError as error:
                    if error.errno in FULL:  # other errors: a file system without fallocate
                        raise
        for start, array in chunks:
            out[start:start + len(array)] = array
        out.flush()
        del out
    return path


def fixed_set_bytes(size: int, num_frames: int, num_digits: int, image_size: int) -> int:
    """Memory `ensure_fixed_set` needs at once: one chunk of sequences and its motion."""
    return int(generation_bytes(min(CHUNK, size), num_frames, num_digits, image_size))


def generation_bytes(num_sequences: int, num_frames: int, num_digits: int, image_size: int,
                     digit_shape=(28, 28)) -> int:
    """About the peak memory of `generate(num_sequences, num_frames, ...)`: the uint8 frames, the
    float64 trajectories and corners, and the digit patches drawn per digit."""
    per_frame = image_size * image_size + num_digits * 2 * 8 * 3 + 2 * int(np.prod(digit_shape))
    return num_sequences * num_frames * per_frame


def ensure_fixed_set(path: Path, stream: int, digits: np.ndarray, size: int, num_frames: int, num_digits: int,
                     image_size: int, seed: int) -> Path:
    """Generate the (size, T, S, S) uint8 set at `path` unless it is there (atomically, `write_npy`);
    returns `path`. Chunk c comes from a generator seeded by (seed, stream, c). ValueError when a chunk
    would not fit in memory, OSError when the file would not fit on the disk, before generating anything.
    Temporary files that dead writers left beside it are removed either way."""
    remove_stale_tmp(path.parent)
    if not path.is_file():
        check_memory(fixed_set_bytes(size, num_frames, num_digits, image_size),
                     f"generating the Moving MNIST set {path.name} ({min(size, CHUNK)} sequences of {num_frames} "
                     f"frames of {image_size}x{image_size} at a time)", "lower the number of frames or image_size")
        chunks = ((start, generate(digits, min(CHUNK, size - start), np.random.default_rng([seed, stream, c]),
                                   num_frames, num_digits, image_size))
                  for c, start in enumerate(range(0, size, CHUNK)))
        write_npy(path, (size, num_frames, image_size, image_size), np.uint8, chunks, "Moving MNIST cache")
    return path
