"""Error-sweep cases of data files that lie (sizes, links, empty archives) or are named to forge a
line, a split whose files are another's, missing pixels that leave nothing valid, and sets too big
for the memory or the disk; collected by test_errors.py."""

import io
import os
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np

from convgru.training import cli
from convgru.training.options import instantiate
from sweep import (
    Case,
    assert_kept,
    compose_config,
    data_run,
    digest,
    npy,
    raised,
    raw,
    video,
)

MEMORY = 16 * 10**9  # the memory the cases below find available (the real one differs from machine to machine)
DISK = 10 * 10**9  # the free disk space they find


def longer(path: Path) -> None:
    """A .npy followed by its data once more (e.g. two files concatenated)."""
    np.save(path, video())
    data = path.read_bytes()
    path.write_bytes(data + data[128:])


def header(shape, dtype="<f4", data: bytes = b"\0" * 64):
    """A .npy whose header announces `shape` followed by `data`."""
    def write(path: Path):
        out = io.BytesIO()
        np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
        path.write_bytes(out.getvalue() + data)
    return write


def self_link(path: Path) -> None:
    os.symlink(path.name, path)


def hard_link_to(name: str):
    return lambda path: os.link(path.with_name(name), path)


def npz_member_longer(path: Path) -> None:
    """An .npz whose array 'frames' holds more bytes than its header announces."""
    member = io.BytesIO()
    np.save(member, video())
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("frames.npy", member.getvalue() + b"\0" * 256)


def with_resources(run, memory: int = MEMORY, disk: int = DISK):
    """`run` with the available memory and free disk space fixed, so that its message is the same anywhere."""
    def fixed(folder: Path) -> str:
        with mock.patch("convgru.data.resources.available_memory", return_value=memory), \
                mock.patch("convgru.atomic.free_disk", return_value=disk):
            return run(folder)
    return fixed


def prepare_run(overrides):
    """Compose convgru/conf/train.yaml with `overrides` and a cache folder inside the folder, build the data
    module and prepare its data (write its caches)."""
    def run(folder: Path) -> str:
        (folder / "notes.txt").write_text("the user's notes")
        before = digest(folder)

        def build():
            options = cli.quote_non_ascii(overrides)
            cfg = compose_config("train", folder.parent / "out", options, folder / "cache")
            instantiate(cfg.data, "data").prepare_data()
        message = raised(build)
        assert_kept(folder, before)
        assert not [p for p in folder.rglob("*") if p.is_file() and p.name != "notes.txt"], "a partial file was left"
        return message
    return run


CASES = [
    Case("npy-longer", "a .npy holding more data than its header announces (two files joined)",
         "data.files=[/data/a.npy]",
         data_run({"a.npy": longer}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy: the header announces \(10, 12, 8, 8\) float32 \(30720 bytes of data\), found 61440 bytes: 30720 "
         r"bytes more than the header accounts for"),
    Case("npy-size-overflow", "a .npy header whose size overflows (a damaged header)", "data.files=[/data/a.npy]",
         data_run({"a.npy": header((2**62, 2**62))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy: the header is damaged: its size overflows: shape \(4611686018427387904, 4611686018427387904\) "
         r"float32"),
    Case("npy-negative-shape", "a .npy header with a negative size", "data.files=[/data/a.npy]",
         data_run({"a.npy": header((-4, 8))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy: the header is damaged: it announces shape \(-4, 8\)"),
    Case("symlink-loop", "a data file that is a symbolic link to itself", "data.files=[/data/a.npy]",
         data_run({"a.npy": self_link}, ["data.files=[{dir}/a.npy]"]), r"a.npy: a symbolic link loop"),
    Case("split-same-file", "a test file that is a hard link to a training file",
         "data.train_files=[/data/a.npy] data.test_files=[/data/c.npy]",
         data_run({"a.npy": npy(video()), "b.npy": npy(video()), "c.npy": hard_link_to("a.npy")},
                  ["data.train_files=[{dir}/a.npy]", "data.val_files=[{dir}/b.npy]", "data.test_files=[{dir}/c.npy]"]),
         r"data.test_files: every file it names is already in data.train_files \(e.g. .*c.npy is .*a.npy, through a "
         r"link or listed twice\)"),
    Case("forged-name", "a data file named to print a line of its own (x, newline, error: injected line, newline, "
         ".npy)", "data.files=['/data/x\\nerror: injected line\\n.npy']",
         data_run({"x\nerror: injected line\n.npy": raw(b"")}, ["data.files=['{dir}/x\nerror: injected line\n.npy']"]),
         r"^'.*x\\nerror: injected line\\n.npy': the file is empty \(0 bytes\)"),
    Case("npz-no-arrays", "an .npz holding no arrays (np.savez(path))", "data.files=[/data/a.npz]",
         data_run({"a.npz": lambda p: np.savez(p)}, ["data.files=[{dir}/a.npz]"]), r"a.npz: the .npz holds no arrays"),
    Case("npz-member-longer", "an .npz array holding more data than its header announces", "data.files=[/data/a.npz]",
         data_run({"a.npz": npz_member_longer}, ["data.files=[{dir}/a.npz]"]),
         r"a.npz, array 'frames': the header announces \(10, 12, 8, 8\) float32 \(30720 bytes of data\), found "
         r"30976 bytes: 256 bytes more"),
    Case("mask-no-valid-pixel", "a mask_file of zeros: no valid pixel", "data.mask_file=/data/mask.npy",
         data_run({"a.npy": npy(video()), "mask.npy": npy(np.zeros((8, 8), bool))},
                  ["data.files=[{dir}/a.npy]", "data.mask_file={dir}/mask.npy"]),
         r"data.mask_file .*mask.npy: no valid pixel: every value of the \(8, 8\) mask is 0"),
    Case("missing-value-everywhere", "a missing_value that every pixel equals", "data.missing_value=-9999",
         data_run({"a.npy": npy(np.full(video().shape, -9999, np.float32))},
                  ["data.files=[{dir}/a.npy]", "data.missing_value=-9999"]),
         r"a.npy: no valid pixel: every pixel equals data.missing_value=-9999"),
    Case("frames-in-too-many", "Moving MNIST with 100,000 input frames (more than the memory holds)",
         "data.frames_in=100000",
         with_resources(prepare_run(["data.frames_in=100000"])),
         r"data.frames_in=100000, data.frames_out=10, data.image_size=64: generating the Moving MNIST validation set "
         r"\(data.val_size=1000 sequences of 100010 frames of 64x64, 500 at a time\) needs about .* of memory, 16.0 GB "
         r"available"),
    Case("synthetic-radar-too-long", "synthetic radar with 100,000 input frames (more than the memory holds)",
         "data=radar_small data.frames_in=100000",
         with_resources(prepare_run(["data=radar_small", "data.frames_in=100000"])),
         r"data.frames_in \+ data.frames_out = 100012 frames: generating synthetic radar \(256 sequences of 100012 "
         r"frames of 48x48 at a time\) needs about .* of memory, 16.0 GB available"),
    Case("cache-disk-full", "a Moving MNIST cache bigger than the free disk space", "data.val_size=100000000",
         with_resources(prepare_run(["data.val_size=100000000"])),
         r"cannot write the Moving MNIST cache moving_mnist_val_n100000000_.*\.npy in .*cache: not enough disk space "
         r"\(it needs 8192000000128 bytes \(8.2 TB\), 10000000000 bytes \(10.0 GB\) free\)"),
    Case("synthetic-radar-disk-full", "synthetic radar bigger than the free disk space",
         "data=radar_small data.synthetic.num_sequences=100000000",
         with_resources(prepare_run(["data=radar_small", "data.synthetic.num_sequences=100000000"])),
         r"cannot write the synthetic radar synthetic_radar_n100000000_.*\.npy in .*cache: not enough disk space "
         r"\(it needs 23040000000128 bytes \(23.0 TB\), 10000000000 bytes \(10.0 GB\) free\)"),
]
