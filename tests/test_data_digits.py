"""Digit sources: IDX reader, bundled bank, held-out split, torchvision failure handling."""

import gzip
import struct

import numpy as np
import pytest

from convgru._checks import OptionError
from convgru.data.digits import BUNDLED_BANK, holdout_split, load_digit_bank, read_idx, resolve_digits


def write_idx(path, array: np.ndarray, compress: bool = False):
    """Write an IDX file (ubyte) the way MNIST's are laid out."""
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "images-idx3-ubyte", images, compress))
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels, compress)), labels)


def test_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing-idx3-ubyte"):
        read_idx(tmp_path / "missing-idx3-ubyte")
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="bad: expected an IDX file"):
        read_idx(tmp_path / "bad")
    truncated = write_idx(tmp_path / "short", np.zeros((3, 28, 28), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"short: header says shape \(3, 28, 28\)"):
        read_idx(truncated)


def test_bundled_bank():
    images = load_digit_bank()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    with np.load(BUNDLED_BANK) as bank:
        assert np.bincount(bank["labels"]).tolist() == [500] * 10


def test_holdout_is_disjoint_and_fixed():
    images = load_digit_bank()
    split = holdout_split(images, 0.2)
    assert len(split.train) == 4000 and len(split.heldout) == 1000
    train = {d.tobytes() for d in split.train}
    assert not train & {d.tobytes() for d in split.heldout}
    np.testing.assert_array_equal(holdout_split(images, 0.2).heldout, split.heldout)
    with pytest.raises(ValueError, match="holdout_fraction"):
        holdout_split(images, 1.0)


def test_idx_source_single_file_is_split_two_files_are_not(tmp_path):
    a = write_idx(tmp_path / "a-idx3-ubyte", np.arange(10, dtype=np.uint8)[:, None, None].repeat(28, 1).repeat(28, 2))
    b = write_idx(tmp_path / "b-idx3-ubyte", np.full((3, 28, 28), 200, np.uint8))
    single = resolve_digits("idx", idx_test=a, holdout_fraction=0.3)
    assert len(single.train) == 7 and len(single.heldout) == 3
    both = resolve_digits("idx", idx_train=a, idx_test=b)
    assert len(both.train) == 10 and (both.heldout == 200).all()
    with pytest.raises(ValueError, match="idx_train and/or idx_test"):
        resolve_digits("idx")
    with pytest.raises(ValueError, match="digits: expected one of"):
        resolve_digits("emnist")


def test_torchvision_missing_raises_or_falls_back(tmp_path):
    missing = r"mnist_root: expected torchvision.s MNIST files in .*found: Dataset not found.*fallback_to_bundled=true"
    with pytest.raises(OptionError, match=missing):
        resolve_digits("mnist", mnist_root=tmp_path, download=False)
    with pytest.warns(UserWarning, match="Falling back to the bundled digits"):
        split = resolve_digits("mnist", mnist_root=tmp_path, download=False, fallback_to_bundled=True)
    assert len(split.train) == 4000


def test_torchvision_mnist_files_give_train_and_test_digits(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, value, n in (("train", 10, 6), ("t10k", 250, 4)):
        write_idx(raw / f"{split}-images-idx3-ubyte", np.full((n, 28, 28), value, np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", np.zeros(n, np.uint8))
    split = resolve_digits("mnist", mnist_root=tmp_path)
    assert split.train.shape == (6, 28, 28) and (split.train == 10).all() and (split.heldout == 250).all()
