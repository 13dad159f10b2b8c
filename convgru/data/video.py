"""Video files in and out with PyAV (FFmpeg's libraries, carried by its wheels: `pip install -e ".[video]"`).

`decode_clip` reads one clip as uint8 frames (T, C, H, W) at a constant frame rate: grayscale as
ITU-R BT.601 luma or RGB, rotation metadata applied, cropped and resized (antialiased,
torchvision's), every `frame_step`-th frame. `write_video` encodes frames at a given frame rate.
Every file that cannot be read as a video (not a video, truncated, a codec FFmpeg cannot decode,
no video stream, damaged frames) raises `BadVideo` (a ValueError) naming the file: never a decoder
traceback, never a frame made up to fill a gap.
"""

import glob
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from convgru._checks import OptionError, shown_path

from .arrays import check_path
from .resources import check_memory

# Suffixes taken from folders (files named one by one may have any suffix the decoder reads).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv")
# Encoders (and containers) of written videos, by the output file's suffix.
ENCODERS = {".mp4": ("libx264", "mp4"), ".mov": ("libx264", "mov"), ".mkv": ("libx264", "matroska"),
            ".webm": ("libvpx-vp9", "webm"), ".avi": ("mpeg4", "avi")}
CROPS = ("center", "none")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights of R', G', B'
CHUNK = 64  # frames resized together at most; frames memory is checked for first when a header announces none
CHUNK_BYTES = 64 * 2**20  # working memory of the frames resized together, at most (one frame when it is larger)
MAX_GAP_FRAMES = 300  # default of max_gap_frames: a gap of up to 10 s at 30 frames/s is filled with copies


class BadVideo(ValueError):
    """A file that cannot be read as a video; str() names the file, what was expected and what was found."""


def _av():
    """The PyAV module, or ImportError naming the extra to install."""
    try:
        import av
    except ImportError:
        raise ImportError('reading and writing video files needs PyAV: pip install -e ".[video]" '
                          "(or pip install av)") from None
    return av


def is_video(path) -> bool:
    """Whether `path` has one of the suffixes of VIDEO_SUFFIXES (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def find_videos(value, option: str = "files") -> list[Path]:
    """The video files named by `value`: a path or a list of paths, each a file (any suffix), a folder
    (every file with a VIDEO_SUFFIXES suffix below it, sorted) or a glob (`clips/*.avi`, `**` for
    subfolders). In order, a file named by two entries twice (`convgru.data.files.unique_files` leaves
    out repeats and links, with a warning). FileNotFoundError naming `option` when an entry names
    nothing, or a folder holds no video."""
    entries = [value] if isinstance(value, (str, Path)) else list(value)
    found: list[Path] = []
    for entry in entries:
        path = Path(str(entry)).expanduser()
        if glob.has_magic(str(entry)):
            matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
            if not matches:
                raise FileNotFoundError(f"{option}: no file matches {shown_path(entry)}; expected video files")
        elif path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and is_video(p))
            if not matches:
                raise FileNotFoundError(f"{option}: no video file ({', '.join(VIDEO_SUFFIXES)}) in the folder "
                                        f"{shown_path(path)}")
        elif path.is_file():
            matches = [path]
        else:
            check_path(path, "video file")  # a link loop, or a link to nothing: said so
            raise FileNotFoundError(f"{option}: video file {shown_path(path)} not found")
        found += matches
    return found


def frame_size(image_size) -> tuple[int, int]:
    """(H, W) from `image_size`: an int for square frames or [H, W]; OptionError otherwise."""
    size = [image_size] * 2 if isinstance(image_size, int) and not isinstance(image_size, bool) else image_size
    if (not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2 or  # a list, or Hydra's ListConfig
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise OptionError("image_size", f"expected an integer >= 1 (square frames) or [H, W], found {image_size!r}")
    return int(size[0]), int(size[1])


def check_options(channels, image_size, crop, frame_step, max_gap_frames=MAX_GAP_FRAMES) -> tuple[int, int] | None:
    """Raise OptionError for a bad decoding option; return (H, W) (None for image_size None: the clip's own)."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise OptionError("channels", f"expected 1 (grayscale, BT.601 luma) or 3 (RGB), found {channels!r}")
    if crop not in CROPS:
        raise OptionError("crop", f"expected one of {list(CROPS)}, found {crop!r}")
    if not isinstance(frame_step, int) or isinstance(frame_step, bool) or frame_step < 1:
        raise OptionError("frame_step", f"expected an integer >= 1 (keep every k-th frame), found {frame_step!r}")
    if not isinstance(max_gap_frames, int) or isinstance(max_gap_frames, bool) or max_gap_frames < 0:
        raise OptionError("max_gap_frames", "expected an integer >= 0 (the most frames repeated to fill a gap "
                          f"between two frames of a clip), found {max_gap_frames!r}")
    return None if image_size is None else frame_size(image_size)


def _transform(frames: list[np.ndarray], channels: int, size: tuple[int, int] | None, crop: str) -> np.ndarray:
    """RGB frames (H0, W0, 3) uint8 of one size -> (T, C, H, W) uint8: the centre cropped to the aspect
    ratio of `size` (crop "center", before any copy), BT.601 luma (channels 1), resized with
    antialiasing (torchvision's; `size` None: as they are)."""
    from torchvision.transforms.v2.functional import resize

    h0, w0 = frames[0].shape[:2]
    size = size or (h0, w0)
    if crop == "center":
        scale = min(h0 / size[0], w0 / size[1])
        h, w = min(h0, round(size[0] * scale)), min(w0, round(size[1] * scale))
        top, left = (h0 - h) // 2, (w0 - w) // 2
        frames = [rgb[top:top + h, left:left + w] for rgb in frames]  # views
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    if channels == 1:
        x = torch.tensordot(x, torch.tensor(LUMA), dims=([1], [0]))[:, None]
    if tuple(x.shape[-2:]) != size:
        x = resize(x, list(size), antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


def _rotated(frame, rotation: int) -> np.ndarray:
    """The frame as RGB (H, W, 3), turned as its rotation metadata says (FFmpeg's display matrix:
    `rotation` degrees counter-clockwise, undone by turning it back)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def standard_rate(rate: Fraction) -> Fraction:
    """`rate` (frames/s), or the whole or NTSC rate (n * 1000/1001) within 0.01 % of it: Matroska and WebM
    store times in milliseconds, from which FFmpeg reads e.g. 19001/317 for 60000/1001 frames/s."""
    for candidate in (Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001), Fraction(round(rate))):
        if candidate > 0 and abs(rate - candidate) <= candidate * Fraction(1, 10000):
            return candidate
    return rate


def _working_bytes(source: tuple[int, int], size: tuple[int, int], channels: int) -> int:
    """Memory one frame takes while it is converted and resized: its RGB pixels with their float copy and
    luma (20 bytes a source pixel) and the resized float frame, rounded (8 bytes a value)."""
    return 20 * source[0] * source[1] + 8 * channels * size[0] * size[1]


def _chunk(source: tuple[int, int], size: tuple[int, int], channels: int) -> int:
    """Frames resized together: at most CHUNK, and only as many as CHUNK_BYTES of working memory hold
    (at least one)."""
    return max(1, min(CHUNK, CHUNK_BYTES // max(1, _working_bytes(source, size, channels))))


def _check_memory(name: str, frames: int, source: tuple[int, int], size: tuple[int, int], channels: int,
                  declared: int, at_once: int, decoded: int | None = None) -> None:
    """ValueError (`convgru.data.resources.check_memory`) naming the file when decoding its frames of
    (H0, W0) `source` pixels (`declared` by its header; `decoded` so far, when more) into `frames`
    frames (channels, *size), `at_once` clips like it at the same time, would not fit in memory:
    those frames twice (resized, then stacked into the clip), one chunk of frames being resized
    (`_chunk`, `_working_bytes`) and the decoder's frame with its RGB copy, for each clip."""
    needed = at_once * (2 * frames * channels * size[0] * size[1] + 6 * source[0] * source[1] +
                        _chunk(source, size, channels) * _working_bytes(source, size, channels))
    shape = f"{source[0]}x{source[1]} pixels" if source[0] * source[1] else "a size its header does not state"
    count = f"{decoded} frames and more" if decoded else f"its {declared} frames" if declared else "its frames"
    note = ("its header does not say how many" if not declared else
            f"more than the {declared} its header announces" if decoded else "as its header announces")
    threads = f", as {at_once} clips decoded at once (data.decode_workers)," if at_once > 1 else ""
    check_memory(needed, f"{name}: decoding {count} of {shape} ({note}) into {frames} frames of "
                 f"{size[0]}x{size[1]} with {channels} channel(s) (data.image_size, data.channels, data.frame_step)"
                 f"{threads}", "lower data.image_size, raise data.frame_step" +
                 (", lower data.decode_workers" if at_once > 1 else "") + " or cut the clip into shorter ones")


def decode_clip(path, channels: int = 1, image_size=64, crop: str = "center", frame_step: int = 1,
                max_gap_frames: int = MAX_GAP_FRAMES, at_once: int = 1) -> tuple[np.ndarray, Fraction]:
    """Decode the first video stream of `path`: (frames (T, C, H, W) uint8, frame rate in frames/s).

    `image_size`: an int (square) or [H, W], or None for the clip's own size. Frames come at the
    stream's average frame rate (`standard_rate`): with a variable frame rate, frame k is the one
    on screen at k / rate (frames repeat or drop as FFmpeg's fps filter does), and the last frame
    decoded is always the last frame; every `frame_step`-th is kept, so the rate returned is the
    stream's divided by `frame_step`. A gap that would repeat a frame more than `max_gap_frames`
    times is an error, never filled. Frames are resized as they are decoded, a few at a time
    (`_chunk`: at most CHUNK, in CHUNK_BYTES of working memory, one when larger): memory holds the
    clip at its new size and one chunk at its own. Audio and other streams are ignored.

    Raises BadVideo naming the file when it is not a video, is truncated (fewer frames or a shorter
    time than its header announces), holds no video stream, has a codec FFmpeg cannot decode, a
    frame is flagged corrupt, or a gap exceeds `max_gap_frames`; ValueError when the frames its
    header announces (or those decoded beyond it) would not fit in memory at the requested size,
    `at_once` times (clips decoded by other threads at the same time), checked before decoding them;
    ImportError without PyAV; OptionError for bad options.
    """
    av = _av()
    size = check_options(channels, image_size, crop, frame_step, max_gap_frames)
    path = Path(path)
    name = shown_path(path)
    try:
        container = av.open(str(path), **_lenient(av))
    except av.error.FFmpegError as error:
        raise BadVideo(f"{name}: not a video FFmpeg can read ({_reason(error)}); expected a video file "
                       f"such as {', '.join(VIDEO_SUFFIXES[:5])}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise BadVideo(f"{name}: holds no video stream (streams: {', '.join(kinds)}); expected a video file "
                           "(is it truncated, or not a video?)")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise BadVideo(f"{name}: the video stream states no frame rate; expected a video with one")
        rate = standard_rate(Fraction(rate.numerator, rate.denominator))
        announced, duration = stream.frames, _duration(container, stream)
        declared = announced or (round(duration * rate) if duration else 0)
        source = (stream.codec_context.height, stream.codec_context.width) if stream.codec_context else (0, 0)

        def check(frames: int, decoded: int | None = None) -> None:
            _check_memory(name, frames, source, size or source, channels, declared, at_once, decoded)
        budget = max(declared, CHUNK)  # frames decoded before memory is checked again
        check(-(-(declared or CHUNK) // frame_step))
        frames = _ConstantRate(name, rate, frame_step, max_gap_frames,
                               lambda rgb: _transform(rgb, channels, size, crop), budget, check,
                               lambda shape: _chunk(shape, size or shape, channels))
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.is_corrupt:
                    raise BadVideo(f"{name}: frame {index} is damaged (FFmpeg flags it corrupt); expected an "
                                   "intact video. Re-encode or re-download the file")
                rgb = _rotated(frame, frame.rotation)
                if frames.shape is not None and rgb.shape != frames.shape:
                    raise BadVideo(f"{name}: the frame size changes within the clip, from {frames.shape[:2]} to "
                                   f"{rgb.shape[:2]} at frame {index}; expected one frame size per clip")
                frames.add(rgb, float(frame.time) if frame.time is not None else index / float(rate))
        except av.error.DecoderNotFoundError:
            raise BadVideo(f"{name}: its video codec ({codec or 'unknown to FFmpeg'}) is not one FFmpeg can decode; "
                           "expected a codec such as h264, mpeg4, vp9, mjpeg. Re-encode the file") from None
        except av.error.FFmpegError as error:
            raise BadVideo(f"{name}: damaged or truncated after {frames.decoded} frames ({_reason(error)}); "
                           "expected an intact video") from None
    if not frames.decoded:
        raise BadVideo(f"{name}: no frame could be decoded (codec {codec}); expected a video with frames")
    if announced and frames.decoded < announced:
        raise BadVideo(f"{name}: truncated: its header announces {announced} frames, {frames.decoded} could be "
                       "decoded; expected an intact video (an interrupted copy or download?)")
    if duration and frames.end < duration - 2 / float(rate) - 0.05 * duration:
        raise BadVideo(f"{name}: truncated: its header announces {duration:.2f} s, frames cover {frames.end:.2f} s; "
                       "expected an intact video (an interrupted copy or download?)")
    return frames.finish(), rate / frame_step


class _ConstantRate:
    """Frames at a constant `rate` from frames shown at any times: frame k is the one on screen at
    k / rate (the last whose time is at most (k + 1/2) / rate, as FFmpeg's fps filter rounds), so
    frames repeat over gaps (at most `max_gap` times, else BadVideo) and drop where they come faster;
    the last frame decoded is the last frame. Every `step`-th is kept: the frames kept wait at their
    own size until `chunk_of((H0, W0))` of them are passed to `transform` together, once each (a
    frame repeated is copied once resized). `check(n, decoded)` is called before the frames kept pass
    `budget` (then twice as many), so that memory is checked as they grow."""

    def __init__(self, name: str, rate: Fraction, step: int, max_gap: int, transform, budget: int, check,
                 chunk_of):
        self.name, self.rate, self.period, self.step = name, rate, 1 / float(rate), step
        self.max_gap, self.transform, self.budget, self.check = max_gap, transform, -(-budget // step), check
        self.chunk_of = chunk_of
        self.k = self.decoded = self.kept = 0  # the slot of the frame on screen; frames decoded, kept
        self.start = self.last = self.shape = self.chunk = None
        self.pending: list[tuple[np.ndarray, int]] = []  # frames waiting for `transform`, and their copies
        self.out: list[np.ndarray] = []

    def add(self, rgb: np.ndarray, time: float) -> None:
        """The next decoded frame and its time in seconds."""
        if self.start is None:
            self.start, self.shape, self.chunk = time, rgb.shape, self.chunk_of(rgb.shape[:2])
        time -= self.start
        if self.last is not None:
            slot = max(self.k, math.ceil(time / self.period - 0.5))  # the first slot where this frame shows
            while (slot + 0.5) * self.period < time:
                slot += 1
            while slot > self.k and (slot - 0.5) * self.period >= time:
                slot -= 1
            if slot - self.k - 1 > self.max_gap:
                raise BadVideo(
                    f"{self.name}: frames {self.decoded - 1} and {self.decoded} are {time - self.last[1]:.2f} s apart "
                    f"(from {self.last[1]:.2f} s): at {float(self.rate):g} frames/s the gap would repeat frame "
                    f"{self.decoded - 1} {slot - self.k - 1} times, more than data.max_gap_frames={self.max_gap}; "
                    "expected a clip without such gaps (a paused or damaged recording?). Cut the clip, or raise "
                    "data.max_gap_frames to fill the gap with copies")
            self._show(slot)
        self.last, self.decoded = (rgb, time), self.decoded + 1

    @property
    def end(self) -> float:
        """Seconds the decoded frames cover (the last one shown for one period)."""
        return self.last[1] + self.period

    def finish(self) -> np.ndarray:
        """The frames (T, C, H, W) uint8: the last frame shown once, in its own slot."""
        self._show(self.k + 1)
        self._flush()
        return np.concatenate(self.out)

    def _show(self, end: int) -> None:
        """The frame on screen in slots k .. end - 1: kept in those that are multiples of `step`."""
        count = len(range(self.k + -self.k % self.step, end, self.step))
        self.k = end
        if not count:
            return
        if self.kept + count > self.budget:
            self.budget = 2 * (self.kept + count)
            self.check(self.budget, self.decoded)
        self.kept += count
        self.pending.append((self.last[0], count))
        if len(self.pending) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            frames = self.transform([rgb for rgb, _ in self.pending])
            self.out.append(np.repeat(frames, [count for _, count in self.pending], axis=0))
            self.pending = []


def _lenient(av) -> dict:
    """av.open's options so that tags in another encoding than UTF-8 never stop reading a clip
    (PyAV 19 always reads them leniently and dropped the option)."""
    return {"metadata_errors": "ignore"} if int(av.__version__.split(".")[0]) < 19 else {}


def _reason(error) -> str:
    """FFmpeg's words for an error, without the errno and file name PyAV adds."""
    return getattr(error, "strerror", None) or str(error)


def _duration(container, stream) -> float | None:
    """Seconds the video stream lasts by its header (the stream's duration, Matroska's DURATION tag,
    or the container's when it holds that stream alone), None when unknown."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        pass
    return container.duration / 1e6 if container.duration and len(container.streams) == 1 else None


def write_video(path, frames: np.ndarray, rate, suffix: str | None = None, quality: int = 18) -> None:
    """Encode `frames` (T, H, W, 3) or (T, H, W) uint8 (gray) at `rate` frames/s into `path`, with the
    encoder and container of `suffix` (default: the path's; one of ENCODERS). H.264 and VP9 keep
    odd frame sizes (4:4:4 chroma); `quality` is their CRF (lower is better, 0 lossless for H.264).
    ValueError naming the file for an unknown suffix or a size the encoder cannot take."""
    av = _av()
    suffix = (suffix or Path(path).suffix).lower()
    if suffix not in ENCODERS:
        raise ValueError(f"{shown_path(path)}: expected a video file name ending in {', '.join(ENCODERS)}, "
                         f"found {suffix!r}")
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"write_video expects frames (T, H, W, 3) or (T, H, W), T >= 1, found {frames.shape}")
    codec, container_format = ENCODERS[suffix]
    h, w = frames.shape[1:3]
    odd = h % 2 or w % 2
    if odd and codec == "mpeg4":
        raise ValueError(f"{shown_path(path)}: MPEG-4 (.avi) needs even frame sizes, found {h}x{w}; write .mp4 or .mkv "
                         "instead")
    rate = Fraction(rate).limit_denominator(1001 * 1000)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv444p" if odd else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(quality)}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(quality), "b": "0"}
        else:
            stream.options = {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
