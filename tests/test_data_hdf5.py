"""HDF5 sources in SEVIR's layout (N, H, W, T): windows, lazy reads, pickling, workers, errors; VIL decoding."""

import pickle
import shutil
import tracemalloc

import h5py
import numpy as np
import pytest
import torch

from convgru.data import ArrayDataModule, ArrayFile, SequenceArray
from convgru.data.arrays import HDF5File
from convgru.data.sevir import vil_to_kgm2


def sevir_file(path, n=3, size=32, t=12):
    """A small SEVIR-like file: `id` (N,) and `vil` (N, H, W, T) uint8 whose pixels encode 10 * event + frame."""
    values = (10 * np.arange(n)[:, None] + np.arange(t)).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f["id"] = np.array([f"S{i}" for i in range(n)], dtype="S8")
        f["vil"] = np.broadcast_to(values[:, None, None, :], (n, size, size, t))
    return path


def test_windows_in_sevir_layout(tmp_path):
    file = ArrayFile(sevir_file(tmp_path / "vil.h5"), key="vil")
    assert isinstance(file, HDF5File) and isinstance(file.array, h5py.Dataset)
    assert (file.shape, file.dtype) == ((3, 32, 32, 12), np.uint8)
    seqs = SequenceArray(file, "NHWT")
    assert (seqs.num_sequences, seqs.num_frames, seqs.frame_shape) == (3, 12, (1, 32, 32))
    clip = seqs.clip(2, 3, 7)
    assert clip.shape == (4, 1, 32, 32) and clip[:, 0, 5, 9].tolist() == [23, 24, 25, 26]
    dm = ArrayDataModule(files=[file.path], key="vil", layout="NHWT", split=[1 / 3, 1 / 3, 1 / 3], frames_in=3,
                         frames_out=2, stride=5, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.datasets["val"].windows.tolist() == [[0, 1, 0], [0, 1, 5]]
    x, y = dm.datasets["val"][1]  # event 1 from frame 5
    torch.testing.assert_close(x[:, 0, 0, 0] * 255, torch.tensor([15.0, 16, 17]))
    torch.testing.assert_close(y[:, 0, 0, 0] * 255, torch.tensor([18.0, 19]))


def test_npy_in_nhwt_layout(tmp_path):
    with h5py.File(sevir_file(tmp_path / "vil.hdf5"), "r") as f:
        np.save(tmp_path / "vil.npy", f["vil"][:])
    from_npy = SequenceArray(ArrayFile(tmp_path / "vil.npy"), "NHWT").clip(1, 2, 5)
    from_hdf5 = SequenceArray(ArrayFile(tmp_path / "vil.hdf5", "vil"), "NHWT").clip(1, 2, 5)
    assert from_npy.shape == (3, 1, 32, 32)
    np.testing.assert_array_equal(from_npy, from_hdf5)


def test_windows_are_read_lazily(tmp_path):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:  # 115 MB of chunks never written: they take no disk space
        f.create_dataset("vil", shape=(16, 384, 384, 49), dtype=np.uint8, chunks=(1, 96, 96, 49), fillvalue=7)
    assert path.stat().st_size < 1_000_000
    seqs = SequenceArray(ArrayFile(path, "vil"), "NHWT")
    tracemalloc.start()
    try:
        clip = seqs.clip(9, 10, 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.shape == (10, 1, 384, 384) and (clip == 7).all()
    assert peak < 8 * clip.nbytes  # one window (1.5 MB), never the 115 MB dataset


def test_pickled_file_reopens_in_each_worker(tmp_path):
    file = ArrayFile(sevir_file(tmp_path / "vil.h5"), key="vil")
    assert file.array[1, 0, 0, 4] == 14  # opened here; pickling must drop the handle
    copy = pickle.loads(pickle.dumps(file))
    assert isinstance(copy, HDF5File) and copy._array is None and copy.array[2, 0, 0, 0] == 20
    for split in ("val", "test"):  # a file is in one split only
        shutil.copyfile(file.path, tmp_path / f"{split}.h5")
    dm = ArrayDataModule(train_files=[file.path], val_files=[tmp_path / "val.h5"], test_files=[tmp_path / "test.h5"],
                         key="vil",
                         layout="NHWT", frames_in=2, frames_out=2, stride=4, batch_size=3, num_workers=2,
                         persistent_workers=False)
    dm.setup("fit")
    dm.datasets["val"][0]  # opens the file in this process: forked workers must open their own
    batches = list(dm.val_dataloader())
    frames = torch.cat([torch.cat(batch, dim=1) for batch in batches])[:, :, 0, 0, 0] * 255
    expected = 10 * torch.arange(3).repeat_interleave(3)[:, None] + torch.tensor([0, 4, 8]).repeat(3)[:, None]
    torch.testing.assert_close(frames, (expected + torch.arange(4)).float())


def test_missing_dataset_names_file_key_and_datasets(tmp_path):
    path = sevir_file(tmp_path / "SEVIR_VIL_TEST.h5")
    with pytest.raises(ValueError, match=r"SEVIR_VIL_TEST.h5: expected key to name one of the datasets "
                                         r"\['id', 'vil'\], found key='ir069'"):
        ArrayFile(path, key="ir069")
    with pytest.raises(ValueError, match=r"datasets \['id', 'vil'\], found key=None"):
        ArrayFile(path)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5: expected an HDF5 file"):
        ArrayFile(tmp_path / "bad.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5 not found"):
        ArrayFile(tmp_path / "missing.h5")


def test_vil_decoding_follows_sevir():
    x = np.array([0, 5, 6, 18, 19, 100, 254, 255], dtype=np.uint8)
    vil = vil_to_kgm2(x)
    expected = [0, 0, 4 / 90.66, 16 / 90.66, np.exp(-64.9 / 38.9), np.exp(16.1 / 38.9), np.exp(170.1 / 38.9)]
    np.testing.assert_allclose(vil[:7], expected, rtol=1e-5)
    assert vil.dtype == np.float32 and np.isnan(vil[7])
    assert (np.diff(vil_to_kgm2(np.arange(255))) >= 0).all()  # non-decreasing: pixel thresholds are VIL thresholds
    assert vil_to_kgm2(181) == pytest.approx(np.exp((181 - 83.9) / 38.9))
