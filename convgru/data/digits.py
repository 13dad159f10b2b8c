"""MNIST digit sources (bundled 5k bank, IDX files, torchvision MNIST) and the train / held-out split."""

import gzip
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convgru._checks import OptionError, shown_path

BUNDLED_BANK = Path(__file__).resolve().parent / "bundled" / "mnist_5k.npz"  # package data; provenance: bundled/README
DIGIT_SHAPE = (28, 28)
HOLDOUT_SEED = 0  # fixed: the held-out digits never change with the experiment's seed
SOURCES = ("bundled", "mnist", "idx")
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class DigitSplit:
    """Digits for training sequences and disjoint held-out digits for validation / test; (N, h, w) uint8."""

    train: np.ndarray
    heldout: np.ndarray


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST's `*-idx3-ubyte`, `*-idx1-ubyte`, optionally gzipped) into an array."""
    path = Path(path)
    name = shown_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {name} not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{name}: expected an IDX file (magic 00 00 <type> <ndim>), found header {raw[:4].hex()}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{name}: header says shape {dims} ({expected} bytes of data), found {len(body)} bytes")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def check_digits(images: np.ndarray, origin) -> np.ndarray:
    """Check digit images are a non-empty (N, h, w) uint8 stack."""
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"{shown_path(origin)}: expected digit images (N, h, w) uint8 with N > 0, "
                         f"found shape {images.shape} {images.dtype}")
    return images


def load_digit_bank(path=None) -> np.ndarray:
    """A digit bank (`images` of an .npz, (N, 28, 28) uint8); None: the bundled one (BUNDLED_BANK)."""
    path = BUNDLED_BANK if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"digit bank {shown_path(path)} not found; rebuild it with scripts/build_digit_bank.py")
    with np.load(path) as bank:
        return check_digits(bank["images"], path)


def load_torchvision_mnist(root, train: bool, download: bool) -> np.ndarray:
    """MNIST's train or test digits through torchvision (downloaded into `root` when `download`)."""
    from torchvision.datasets import MNIST

    return MNIST(str(root), train=train, download=download).data.numpy()


def holdout_split(images: np.ndarray, fraction: float) -> DigitSplit:
    """Split one digit set by a fixed permutation: `fraction` of it is held out for validation / test."""
    if not 0 < fraction < 1:
        raise OptionError("holdout_fraction", f"expected a value in (0, 1), found {fraction}")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(images))
    n_out = int(round(fraction * len(images)))
    if n_out == 0 or n_out == len(images):
        raise ValueError(f"holdout_fraction={fraction} of {len(images)} digits leaves an empty split")
    return DigitSplit(train=images[np.sort(order[n_out:])], heldout=images[np.sort(order[:n_out])])


def resolve_digits(digits: str = "bundled", digit_bank=None, mnist_root=None, idx_train=None,
                   idx_test=None, holdout_fraction: float = 0.2, download: bool = False,
                   fallback_to_bundled: bool = False) -> DigitSplit:
    """Load digits from the configured source and split them into training and held-out digits.

    `bundled`: the 5k bank (`digit_bank`; None: BUNDLED_BANK), split by `holdout_fraction`. `mnist`:
    torchvision's MNIST train / test splits in `mnist_root` (downloaded if `download`). `idx`: IDX
    image files; both `idx_train` and `idx_test`, or one of them split by `holdout_fraction`.
    """
    if digits not in SOURCES:
        raise OptionError("digits", f"expected one of {SOURCES}, found {digits!r}")
    if digits == "bundled":
        return holdout_split(load_digit_bank(digit_bank), holdout_fraction)
    if digits == "idx":
        given = [p for p in (idx_train, idx_test) if p is not None]
        if not given:
            raise ValueError("digits=idx: expected idx_train and/or idx_test (IDX image files), found neither")
        if len(given) == 1:
            return holdout_split(check_digits(read_idx(given[0]), given[0]), holdout_fraction)
        return DigitSplit(check_digits(read_idx(idx_train), idx_train), check_digits(read_idx(idx_test), idx_test))
    if mnist_root is None:
        raise ValueError("digits=mnist: expected mnist_root (torchvision MNIST folder), found None")
    try:
        return DigitSplit(load_torchvision_mnist(mnist_root, True, download),
                          load_torchvision_mnist(mnist_root, False, download))
    except (RuntimeError, OSError) as err:
        found = str(err).split(". You can use download=True")[0]  # torchvision's advice is not convgru's option
        message = (f"expected torchvision's MNIST files in {mnist_root} (download={download}), found: {found}. "
                   "Put the MNIST files there, set download=true on a machine with internet, or set "
                   "fallback_to_bundled=true to use the bundled 5k digits")
        if not fallback_to_bundled:
            raise OptionError("mnist_root", message) from err
        warnings.warn(f"mnist_root: {message}. Falling back to the bundled digits.", stacklevel=2)
        return holdout_split(load_digit_bank(digit_bank), holdout_fraction)
