"""ArrayDataModule and the array readers: layouts, memory-mapping, npz, windows, splits, bad input."""

import hashlib
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from convgru.data import ArrayDataModule, ArrayFile, SequenceArray


def video(n=6, t=12, c=1, h=8, w=8, dtype=np.uint8):
    """Sequences whose pixels encode (sequence, frame): value = 10 * n + t."""
    values = 10 * np.arange(n)[:, None] + np.arange(t)[None, :]
    return np.broadcast_to(values[:, :, None, None, None], (n, t, c, h, w)).astype(dtype)


def module(**kwargs):
    return ArrayDataModule(**{"frames_in": 3, "frames_out": 2, "batch_size": 2, "num_workers": 0, **kwargs})


def three_splits(path) -> dict:
    """train_files, val_files, test_files: `path` and two copies of it (a file is in one split only)."""
    copies = {}
    for split in ("val", "test"):
        copies[f"{split}_files"] = [path.with_name(f"{path.stem}_{split}{path.suffix}")]
        shutil.copyfile(path, copies[f"{split}_files"][0])
    return {"train_files": [path], **copies}


@pytest.mark.parametrize("layout", ["NTCHW", "NTHW", "TNHW"])
def test_layouts_give_same_samples(tmp_path, layout):
    data = video()
    stored = {"NTCHW": data, "NTHW": data[:, :, 0], "TNHW": data[:, :, 0].transpose(1, 0, 2, 3)}[layout]
    np.save(tmp_path / "a.npy", np.ascontiguousarray(stored))
    dm = module(files=[str(tmp_path / "a.npy")], layout=layout, split=[0.5, 0.5, 0.0], stride=None)
    with pytest.raises(ValueError, match="test split is empty"):
        dm.setup("fit")
    dm = module(files=str(tmp_path / "a.npy"), layout=layout, split=[4 / 6, 1 / 6, 1 / 6])
    dm.setup("fit")
    x, y = dm.datasets["val"][0]
    assert x.shape == (3, 1, 8, 8) and y.shape == (2, 1, 8, 8) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy(), (40 + np.arange(3)) / 255, rtol=1e-6)  # sequence 4
    np.testing.assert_allclose(y[:, 0, 0, 0].numpy(), (43 + np.arange(2)) / 255, rtol=1e-6)
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [4, 1, 1]


def test_files_are_memory_mapped_and_untouched(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, video())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    file = ArrayFile(path)
    assert isinstance(file.array, np.memmap) and not file.array.flags.writeable
    dm = module(**three_splits(path))
    dm.setup("fit")
    for _ in dm.train_dataloader():
        pass
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "a_test.npy", "a_val.npy"]


def test_npz_stored_is_mapped_compressed_is_read_with_warning(tmp_path):
    np.savez(tmp_path / "plain.npz", frames=video(), other=np.zeros(3))
    np.savez_compressed(tmp_path / "packed.npz", frames=video())
    plain = ArrayFile(tmp_path / "plain.npz", key="frames")
    assert isinstance(plain.array, np.memmap)
    np.testing.assert_array_equal(plain.array, video())
    with pytest.warns(UserWarning, match="cannot be memory-mapped"):
        packed = ArrayFile(tmp_path / "packed.npz")
    np.testing.assert_array_equal(packed.array, video())
    with pytest.raises(ValueError, match="key to name one of the arrays"):
        ArrayFile(tmp_path / "plain.npz")


def test_pickled_file_reopens_lazily(tmp_path):
    import pickle

    np.save(tmp_path / "a.npy", video())
    file = pickle.loads(pickle.dumps(ArrayFile(tmp_path / "a.npy")))
    assert file._array is None and file.array.shape == (6, 12, 1, 8, 8)


def test_sliding_windows_and_value_range(tmp_path):
    np.save(tmp_path / "f.npy", video(n=2, t=12, dtype=np.float32))
    files = three_splits(tmp_path / "f.npy")
    dm = module(**files, stride=3, value_range=[0.0, 20.0])
    dm.setup("fit")
    train = dm.datasets["train"]
    assert len(train) == 2 * 3  # starts 0, 3, 6 of 12 frames, 5 per window
    assert train.windows[:, 2].tolist() == [0, 3, 6, 0, 3, 6]
    x, y = train[4]  # sequence 1, start 3 -> values 13, 14, 15 | 16, 17 scaled by 1/20 and clipped
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy(), [0.65, 0.7, 0.75])
    np.testing.assert_allclose(y[:, 0, 0, 0].numpy(), [0.8, 0.85])
    for clip, top in ((True, 1.0), (False, 20 / 19)):
        dm = module(**files, stride=3, value_range=[0.0, 19.0], clip=clip)
        dm.setup("fit")
        _, y = dm.datasets["train"][5]  # targets 19, 20
        assert y.max().item() == pytest.approx(top)


def test_multichannel_batches(tmp_path):
    np.save(tmp_path / "c.npy", video(n=4, c=3))
    dm = module(files=[tmp_path / "c.npy"], split=[0.5, 0.25, 0.25], channels=3)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 3, 8, 8) and y.shape == (2, 2, 3, 8, 8)
    assert 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("array, kwargs, error, match", [
    (None, {}, FileNotFoundError, "missing.npy not found"),
    (np.zeros((4, 12, 8, 8), np.uint8), {}, ValueError, "layout NTCHW expects a 5-d array, found shape"),
    (np.zeros((4, 12, 1, 8, 8), np.int32), {}, ValueError, "int32 values need value_range=\\[low, high\\]"),
    (np.zeros((4, 12, 1, 8, 8), np.complex64), {}, ValueError, "expected numbers .*found dtype complex64"),
    (np.zeros((4, 4, 1, 8, 8), np.uint8), {}, ValueError, "at least frames_in \\+ frames_out = 5 frames"),
    (np.zeros((4, 12, 2, 8, 8), np.uint8), {}, ValueError, "expected channels=1"),
    (np.zeros((4, 12, 8, 8), np.uint8), {"layout": "HWNT"}, ValueError, "layout: expected one of"),
])
def test_bad_arrays(tmp_path, array, kwargs, error, match):
    path = tmp_path / ("missing.npy" if array is None else "a.npy")
    if array is not None:
        np.save(path, array)
    with pytest.raises(error, match=match):
        module(files=[path], **kwargs).setup("fit")


@pytest.mark.parametrize("kwargs, match", [
    ({}, "expected either files"),
    ({"files": ["a.npy"], "train_files": ["a.npy"]}, "expected either files"),
    ({"files": ["a.npy"], "split": [0.5, 0.2]}, "split: expected 3 fractions"),
    ({"files": ["a.npy"], "stride": 0}, "stride"),
    ({"files": ["a.npy"], "value_range": [1, 0]}, "value_range"),
    ({"files": ["a.npy"], "frames_out": 0}, "frames_out"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        module(**kwargs)


def test_files_must_agree(tmp_path):
    np.save(tmp_path / "a.npy", video())
    np.save(tmp_path / "b.npy", video(dtype=np.float32))
    with pytest.raises(ValueError, match="b.npy: expected frames \\(1, 8, 8\\) uint8"):
        module(files=[tmp_path / "a.npy", tmp_path / "b.npy"]).setup("fit")


def test_missing_split_files(tmp_path):
    np.save(tmp_path / "a.npy", video())
    with pytest.raises(ValueError, match="test_files: expected one or more array files"):
        module(train_files=[tmp_path / "a.npy"], val_files=[tmp_path / "a.npy"]).setup("fit")


def symlink(path: Path, target) -> Path:
    path.symlink_to(target, target_is_directory=Path(path.parent, target).is_dir())
    return path


# Other names of data/a.npy, made in tmp_path
OTHER_NAMES = {
    "symbolic link": lambda d: symlink(d / "data" / "z.npy", d / "data" / "a.npy"),
    "chain of links": lambda d: symlink(d / "z.npy", symlink(d / "data" / "y.npy", "a.npy")),
    "relative link": lambda d: symlink(d / "z.npy", Path("data", "a.npy")),
    "linked folder": lambda d: symlink(d / "linked", "data") / "a.npy",
    "hard link": lambda d: os.link(d / "data" / "a.npy", d / "z.npy") or d / "z.npy",
    "same path": lambda d: d / "data" / "a.npy",
}


@pytest.mark.parametrize("kind", OTHER_NAMES)
def test_a_file_named_twice_is_read_once_in_one_split(tmp_path, kind, caplog):
    (tmp_path / "data").mkdir()
    a, b, c = (tmp_path / "data" / f"{name}.npy" for name in "abc")
    for k, path in enumerate((a, b, c)):
        np.save(path, video() + 100 * k)  # sequences of a: values 0.., of b: 100.., of c: 200..
    other = OTHER_NAMES[kind](tmp_path)
    with caplog.at_level(logging.WARNING):
        dm = module(files=[a, b, other], split=[0.5, 0.5, 0.0], stride=None)
        with pytest.raises(ValueError, match=r"test split is empty: .*of 12 sequences"):  # not 18: a is read once
            dm.setup("fit")
    assert caplog.text.count("1 file name(s) left out") == 1 and f"e.g. data.files: {other} is {a}" in caplog.text
    dm = module(train_files=[a], val_files=[b], test_files=[c, other])
    dm.setup("fit")
    assert dm.datasets["test"][0][0].min() >= 200 / 255 and len(dm.datasets["test"]) == 6  # c alone, not a again
    with pytest.raises(ValueError, match=r"^data.test_files: every file it names is already in data.train_files "
                       rf"\(e.g. {re.escape(str(other))} is {re.escape(str(a))}, through a link or listed twice\)"):
        module(train_files=[a], val_files=[b], test_files=[other]).setup("fit")


def test_sequence_array_clip_time_major(tmp_path):
    np.save(tmp_path / "t.npy", np.ascontiguousarray(video()[:, :, 0].transpose(1, 0, 2, 3)))
    seqs = SequenceArray(ArrayFile(tmp_path / "t.npy"), "TNHW")
    assert (seqs.num_sequences, seqs.num_frames, seqs.frame_shape) == (6, 12, (1, 8, 8))
    assert seqs.clip(2, 1, 4)[:, 0, 0, 0].tolist() == [21, 22, 23]


MISSING = [(1, 4, 2, 3), (1, 1, 5, 5)]  # (sequence, frame, row, column): a target and an input pixel of window 1


@pytest.mark.parametrize("declare", ["nan", "value", "static mask", "full mask"])
def test_declared_missing_pixels_are_zero_inputs_and_nan_targets(tmp_path, declare):
    data = video(n=4, dtype=np.float32) / 100
    mask = np.ones((8, 8), np.uint8) if declare == "static mask" else np.ones(data.shape, bool)
    for n, t, i, j in MISSING:
        data[n, t, 0, i, j] = -9999 if declare == "value" else np.nan  # NaN under a mask is not an error
        if declare == "static mask":
            mask[i, j] = 0
        else:
            mask[n, t, 0, i, j] = False
    np.save(tmp_path / "a.npy", data)
    np.save(tmp_path / "mask.npy", mask)
    options = {"nan": {"missing_value": "nan"}, "value": {"missing_value": -9999},
               "static mask": {"mask_file": tmp_path / "mask.npy"}, "full mask": {"mask_file": tmp_path / "mask.npy"}}
    dm = module(**three_splits(tmp_path / "a.npy"), **options[declare])
    dm.setup("fit")
    x, y = dm.datasets["train"][1]
    frames = torch.from_numpy(data[1, :5])
    expected_x, expected_y = frames[:3].clone(), frames[3:].clone()
    pixels = [(t, i, j) for _, t, i, j in MISSING] if declare != "static mask" else \
        [(t, i, j) for t in range(5) for _, _, i, j in MISSING]
    for t, i, j in pixels:
        (expected_x[t, 0] if t < 3 else expected_y[t - 3, 0])[i, j] = 0.0 if t < 3 else float("nan")
    torch.testing.assert_close(x, expected_x, equal_nan=True)
    torch.testing.assert_close(y, expected_y, equal_nan=True)
    assert int(y.isnan().sum()) == sum(t >= 3 for t, _, _ in pixels) and x.isfinite().all()


def test_integer_data_with_value_range(tmp_path):
    np.save(tmp_path / "a.npy", video(dtype=np.int16) * 100)
    dm = module(files=[tmp_path / "a.npy"], value_range=[0, 10000], split=[0.5, 0.25, 0.25])
    dm.setup("fit")
    x, _ = dm.datasets["val"][0]  # sequence 3: values 100 * (30 + t)
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy(), (30 + np.arange(3)) / 100, rtol=1e-6)


def _longer(path, extra: int):
    """A .npy with `extra` bytes after the data its header announces."""
    np.save(path, video())
    path.write_bytes(path.read_bytes() + b"\0" * extra)


def _header(path, shape, data=b"\0" * 64):
    import io

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path.write_bytes(out.getvalue() + data)


def _npz_member(path, extra: bytes, compression=zipfile.ZIP_STORED, cut: int = 0):
    import io

    member = io.BytesIO()
    np.save(member, video())
    data = member.getvalue() + extra
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("frames.npy", data[:len(data) - cut])
        archive.writestr("other.npy", member.getvalue())


@pytest.mark.parametrize("write, match", [
    (lambda p: _longer(p, 128),
     r"a.npy: the header announces \(6, 12, 1, 8, 8\) uint8 \(4608 bytes of data\), found 4736 bytes: 128 bytes more"),
    (lambda p: _header(p, (2**40, 2**40)), r"a.npy: the header is damaged: its size overflows: shape \(1099511627776"),
    (lambda p: _header(p, (3, -1)), r"a.npy: the header is damaged: it announces shape \(3, -1\)"),
    (lambda p: p.symlink_to(p), r"a.npy: a symbolic link loop"),
    (lambda p: (p.parent / "b.npy").symlink_to(p) or p.symlink_to(p.parent / "b.npy"), r"a.npy: a symbolic link loop"),
    (lambda p: p.symlink_to(p.parent / "gone.npy"),
     r"a.npy not found: it is a symbolic link to .*gone.npy, which does"),
])
def test_npy_files_that_lie_are_refused(tmp_path, write, match):
    path = tmp_path / "a.npy"
    write(path)
    with pytest.raises((ValueError, OSError), match=match):
        ArrayFile(path)


@pytest.mark.parametrize("write, match", [
    (lambda p: np.savez(p), r"a.npz: the .npz holds no arrays; expected"),
    (lambda p: _zip_text(p), r"a.npz: the .npz holds no arrays \(only \['x.txt'\]\)"),
    (lambda p: _npz_member(p, b"\0" * 32), r"a.npz, array 'frames': .*found 4640 bytes: 32 bytes more"),
    (lambda p: _npz_member(p, b"\0" * 32, zipfile.ZIP_DEFLATED), r"a.npz, array 'frames': .*32 bytes more"),
    (lambda p: _npz_member(p, b"", cut=8), r"a.npz, array 'frames': truncated: .*found 4600 bytes"),
    (lambda p: _npz_member(p, b"", zipfile.ZIP_DEFLATED, cut=8), r"a.npz, array 'frames': truncated"),
])
@pytest.mark.filterwarnings("ignore:.*is compressed")
def test_npz_files_that_lie_are_refused(tmp_path, write, match):
    path = tmp_path / "a.npz"
    write(path)
    with pytest.raises(ValueError, match=match):
        ArrayFile(path, "frames")


def _zip_text(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.txt", "not an array")


@pytest.mark.parametrize("mask, data_value, options, match", [
    (np.zeros((8, 8), np.uint8), None, {},
     r"data.mask_file .*mask.npy: no valid pixel: every value of the \(8, 8\) mask"),
    (np.zeros((6, 12, 1, 8, 8), bool), None, {}, r"data.mask_file .*mask.npy: no valid pixel: every value of the mask"),
    (None, -9999.0, {"missing_value": -9999}, r"a.npy: no valid pixel: every pixel equals data.missing_value=-9999;"),
    (None, np.nan, {"missing_value": "nan"}, r"a.npy: no valid pixel: every pixel is NaN \(data.missing_value=nan\)"),
    (np.eye(8, dtype=np.uint8), -1.0, {"missing_value": -1},
     r"a.npy: no valid pixel: every pixel equals data.missing_value=-1 or is masked out by data.mask_file .*mask.npy"),
])
def test_missing_pixels_that_leave_nothing_valid_are_refused(tmp_path, mask, data_value, options, match):
    data = video(dtype=np.float32) / 100
    if data_value is not None:
        data[...] = data_value
        if mask is not None:  # valid (nonzero) mask pixels hold the missing value: nothing valid is left
            data[..., ~mask.astype(bool)] = 0.5
    np.save(tmp_path / "a.npy", data)
    if mask is not None:
        np.save(tmp_path / "mask.npy", mask)
        options = {**options, "mask_file": tmp_path / "mask.npy"}
    with pytest.raises(ValueError, match=match):
        module(files=[tmp_path / "a.npy"], **options).setup("fit")


def test_a_mostly_missing_file_is_accepted(tmp_path):
    """One valid pixel in the last frame of the last sequence is enough."""
    data = np.full((6, 12, 1, 8, 8), -9999, np.float32)
    data[-1, -1, 0, 7, 7] = 0.5
    np.save(tmp_path / "a.npy", data)
    module(**three_splits(tmp_path / "a.npy"), missing_value=-9999).setup("fit")
