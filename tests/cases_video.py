"""Error-sweep cases of data=video: files that are not videos, truncated or of a codec FFmpeg cannot
decode, with a gap of an hour, too big for the memory at image_size or named to forge a line;
folders without videos, split patterns that match nothing, a split whose files are links to
another's, bad decoding options; collected by test_errors.py."""

from pathlib import Path

from cases_data import with_resources
from clips import square_frames, truncated, unknown_codec, write_clip
from convgru.training import cli
from convgru.training.options import instantiate
from sweep import Case, assert_kept, compose_config, digest, raised

VIDEO = ["data=video", "data.frames_in=3", "data.frames_out=2", "data.image_size=8", "data.num_workers=0",
         "data.batch_size=2"]


def clip(path: Path) -> None:
    write_clip(path, square_frames(t=8))


def hour_gap(path: Path) -> None:
    """Two frames an hour apart (a recording paused, or a damaged timestamp)."""
    write_clip(path, square_frames(t=2), times_ms=[0, 3_600_000])


def link_to(name: str):
    return lambda path: path.symlink_to(name)


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
    Case("video-gap", "a clip with an hour between two frames", "data=video data.files=[/data/a.mkv]",
         video_run({"a.mkv": hour_gap}, ["data.files=[{dir}/a.mkv]"]),
         r"a.mkv: frames 0 and 1 are 3600.00 s apart \(from 0.00 s\): at 25 frames/s the gap would repeat frame 0 "
         r"89999 times, more than data.max_gap_frames=300"),
    Case("video-max-gap-frames", "a negative max_gap_frames", "data=video data.max_gap_frames=-1",
         video_run({}, ["data.files=[{dir}]", "data.max_gap_frames=-1"]),
         r"data.max_gap_frames: expected an integer >= 0"),
    Case("video-image-size-memory", "an image_size whose frames would not fit in memory",
         "data=video data.image_size=100000",
         with_resources(video_run({"a.mkv": clip}, ["data.files=[{dir}/a.mkv]", "data.image_size=100000"])),
         r"a.mkv: decoding its 8 frames of 24x32 pixels \(as its header announces\) into 8 frames of 100000x100000 "
         r"with 1 channel\(s\) .* needs about 240.0 GB of memory, 16.0 GB available; lower data.image_size"),
    Case("video-link-in-two-splits", "a test file that is a link to a training file",
         "data=video data.train_files=[/data/a.mkv] data.test_files=[/data/link.mkv]",
         video_run({"a.mkv": clip, "b.mkv": clip, "link.mkv": link_to("a.mkv")},
                   ["data.train_files=[{dir}/a.mkv]", "data.val_files=[{dir}/b.mkv]",
                    "data.test_files=[{dir}/link.mkv]"]),
         r"data.test_files: every file it names is already in data.train_files \(e.g. .*link.mkv is .*a.mkv, through "
         r"a link or listed twice\); expected files of its own for each split"),
    Case("video-forged-name", "a file named to print a line of its own (x, newline, error: injected line, newline, "
         ".mp4)", "data=video data.files=[/data]",
         video_run({"x\nerror: injected line\n.mp4": lambda p: p.write_text("not a video\n" * 50)},
                   ["data.files=[{dir}]"]),
         r"^'.*x\\nerror: injected line\\n.mp4': not a video FFmpeg can read"),
]
