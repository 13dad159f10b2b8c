"""Error-sweep cases of data=video: files that are not videos, truncated or of a codec FFmpeg cannot
decode, folders without videos, split patterns that match nothing, bad decoding options; collected
by test_errors.py."""

from pathlib import Path

from clips import square_frames, truncated, unknown_codec, write_clip
from convgru.training import cli
from convgru.training.options import instantiate
from sweep import Case, assert_kept, compose_config, digest, raised

VIDEO = ["data=video", "data.frames_in=3", "data.frames_out=2", "data.image_size=8", "data.num_workers=0",
         "data.batch_size=2"]


def clip(path: Path) -> None:
    write_clip(path, square_frames(t=8))


def copy_of(writer, damage):
    """A clip written by `writer` to a temporary name, then `damage(clip, path)`."""
    def write(path: Path):
        good = path.with_name("good" + path.suffix)
        writer(good)
        damage(good, path)
        good.unlink()
    return write


def video_run(files: dict, overrides) -> callable:
    """Write `files` ({name: writer}) into the folder, build data=video with `overrides` ({dir} is the
    folder; the cache outside it) and set it up (decode every clip)."""
    def run(folder: Path) -> str:
        for name, write in files.items():
            write(folder / name)
        (folder / "notes.txt").write_text("the user's notes")
        before = digest(folder)

        def build():
            options = cli.quote_non_ascii([o.replace("{dir}", str(folder)) for o in [*VIDEO, *overrides]])
            cfg = compose_config("train", folder.parent / "out", options, folder.parent / "cache")
            instantiate(cfg.data, "data").setup("fit")
        message = raised(build)
        assert_kept(folder, before)
        return message
    return run


CASES = [
    Case("video-not-a-video", "data=video on a file that is not a video", "data=video data.files=[/data/a.mp4]",
         video_run({"a.mp4": lambda p: p.write_text("not a video\n" * 50)}, ["data.files=[{dir}/a.mp4]"]),
         r"a.mp4: not a video FFmpeg can read \(Invalid data found when processing input\); expected a video file"),
    Case("video-truncated", "a video cut short (an interrupted copy)", "data=video data.files=[/data/a.mkv]",
         video_run({"a.mkv": copy_of(clip, truncated)}, ["data.files=[{dir}/a.mkv]"]),
         r"a.mkv: truncated: its header announces 0.32 s, frames cover 0.\d+ s", exact=False),  # FFV1's slices vary
    Case("video-unknown-codec", "a video whose codec FFmpeg cannot decode", "data=video data.files=[/data/a.avi]",
         video_run({"a.avi": copy_of(clip, unknown_codec)}, ["data.files=[{dir}/a.avi]"]),
         r"a.avi: its video codec \(unknown to FFmpeg\) is not one FFmpeg can decode"),
    Case("video-empty-folder", "data=video on a folder without video files", "data=video data.files=[/data]",
         video_run({}, ["data.files=[{dir}]"]), r"data.files: no video file \(.mp4, .avi, .*\) in the folder"),
    Case("video-pattern-none", "a split pattern that matches no file name",
         "data=video data.files=[/data] data.test_pattern=person2",
         video_run({f"person1{k}.mkv": clip for k in range(3)},
                   ["data.files=[{dir}]", "data.train_pattern=person1", "data.val_pattern=person1",
                    "data.test_pattern=person2"]),
         r"data.test_pattern: matches none of the 3 usable clip names \(e.g. person10.mkv\)"),
    Case("video-too-short", "clips shorter than one window", "data=video data.frames_in=10",
         video_run({"a.mkv": clip}, ["data.files=[{dir}]", "data.frames_in=10"]),
         r"data.files: none of the 1 video file\(s\) holds frames_in \+ frames_out = 12 frames"),
    Case("video-channels", "data=video with 2 channels", "data=video data.channels=2",
         video_run({}, ["data.files=[{dir}]", "data.channels=2"]),
         r"data.channels: expected 1 \(grayscale, BT.601 luma\) or 3 \(RGB\), found 2"),
    Case("video-crop", "an unknown crop", "data=video data.crop=left",
         video_run({}, ["data.files=[{dir}]", "data.crop=left"]), r"data.crop: expected one of \['center', 'none'\]"),
]
