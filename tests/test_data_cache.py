"""Cache writers and generated sets: temporary files of dead writers never pile up, a full disk is one
clear error leaving no partial file, and a set too big for the memory is refused before it is generated."""

import errno
import os
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest

from convgru import atomic
from convgru.atomic import STALE_AGE, _host, remove_stale_tmp
from convgru.data import MovingMNISTDataModule, RadarDataModule, write_radar_dataset
from convgru.data import cache as cache_module
from convgru.data.cache import ensure_fixed_set, npy_size, write_npy

CHUNKS = [(0, np.ones((2, 3), np.uint8)), (2, np.full((1, 3), 2, np.uint8))]


def dead_pid() -> int:
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_write_npy_writes_the_array_and_leaves_nothing_else(tmp_path):
    path = write_npy(tmp_path / "c.npy", (3, 3), np.uint8, CHUNKS)
    np.testing.assert_array_equal(np.load(path), [[1, 1, 1], [1, 1, 1], [2, 2, 2]])
    assert path.stat().st_size == npy_size((3, 3), np.uint8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


def test_temporary_files_of_dead_writers_are_removed_by_the_next_run(tmp_path):
    """A writer killed mid-write leaves its .tmp file; the next write removes it (and old ones of other
    machines or of convgru 0.1) and keeps those of live writers and the user's own files."""
    host, old = _host(), time.time() - STALE_AGE - 60
    dead = tmp_path / f"moving_mnist_val_x.npy.convgru{dead_pid()}@{host}.abcd1234.tmp"
    alive = tmp_path / f"moving_mnist_val_x.npy.convgru{os.getppid()}@{host}.efgh5678.tmp"
    foreign = tmp_path / "synthetic_radar_x.npy.convgru1@elsewhere.ijkl9012.tmp"
    foreign_old = tmp_path / "synthetic_radar_y.npy.convgru1@elsewhere.mnop3456.tmp"
    legacy_old = tmp_path / "moving_mnist_test_n10_abc.qrst7890.tmp"
    mine = tmp_path / "notes.tmp"
    for path in (dead, alive, foreign, foreign_old, legacy_old, mine):
        path.write_bytes(b"partial")
    for path in (foreign_old, legacy_old, mine):
        os.utime(path, (old, old))
    write_npy(tmp_path / "c.npy", (3, 3), np.uint8, CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.npy", *(p.name for p in (alive, foreign, mine))])
    assert remove_stale_tmp(tmp_path) == []


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_a_file_the_next_run_removes(tmp_path):
    """SIGKILL while a cache is written: its .tmp is left; the next run writes the cache and removes it."""
    script = ("import numpy as np, os, signal; from pathlib import Path; from convgru.data.cache import write_npy\n"
              "def chunks():\n    yield 0, np.ones((1, 4), np.uint8)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
              f"write_npy(Path({str(tmp_path)!r}) / 'c.npy', (2, 4), np.uint8, chunks())\n")
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    assert [p.name.endswith(".tmp.npy") and ".convgru" in p.name for p in tmp_path.iterdir()] == [True]
    write_npy(tmp_path / "c.npy", (3, 3), np.uint8, CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


def test_not_enough_disk_space_is_one_error_before_writing(tmp_path):
    with mock.patch.object(atomic, "free_disk", return_value=100), pytest.raises(OSError) as error:
        write_npy(tmp_path / "cache" / "c.npy", (1000, 10), np.uint8, CHUNKS, "Moving MNIST cache")
    assert str(error.value) == (
        f"cannot write the Moving MNIST cache c.npy in {tmp_path}/cache: not enough disk space (it needs 10128 "
        "bytes (10.1 kB), 100 bytes free); free space there or set paths.cache_dir (or data.cache_dir) to a folder "
        "on a disk with room")
    assert error.value.errno == errno.ENOSPC
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("where", ["reserve", "fill"])
def test_a_disk_that_fills_while_writing_leaves_no_partial_file(tmp_path, where):
    """ENOSPC when the blocks are reserved or while the chunks are written (another process filled the
    disk): one error naming the folder and the bytes needed; no partial or temporary file."""
    def chunks():
        yield CHUNKS[0]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    (tmp_path / "c.npy").write_bytes(b"an older cache")
    with mock.patch.object(cache_module.os, "posix_fallocate", side_effect=full if where == "reserve" else None), \
            pytest.raises(OSError, match=rf"cannot write the cache c.npy in {tmp_path}: not enough disk space \(it "
                                         r"needs 137 bytes, \d+ bytes .* free\)"):
        write_npy(tmp_path / "c.npy", (3, 3), np.uint8, chunks() if where == "fill" else CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]
    assert (tmp_path / "c.npy").read_bytes() == b"an older cache"


def test_too_many_frames_stop_before_anything_is_generated(tmp_path):
    """data.frames_in=100000 used to fill the memory; now it is refused at once, naming the options."""
    start = time.perf_counter()
    with mock.patch("convgru.data.resources.available_memory", return_value=8 * 10**9), \
            pytest.raises(ValueError, match=r"data.frames_in=100000, data.frames_out=10, data.image_size=64: "
                                            r"generating the Moving MNIST validation set .* needs about 288.0 GB of "
                                            r"memory, 8.0 GB available; lower data.frames_in"):
        MovingMNISTDataModule(frames_in=100000, cache_dir=tmp_path / "cache")
    assert time.perf_counter() - start < 5 and not (tmp_path / "cache").exists()


def test_memory_of_a_training_batch_is_checked(tmp_path):
    with mock.patch("convgru.data.resources.available_memory", return_value=10**9), \
            pytest.raises(ValueError, match=r"generating a training batch \(data.batch_size=512 sequences .* lower "
                                            r".* or data.batch_size"):
        MovingMNISTDataModule(frames_in=100, val_size=10, test_size=10, batch_size=512, cache_dir=tmp_path)


def test_synthetic_radar_memory_is_checked_before_generating(tmp_path):
    with mock.patch("convgru.data.resources.available_memory", return_value=10**9):
        with pytest.raises(ValueError, match=r"data.frames_in \+ data.frames_out = 10012 frames: generating "
                                              r"synthetic radar \(10 sequences of 10012 frames of 64x64 at a time\)"):
            RadarDataModule(synthetic={"num_sequences": 10, "image_size": 64}, frames_in=10000, cache_dir=tmp_path,
                            value_range=[0, 70])
        with pytest.raises(ValueError, match=r"data.synthetic.num_frames = 5000 frames: .* lower "
                                              r"data.synthetic.num_frames or data.synthetic.image_size"):
            RadarDataModule(synthetic={"num_sequences": 300, "num_frames": 5000}, cache_dir=tmp_path,
                            value_range=[0, 70])
        with pytest.raises(ValueError, match=r"generating synthetic radar \(256 sequences of 2000 frames"):
            write_radar_dataset(tmp_path / "r.npy", 1000, num_frames=2000)
        digits = np.zeros((4, 28, 28), np.uint8)
        with pytest.raises(ValueError, match=r"generating the Moving MNIST set m.npy \(500 sequences of 1000 frames"):
            ensure_fixed_set(tmp_path / "m.npy", 1, digits, 1000, 1000, 2, 64, 0)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_go_even_when_the_cache_is_there(tmp_path):
    from convgru.data.synthetic_radar import ensure_radar_dataset, radar_cache_path

    path = radar_cache_path(tmp_path, 2, num_frames=3, image_size=8)
    ensure_radar_dataset(tmp_path, 2, num_frames=3, image_size=8)
    stale = tmp_path / f"{path.name}.convgru{dead_pid()}@{_host()}.abcd1234.tmp"
    stale.write_bytes(b"partial")
    assert ensure_radar_dataset(tmp_path, 2, num_frames=3, image_size=8) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
