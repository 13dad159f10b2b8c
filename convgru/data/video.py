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

from convgru._checks import OptionError

from .resources import check_memory

# Suffixes taken from folders (files named one by one may have any suffix the decoder reads).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv")
# Encoders (and containers) of written videos, by the output file's suffix.
ENCODERS = {".mp4": ("libx264", "mp4"), ".mov": ("libx264", "mov"), ".mkv": ("libx264", "matroska"),
            ".webm": ("libvpx-vp9", "webm"), ".avi": ("mpeg4", "avi")}
CROPS = ("center", "none")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights of R', G', B'
CHUNK = 64  # frames resized at a time


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
    subfolders). In order, without repeats. FileNotFoundError naming `option` when an entry names
    nothing, or a folder holds no video."""
    entries = [value] if isinstance(value, (str, Path)) else list(value)
    found: dict[Path, None] = {}
    for entry in entries:
        path = Path(str(entry)).expanduser()
        if glob.has_magic(str(entry)):
            matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
            if not matches:
                raise FileNotFoundError(f"{option}: no file matches {entry}; expected video files")
        elif path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and is_video(p))
            if not matches:
                raise FileNotFoundError(f"{option}: no video file ({', '.join(VIDEO_SUFFIXES)}) in the folder {path}")
        elif path.is_file():
            matches = [path]
        else:
            raise FileNotFoundError(f"{option}: video file {path} not found")
        found.update(dict.fromkeys(matches))
    return list(found)


def frame_size(image_size) -> tuple[int, int]:
    """(H, W) from `image_size`: an int for square frames or [H, W]; OptionError otherwise."""
    size = [image_size] * 2 if isinstance(image_size, int) and not isinstance(image_size, bool) else image_size
    if (not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2 or  # a list, or Hydra's ListConfig
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise OptionError("image_size", f"expected an integer >= 1 (square frames) or [H, W], found {image_size!r}")
    return int(size[0]), int(size[1])


def check_options(channels, image_size, crop, frame_step) -> tuple[int, int] | None:
    """Raise OptionError for a bad decoding option; return (H, W) (None for image_size None: the clip's own)."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise OptionError("channels", f"expected 1 (grayscale, BT.601 luma) or 3 (RGB), found {channels!r}")
    if crop not in CROPS:
        raise OptionError("crop", f"expected one of {list(CROPS)}, found {crop!r}")
    if not isinstance(frame_step, int) or isinstance(frame_step, bool) or frame_step < 1:
        raise OptionError("frame_step", f"expected an integer >= 1 (keep every k-th frame), found {frame_step!r}")
    return None if image_size is None else frame_size(image_size)


def _transform(frames: list[np.ndarray], channels: int, size: tuple[int, int] | None, crop: str) -> np.ndarray:
    """RGB frames (H0, W0, 3) uint8 of one size -> (T, C, H, W) uint8: BT.601 luma (channels 1),
    the centre cropped to the aspect ratio of `size` (crop "center"), resized with antialiasing
    (`size` None: as they are)."""
    from torchvision.transforms.v2.functional import resize

    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    if channels == 1:
        x = torch.tensordot(x, torch.tensor(LUMA), dims=([1], [0]))[:, None]
    h0, w0 = x.shape[-2:]
    size = size or (h0, w0)
    if crop == "center":
        scale = min(h0 / size[0], w0 / size[1])
        h, w = min(h0, round(size[0] * scale)), min(w0, round(size[1] * scale))
        top, left = (h0 - h) // 2, (w0 - w) // 2
        x = x[..., top:top + h, left:left + w]
    if tuple(x.shape[-2:]) != size:
        x = resize(x, list(size), antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


def _rotated(frame, rotation: int) -> np.ndarray:
    """The frame as RGB (H, W, 3), turned as its rotation metadata says (FFmpeg's display matrix:
    `rotation` degrees counter-clockwise, undone by turning it back)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def decode_clip(path, channels: int = 1, image_size=64, crop: str = "center", frame_step: int = 1,
                ) -> tuple[np.ndarray, Fraction]:
    """Decode the first video stream of `path`: (frames (T, C, H, W) uint8, frame rate in frames/s).

    `image_size`: an int (square) or [H, W], or None for the clip's own size. Frames come at the
    stream's average frame rate: with a variable frame rate, frame k is the one
    on screen at k / rate (frames repeat or drop as FFmpeg's fps filter does); every `frame_step`-th
    is kept, so the rate returned is the stream's divided by `frame_step`. Audio and other streams
    are ignored. Raises BadVideo naming the file when it is not a video, is truncated (fewer frames
    or a shorter time than its header announces), holds no video stream, has a codec FFmpeg cannot
    decode, or a frame is flagged corrupt; ImportError without PyAV; OptionError for bad options.
    """
    av = _av()
    size = check_options(channels, image_size, crop, frame_step)
    path = Path(path)
    try:
        container = av.open(str(path), **_lenient(av))
    except av.error.FFmpegError as error:
        raise BadVideo(f"{path}: not a video FFmpeg can read ({_reason(error)}); expected a video file "
                       f"such as {', '.join(VIDEO_SUFFIXES[:5])}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise BadVideo(f"{path}: holds no video stream (streams: {', '.join(kinds)}); expected a video file "
                           "(is it truncated, or not a video?)")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise BadVideo(f"{path}: the video stream states no frame rate; expected a video with one")
        rate = Fraction(rate.numerator, rate.denominator)
        check_decode_memory(path, stream, rate, channels, size, frame_step)
        frames = _ConstantRate(rate, frame_step, lambda rgb: _transform(rgb, channels, size, crop))
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.is_corrupt:
                    raise BadVideo(f"{path}: frame {index} is damaged (FFmpeg flags it corrupt); expected an "
                                   "intact video. Re-encode or re-download the file")
                rgb = _rotated(frame, frame.rotation)
                if frames.shape is not None and rgb.shape != frames.shape:
                    raise BadVideo(f"{path}: the frame size changes within the clip, from {frames.shape[:2]} to "
                                   f"{rgb.shape[:2]} at frame {index}; expected one frame size per clip")
                frames.add(rgb, float(frame.time) if frame.time is not None else index / float(rate))
        except av.error.DecoderNotFoundError:
            raise BadVideo(f"{path}: its video codec ({codec or 'unknown to FFmpeg'}) is not one FFmpeg can decode; "
                           "expected a codec such as h264, mpeg4, vp9, mjpeg. Re-encode the file") from None
        except av.error.FFmpegError as error:
            raise BadVideo(f"{path}: damaged or truncated after {frames.decoded} frames ({_reason(error)}); "
                           "expected an intact video") from None
        announced = stream.frames
        duration = _duration(container, stream)
    if not frames.decoded:
        raise BadVideo(f"{path}: no frame could be decoded (codec {codec}); expected a video with frames")
    if announced and frames.decoded < announced:
        raise BadVideo(f"{path}: truncated: its header announces {announced} frames, {frames.decoded} could be "
                       "decoded; expected an intact video (an interrupted copy or download?)")
    if duration and frames.end < duration - 2 / float(rate) - 0.05 * duration:
        raise BadVideo(f"{path}: truncated: its header announces {duration:.2f} s, frames cover {frames.end:.2f} s; "
                       "expected an intact video (an interrupted copy or download?)")
    return frames.finish(), rate / frame_step


def check_decode_memory(path, stream, rate: Fraction, channels: int, size: tuple[int, int] | None,
                        frame_step: int) -> None:
    """ValueError naming `path` and the frame size before decoding when the frames the stream declares
    (its frame count, else its duration, else CHUNK), resized to `size` (None: the stream's own),
    would not fit in memory: the uint8 frames kept and CHUNK of them in float32 while resizing."""
    source = (stream.codec_context.height or 1, stream.codec_context.width or 1) if stream.codec_context else (1, 1)
    height, width = size or source
    seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    declared = stream.frames or math.ceil(seconds * float(rate)) or CHUNK
    kept = declared // frame_step + 1
    pixels = channels * height * width
    needed = kept * pixels + 2 * min(CHUNK, kept) * (4 * pixels + 3 * source[0] * source[1])
    check_memory(needed, f"{path}: decoding about {kept} frames at {height}x{width}"
                 f"{' (data.image_size)' if size else ''}", "lower data.image_size (for predict: the checkpoint's "
                 "data.image_size, the size it was trained on; use a checkpoint trained on smaller frames or pass "
                 "the frames as a .npy)")


class _ConstantRate:
    """Frames at a constant `rate` from frames shown at any times: frame k is the one on screen at
    k / rate (the last whose time is at most (k + 1/2) / rate, as FFmpeg's fps filter rounds), so
    frames repeat over gaps and drop where they come faster; every `step`-th is kept and passed to
    `transform` CHUNK at a time, so that only CHUNK frames of the source size are held at once."""

    def __init__(self, rate: Fraction, step: int, transform):
        self.period, self.step, self.transform = 1 / float(rate), step, transform
        self.k = self.decoded = 0
        self.start = self.last = self.shape = None
        self.pending: list[np.ndarray] = []
        self.out: list[np.ndarray] = []

    def add(self, rgb: np.ndarray, time: float) -> None:
        """The next decoded frame and its time in seconds."""
        if self.start is None:
            self.start, self.shape = time, rgb.shape
        time -= self.start
        while self.last is not None and (self.k + 0.5) * self.period < time:
            self._emit(self.last[0])
        self.last, self.decoded = (rgb, time), self.decoded + 1

    @property
    def end(self) -> float:
        """Seconds the decoded frames cover (the last one shown for one period)."""
        return self.last[1] + self.period

    def finish(self) -> np.ndarray:
        """The frames (T, C, H, W) uint8, the last one repeated up to `end`."""
        total = max(1, math.floor(self.end / self.period + 1e-6))
        while self.k < total:
            self._emit(self.last[0])
        self._flush()
        return np.concatenate(self.out)

    def _emit(self, rgb: np.ndarray) -> None:
        if self.k % self.step == 0:
            self.pending.append(rgb)
            if len(self.pending) == CHUNK:
                self._flush()
        self.k += 1

    def _flush(self) -> None:
        if self.pending:
            self.out.append(self.transform(self.pending))
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
        raise ValueError(f"{path}: expected a video file name ending in {', '.join(ENCODERS)}, found {suffix!r}")
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"write_video expects frames (T, H, W, 3) or (T, H, W), T >= 1, found {frames.shape}")
    codec, container_format = ENCODERS[suffix]
    h, w = frames.shape[1:3]
    odd = h % 2 or w % 2
    if odd and codec == "mpeg4":
        raise ValueError(f"{path}: MPEG-4 (.avi) needs even frame sizes, found {h}x{w}; write .mp4 or .mkv instead")
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
