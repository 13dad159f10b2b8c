"""data=video: clips made here with PyAV (a square of known speed, gray and RGB, H.264, MPEG-4 and
FFV1, odd and variable frame rates, rotation metadata, an audio stream, damaged files) decode to the
frames encoded within the codec's loss; windows and splits as configured; the cache is read on the
second run without the decoder; bad files are one error naming them, or skipped with a warning;
experiment=kth trains, eval writes predictions.mp4 and predict writes a video of the right length,
size and frame rate."""

import importlib
import logging
import os
import re
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest
import torch

from clips import luma, rotate_90, square_frames, truncated, unknown_codec, write_clip
from conftest import ROOT, compose_config
from convgru.data import VideoDataModule
from convgru.data.resources import check_memory
from convgru.data.video import BadVideo, _working_bytes, decode_clip, find_videos, write_video
from convgru.data.video_cache import ensure_clips
from convgru.training import evaluate
from convgru.training.pipeline import _build
from test_predict import predict_script


def gray(frames: np.ndarray) -> np.ndarray:
    """(T, 1, H, W) BT.601 luma of RGB frames (T, H, W, 3), as float."""
    return luma(frames)[:, None]


def chw(frames: np.ndarray) -> np.ndarray:
    return frames.transpose(0, 3, 1, 2).astype(np.float64)


@pytest.mark.parametrize("suffix, rgb, worst, mean", [
    (".mkv", True, 0, 0),        # FFV1: lossless
    (".mkv", False, 0.5, 0.5),   # lossless, then luma rounded to uint8
    (".mp4", False, 3, 0.1),     # H.264
    (".avi", False, 12, 1.0),    # MPEG-4 part 2
    (".mp4", True, 255, 3.0),    # H.264 4:2:0: colour edges blur, the mean stays small
])
def test_decoded_frames_equal_the_encoded_ones(tmp_path, suffix, rgb, worst, mean):
    frames = square_frames(rgb=rgb)
    write_clip(tmp_path / f"a{suffix}", frames)
    decoded, rate = decode_clip(tmp_path / f"a{suffix}", 3 if rgb else 1, image_size=None, crop="none")
    expected = chw(frames) if rgb else gray(frames)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape and rate == 25
    error = np.abs(decoded - expected)
    assert error.max() <= worst and error.mean() <= mean


def test_square_moves_at_its_speed_after_resizing(tmp_path):
    write_clip(tmp_path / "a.mkv", square_frames(t=8, h=24, w=32, speed=2))
    decoded, _ = decode_clip(tmp_path / "a.mkv", 1, image_size=[12, 16], crop="none")
    assert decoded.shape == (8, 1, 12, 16)
    x = np.arange(16)
    centres = [(f[0].sum(0) * x).sum() / f[0].sum() for f in decoded.astype(np.float64)]
    np.testing.assert_allclose(np.diff(centres), 1.0, atol=0.05)  # 2 pixels a frame at half size


def test_centre_crop_keeps_the_middle(tmp_path):
    frames = square_frames(t=4, h=24, w=48)
    frames[:, :, :12] = 200  # the left and right quarters, cropped away
    frames[:, :, 36:] = 200
    write_clip(tmp_path / "wide.mkv", frames)
    decoded, _ = decode_clip(tmp_path / "wide.mkv", 1, image_size=24, crop="center")
    np.testing.assert_allclose(decoded, gray(frames[:, :, 12:36]), atol=0.5)
    squeezed, _ = decode_clip(tmp_path / "wide.mkv", 1, image_size=24, crop="none")
    assert squeezed.shape == (4, 1, 24, 24) and squeezed[:, 0, :, 0].min() > 150


def test_variable_frame_rate_is_resampled_to_a_constant_rate(tmp_path):
    frames = square_frames(t=8)
    times = [0, 40, 120, 160, 240, 280, 360, 400]  # gaps of 40 and 80 ms at a nominal 25 frames/s
    write_clip(tmp_path / "vfr.mkv", frames, rate=25, times_ms=times)
    decoded, rate = decode_clip(tmp_path / "vfr.mkv", 1, image_size=None, crop="none")
    assert rate == 25 and len(decoded) == 11  # 0 .. 440 ms
    shown = [np.searchsorted(times, 40 * k, side="right") - 1 for k in range(11)]  # on screen at 40k ms
    np.testing.assert_allclose(decoded, gray(frames[shown]), atol=0.5)


def test_rotation_metadata_is_applied(tmp_path):
    frames = square_frames(t=4, h=24, w=32)
    write_clip(tmp_path / "a.mp4", frames)
    rotate_90(tmp_path / "a.mp4", tmp_path / "portrait.mp4")
    decoded, _ = decode_clip(tmp_path / "portrait.mp4", 1, image_size=None, crop="none")
    assert decoded.shape == (4, 1, 32, 24)
    assert np.abs(decoded - np.rot90(gray(frames), -1, axes=(2, 3))).max() <= 3  # turned clockwise


def test_audio_is_ignored_and_odd_rates_kept(tmp_path):
    frames = square_frames(t=9)
    write_clip(tmp_path / "sound.mkv", frames, rate=Fraction(30000, 1001), audio=True)
    decoded, rate = decode_clip(tmp_path / "sound.mkv", 1, image_size=None, crop="none", frame_step=2)
    assert rate == Fraction(15000, 1001) and len(decoded) == 5
    np.testing.assert_allclose(decoded, gray(frames[::2]), atol=0.5)


RATES = {"23.976": Fraction(24000, 1001), "24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001),
         "30": Fraction(30), "59.94": Fraction(60000, 1001), "60": Fraction(60)}
LEVELS = 20 + 20 * np.arange(10)  # frame k a uniform gray 20 + 20k; at the NTSC rates, the last frame's time rounds
# down to Matroska's milliseconds (9 * 1001 / 30 = 300.3 ms is stored as 300)


# every container and rate once in the quick loop (Matroska and WebM at the NTSC rates); the whole grid with -m slow
QUICK = {(".mkv", "29.97"), (".webm", "23.976"), (".mkv", "59.94"), (".mp4", "24"), (".mov", "30"), (".avi", "25"),
         (".webm", "60")}


@pytest.mark.parametrize("suffix, rate", [
    pytest.param(suffix, rate, marks=[] if (suffix, rate) in QUICK else [pytest.mark.slow])
    for suffix in (".mp4", ".mov", ".avi", ".mkv", ".webm") for rate in RATES])
def test_every_frame_written_is_decoded_at_the_rate_written(tmp_path, suffix, rate):
    """write_video's containers at the common frame rates: every frame comes back, in order, at its rate."""
    write_video(tmp_path / f"a{suffix}", np.broadcast_to(LEVELS[:, None, None], (10, 16, 16)).astype(np.uint8),
                RATES[rate])
    decoded, decoded_rate = decode_clip(tmp_path / f"a{suffix}", 1, image_size=None, crop="none")
    assert decoded_rate == RATES[rate] and decoded.shape == (10, 1, 16, 16)
    np.testing.assert_allclose(decoded.mean(axis=(1, 2, 3)), LEVELS, atol=3)


def test_a_gap_is_filled_up_to_max_gap_frames_and_refused_beyond(tmp_path):
    frames = square_frames(t=4)
    write_clip(tmp_path / "gap.mkv", frames, rate=25, times_ms=[0, 40, 80, 400])  # frame 2 shown for 320 ms
    decoded, _ = decode_clip(tmp_path / "gap.mkv", 1, image_size=None, crop="none", max_gap_frames=7)
    np.testing.assert_allclose(decoded, gray(frames[[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3]]), atol=0.5)
    with pytest.raises(BadVideo, match=r"gap.mkv: frames 2 and 3 are 0.32 s apart \(from 0.08 s\): at 25 frames/s "
                       r"the gap would repeat frame 2 7 times, more than data.max_gap_frames=6; expected a clip"):
        decode_clip(tmp_path / "gap.mkv", max_gap_frames=6)
    clips = ensure_clips([tmp_path / "gap.mkv"], tmp_path / "cache", image_size=8, max_gap_frames=6)
    assert "data.max_gap_frames=6" in clips[0].error  # a bad file: skipped with data.skip_bad_files
    clips = ensure_clips([tmp_path / "gap.mkv"], tmp_path / "cache", image_size=8, max_gap_frames=7)
    assert clips[0].error is None and clips[0].frames == 11  # the option is in the cache key
    write_clip(tmp_path / "hour.mkv", square_frames(t=2), rate=25, times_ms=[0, 3_600_000])
    with pytest.raises(BadVideo, match=r"hour.mkv: frames 0 and 1 are 3600.00 s apart .* would repeat frame 0 89999 "
                       r"times, more than data.max_gap_frames=300"):
        decode_clip(tmp_path / "hour.mkv")  # not 90,000 copies in memory first


def test_memory_is_checked_from_the_declared_size_before_decoding(tmp_path):
    write_clip(tmp_path / "a.mkv", square_frames(t=12))
    with mock.patch("convgru.data.resources.available_memory", return_value=10**8), \
            mock.patch("convgru.data.video._transform", side_effect=AssertionError("decoded")):
        with pytest.raises(ValueError, match=r"a.mkv: decoding its 12 frames of 24x32 pixels \(as its header "
                           r"announces\) into 12 frames of 4000x4000 with 1 channel\(s\) \(data.image_size, "
                           r"data.channels, data.frame_step\) needs about 512.0 MB of memory, 100.0 MB available; "
                           r"lower data.image_size"):
            decode_clip(tmp_path / "a.mkv", image_size=4000)
        with pytest.raises(ValueError, match=r"into 12 frames of 1000x1000 with 1 channel\(s\) \(.*\), as 4 clips "
                           r"decoded at once \(data.decode_workers\), needs about 352.5 MB .*decode_workers"):
            decode_clip(tmp_path / "a.mkv", image_size=1000, at_once=4)  # one such clip fits: 88.1 MB


def test_memory_is_checked_again_as_frames_pass_what_the_header_announces(tmp_path):
    write_clip(tmp_path / "raw.h264", square_frames(t=150))  # a raw stream: no frame count, no duration
    with mock.patch("convgru.data.video.check_memory", wraps=check_memory) as checked:
        decoded, _ = decode_clip(tmp_path / "raw.h264", image_size=8)
    assert len(decoded) == 150
    checks = [call.args[1] for call in checked.call_args_list]
    assert [re.search(r"decoding (.*) of 24x32 pixels \((.*)\) into (\d+) frames", c).groups() for c in checks] == [
        ("its frames", "its header does not say how many", "64"),
        ("65 frames and more", "its header does not say how many", "130"),
        ("131 frames and more", "its header does not say how many", "262")]


def test_large_frames_are_resized_a_few_at_a_time(tmp_path):
    """Frames are resized as they are decoded: however long the clip, a chunk at their own size at most."""
    write_clip(tmp_path / "a.mkv", square_frames(t=24, h=64, w=96))
    frame = 64 * 96 * 3
    importlib.import_module("torchvision.transforms.v2.functional")  # imported by the decoder: not counted
    with mock.patch("convgru.data.video.CHUNK_BYTES", 2 * _working_bytes((64, 96), (8, 8), 1)):
        tracemalloc.start()
        try:
            decoded, _ = decode_clip(tmp_path / "a.mkv", image_size=8)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert decoded.shape == (24, 1, 8, 8) and peak < 8 * frame  # the clip at its own size: 24 frames


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    write_clip(folder / "good.avi", square_frames())
    write_clip(folder / "good.mp4", square_frames())
    write_clip(folder / "good.mkv", square_frames())
    (folder / "notes.mp4").write_text("not a video\n" * 50)
    truncated(folder / "good.mp4", folder / "cut.mp4")
    truncated(folder / "good.mkv", folder / "cut.mkv")
    unknown_codec(folder / "good.avi", folder / "codec.avi")
    return {p.stem: p for p in folder.iterdir()}


@pytest.mark.parametrize("name, message", [
    ("notes", "not a video FFmpeg can read"),
    ("cut", "holds no video stream"),  # .mp4 cut before its index
    ("codec", r"its video codec \(unknown to FFmpeg\) is not one FFmpeg can decode"),
])
def test_bad_files_raise_one_error_naming_them(bad_files, name, message):
    path = next(p for p in bad_files.values() if p.stem == name and p.suffix != ".mkv")
    with pytest.raises(BadVideo, match=f"^{path}: {message}"):
        decode_clip(path)


def test_truncated_stream_is_refused_not_padded(bad_files):
    with pytest.raises(BadVideo, match=r"cut.mkv: truncated: its header announces 0.48 s, frames cover 0.2\d s"):
        decode_clip(bad_files["cut"].with_suffix(".mkv"))


def kth_clips(folder: Path, persons=range(1, 7), frames: int = 12) -> Path:
    """KTH-named clips person01..06 (person06 too short for a window of 5 frames)."""
    folder.mkdir(exist_ok=True)
    for p in persons:
        write_clip(folder / f"person{p:02d}_walking_d1_uncomp.avi", square_frames(t=4 if p == 6 else frames, speed=p))
    return folder


@pytest.fixture(scope="module")
def kth(tmp_path_factory) -> Path:
    return kth_clips(tmp_path_factory.mktemp("kth") / "kth")


def module(cache, **options) -> VideoDataModule:
    base = dict(frames_in=3, frames_out=2, image_size=8, num_workers=0, batch_size=2, cache_dir=cache,
                split=[0.6, 0.2, 0.2])
    dm = VideoDataModule(**{**base, **options})
    dm.setup()
    return dm


def test_windows_and_splits_by_name_pattern(kth, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        dm = module(tmp_path, files=[str(kth)], stride=2, train_pattern="person0[1-3]_", val_pattern="person04_",
                    test_pattern="person0[56]_")
    # 12 frames, windows of 5 every 2 frames: starts 0, 2, 4, 6 per clip; person06 (4 frames) skipped
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 12, "val": 4, "test": 4}
    assert "Skipped 1 of 6 clips shorter than frames_in + frames_out = 5 frames" in caplog.text
    x, y = dm.datasets["test"][0]
    assert x.shape == (3, 1, 8, 8) and y.shape == (2, 1, 8, 8) and x.dtype == torch.float32 and x.max() <= 1
    assert dm.frame_rate == 25


def test_splits_by_fraction_and_by_files(kth, tmp_path):
    dm = module(tmp_path, files=str(kth / "*.avi"), split=[0.6, 0.2, 0.2])
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 3, "val": 1, "test": 1}  # 5 usable clips
    dm = module(tmp_path, files=None, train_files=[str(kth / "person01_walking_d1_uncomp.avi"), str(kth / "person02*")],
                val_files=str(kth / "person03*"), test_files=[str(kth / "person04_walking_d1_uncomp.avi")])
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 2, "val": 1, "test": 1}
    first = decode_clip(kth / "person04_walking_d1_uncomp.avi", image_size=8)[0][:5] / 255
    x, y = dm.datasets["test"][0]
    np.testing.assert_allclose(torch.cat([x, y]).numpy(), first, atol=1e-6)


def test_cache_is_read_on_the_second_run_without_the_decoder(kth, tmp_path):
    first = module(tmp_path, files=[str(kth)], decode_workers=2)
    with mock.patch("convgru.data.video_cache.decode_clip", side_effect=AssertionError("decoder called")):
        again = module(tmp_path, files=[str(kth)], frames_in=2, stride=1)  # windows are not in the key
    np.testing.assert_array_equal(again.datasets["train"].arrays[0].file.array,
                                  first.datasets["train"].arrays[0].file.array)
    with mock.patch("convgru.data.video_cache.decode_clip", wraps=decode_clip) as decoder:
        module(tmp_path, files=[str(kth)], image_size=[8, 12])  # the pixels change: decoded again
    assert decoder.call_count == 6
    serial = module(tmp_path / "one", files=[str(kth)], decode_workers=1)
    np.testing.assert_array_equal(serial.datasets["test"].arrays[0].file.array,
                                  first.datasets["test"].arrays[0].file.array)


def test_bad_file_is_an_error_or_skipped_with_a_warning(kth, bad_files, tmp_path, caplog):
    files = [str(kth), str(bad_files["notes"])]
    with pytest.raises(ValueError, match=f"^{bad_files['notes']}: not a video FFmpeg can read .*data.skip_bad_files"):
        module(tmp_path, files=files)
    with caplog.at_level(logging.WARNING):
        dm = module(tmp_path, files=files, skip_bad_files=True)
    assert "Skipped 1 of 7 video files that could not be read" in caplog.text
    assert sum(len(d) for d in dm.datasets.values()) == 5


def test_folders_and_globs_name_their_clips(kth):
    named = find_videos([str(kth), str(kth / "person0[12]*.avi")])
    assert [p.name[:8] for p in named] == [f"person{p:02d}" for p in (*range(1, 7), 1, 2)]  # the module reads each once
    with pytest.raises(FileNotFoundError, match="data.files: no file matches .*nothing"):
        find_videos([str(kth / "nothing*.mp4")], "data.files")


@pytest.fixture(scope="module")
def linked(tmp_path_factory) -> Path:
    """Clips c0..c3 and sub/c4, and other names of them: a symbolic link (z_link -> c0), a chain of
    relative links (z_chain -> z_link), a relative link into a subfolder (z_relative -> sub/c4), a hard
    link (z_hard, of c1) and a linked folder (clips_link -> clips)."""
    folder = tmp_path_factory.mktemp("linked") / "clips"
    (folder / "sub").mkdir(parents=True)
    for k in range(5):
        write_clip(folder / ("sub" if k == 4 else "") / f"c{k}.avi", square_frames(t=6, speed=k + 1))
    (folder / "z_link.avi").symlink_to(folder / "c0.avi")
    (folder / "z_chain.avi").symlink_to("z_link.avi")
    (folder / "z_relative.avi").symlink_to(Path("sub", "c4.avi"))
    os.link(folder / "c1.avi", folder / "z_hard.avi")
    (folder.parent / "clips_link").symlink_to(folder, target_is_directory=True)
    return folder


def sources(dm: VideoDataModule) -> dict[str, list[str]]:
    """The names of the clips of each split (their caches are named after them)."""
    return {name: sorted(d.arrays[i].file.path.name.rsplit("_", 1)[0] for i in set(d.windows[:, 0].tolist()))
            for name, d in dm.datasets.items()}


def test_links_to_a_clip_are_read_once_in_one_split(linked, tmp_path, caplog):
    """Five clips under fourteen other names (links, a hard link, a linked folder, a path twice): each
    is decoded once and lives in one split; one warning counts the names left out."""
    files = [str(linked), str(linked / "c2.avi"), str(linked.parent / "clips_link")]
    with caplog.at_level(logging.WARNING), mock.patch("convgru.data.video_cache.decode_clip",
                                                      wraps=decode_clip) as decoder:
        dm = module(tmp_path, files=files, split=[0.6, 0.2, 0.2])
    assert decoder.call_count == 5
    assert sources(dm) == {"train": ["c0", "c1", "c2"], "val": ["c3"], "test": ["c4"]}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("14 file name(s) left out that name a file already named")
    assert warnings[0].endswith(f"e.g. data.files: {linked / 'z_chain.avi'} is {linked / 'c0.avi'}")


def test_links_across_explicit_splits_stay_in_the_first(linked, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dm = module(tmp_path, files=None, train_files=[str(linked / f"c{k}.avi") for k in range(3)],
                    val_files=[str(linked / "c3.avi"), str(linked / "z_hard.avi")],
                    test_files=[str(linked / "sub"), str(linked / "z_link.avi")])
    assert sources(dm) == {"train": ["c0", "c1", "c2"], "val": ["c3"], "test": ["c4"]}
    assert "2 file name(s) left out" in caplog.text and f"data.val_files: {linked / 'z_hard.avi'} is " \
        f"data.train_files: {linked / 'c1.avi'}" in caplog.text
    with pytest.raises(ValueError, match=r"^data.test_files: every file it names is already in data.train_files "
                       r"\(e.g. .*z_chain.avi is .*c0.avi, through a link or listed twice\)"):
        module(tmp_path, files=None, train_files=[str(linked / "c0.avi")], val_files=[str(linked / "c3.avi")],
               test_files=[str(linked / "z_chain.avi")])


def test_quickstart_on_rgb_clips_builds_a_model_of_three_channels(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for k in range(10):  # 8 train, 1 val, 1 test (data.split's default); two frame sizes, both resized to 16x16
        write_clip(folder / f"c{k}.mp4", square_frames(t=12, h=24 + 8 * (k % 2), w=32, rgb=True, speed=k + 1))
    cfg = compose_config("train", tmp_path / "out", ["experiment=quickstart", "data=video", f"data.files=[{folder}/]",
                                                     "data.channels=3", "data.image_size=16", "data.num_workers=0"])
    datamodule, module_, _ = _build(cfg, callbacks=False)
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape[2] == 3 and module_.net.in_channels == module_.hparams.net["out_channels"] == 3
    assert module_.forecast(x[:1]).shape == y[:1].shape  # one sequence: the model's first call is slow on a CPU


@pytest.mark.parametrize("args, message", [
    (["in.npy", "out.mp4"], "OUTPUT out.mp4: a video OUTPUT needs a video INPUT (its frame rate); write a .npy"),
    (["in.mp4", "out.npy", "--side-by-side"], "--side-by-side needs a video OUTPUT (.mp4, .mov, .mkv, .webm, .avi)"),
    (["in.npy", "out.npy", "--start", "3"], "--start needs a video INPUT, found in.npy"),
])
def test_predict_refuses_video_options_it_cannot_honour(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    for name in ("model.ckpt", "in.npy", "in.mp4"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_:
        predict_script.main(["model.ckpt", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "in.npy", "model.ckpt"]


FORGED = "x\nerror: injected line\n"  # a file name that would print a line of its own


@pytest.mark.slow
def test_file_names_are_escaped_in_a_train_runs_output(tmp_path):
    """Clips named to forge an `error:` line: the warnings and log lines naming them (a link left out, a
    bad file skipped, a clip too short) show the names escaped, in the terminal and train.log; the one
    `error:` line is the run's own."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / f"{FORGED}bad.mp4").write_text("not a video\n" * 50)
    write_clip(clips / f"{FORGED}short.avi", square_frames(t=4))
    (clips / f"{FORGED}z.avi").symlink_to(f"{FORGED}short.avi")
    run = tmp_path / "run"
    command = [sys.executable, "scripts/train.py", "data=video", f"data.files=[{clips}]", "data.skip_bad_files=true",
               "data.frames_in=3", "data.frames_out=2", "data.image_size=8", "data.num_workers=0", "trainer=cpu",
               f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stderr[-3000:]
    log = (run / "train.log").read_text()
    for output in (result.stdout + result.stderr, log):  # the link and its file, the bad file, the short clip
        assert output.count("\\nerror: injected line\\n") == 4, output
        assert not [line for line in output.splitlines() if line.startswith("error: injected")], output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: data.files: none of the 2 video file(s) holds frames_in + frames_out = 5 frames; "
                      "expected at least one clip that long (lower frames_in, frames_out or frame_step)"]


@pytest.mark.slow
def test_kth_trains_evaluates_and_predicts_a_video(tmp_path):
    """train.py experiment=kth on tiny clips writes a checkpoint; eval writes predictions.mp4; predict
    writes the forecast of a clip as a video of the right length, size and frame rate."""
    clips = kth_clips(tmp_path / "kth", persons=(1, 2, 17, 18), frames=14)
    write_clip(tmp_path / "odd.mp4", square_frames(t=14, speed=3), rate=Fraction(30000, 1001))
    run = tmp_path / "run"
    tiny = ["data.image_size=16", "data.frames_in=3", "data.frames_out=4", "data.batch_size=4", "data.num_workers=0",
            "model.net.hidden_sizes=[4,4,4]", "model.net.stem_channels=4", "model.net.kernel_size=3", "trainer=cpu",
            "trainer.max_epochs=1", "logger=csv", "callbacks.prediction_images.num_sequences=1"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "scripts/train.py", "experiment=kth", f"data.files=[{clips}]", f"hydra.run.dir={run}",
               f"paths.cache_dir={tmp_path / 'cache'}", *tiny]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "metrics.json").is_file()

    overrides = [f"ckpt_path={ckpt}", "trainer=cpu"]
    metrics = evaluate(compose_config("eval", tmp_path / "eval", overrides, tmp_path / "cache"), overrides)
    assert set(metrics) >= {"mse", "mae", "ssim", "psnr"}
    with av.open(str(tmp_path / "eval" / "predictions.mp4")) as video:
        assert len(list(video.decode(video.streams.video[0]))) == 3 + 4 and video.streams.video[0].average_rate == 25

    out = tmp_path / "forecast.mp4"
    predict_script.main([str(ckpt), str(tmp_path / "odd.mp4"), str(out), "--future", "5", "--gif",
                         str(tmp_path / "forecast.gif")])
    with av.open(str(out)) as video:
        frames = list(video.decode(video.streams.video[0]))
        assert video.streams.video[0].average_rate == Fraction(30000, 1001)
    assert len(frames) == 5 and (frames[0].height, frames[0].width) == (16, 16)
    side = tmp_path / "side.mp4"  # from frame 2: the clip continues for the frames forecast
    predict_script.main([str(ckpt), str(tmp_path / "odd.mp4"), str(side), "--start", "2", "--side-by-side"])
    with av.open(str(side)) as video:
        frames = list(video.decode(video.streams.video[0]))
    assert len(frames) == 3 + 4 and frames[0].width > 3 * 16  # input | target | prediction, the checkpoint's future


def test_image_size_as_hydra_gives_it():
    """[H, W] from the command line reaches the module as an OmegaConf ListConfig (data.image_size=[96,128])."""
    from omegaconf import OmegaConf

    from convgru.data.video import frame_size
    assert frame_size(OmegaConf.create({"s": [96, 128]}).s) == (96, 128) and frame_size(64) == (64, 64)
    with pytest.raises(ValueError, match="image_size: expected an integer >= 1"):
        frame_size("96")


def test_side_by_side_leaves_truth_to_show_or_says_there_is_none(trained_run, tmp_path, capsys):
    """--side-by-side without --start starts where the clip still holds the forecast's frames (the truth
    column); a clip with none after the input says so in one line instead of dropping the column silently."""
    ckpt = trained_run[0] / "checkpoints" / "last.ckpt"  # Moving MNIST: 3 in, 2 out, 32x32, gray
    write_clip(tmp_path / "long.mp4", square_frames(t=9, h=32, w=32))
    side = tmp_path / "side.mp4"
    predict_script.main([str(ckpt), str(tmp_path / "long.mp4"), str(side), "--side-by-side"])
    with av.open(str(side)) as video:
        frames = list(video.decode(video.streams.video[0]))
    assert len(frames) == 3 + 2 and frames[0].width > 3 * 32  # input | truth | forecast
    assert "note:" not in capsys.readouterr().err
    write_clip(tmp_path / "short.mp4", square_frames(t=3, h=32, w=32))
    predict_script.main([str(ckpt), str(tmp_path / "short.mp4"), str(tmp_path / "short_side.mp4"), "--side-by-side"])
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: --side-by-side shows no truth column: {tmp_path / 'short.mp4'} has no frames after the "
                     "input frames (it holds only the 3 input frames)"]
    predict_script.main([str(ckpt), str(tmp_path / "long.mp4"), str(tmp_path / "end.mp4"), "--side-by-side",
                         "--start", "6"])
    assert "(--start 6); an earlier --start leaves frames of the clip to compare with" in capsys.readouterr().err
