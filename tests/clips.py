"""Small video clips made with PyAV for the tests: a square moving at a known speed, gray or RGB,
in H.264 (.mp4, or a raw .h264 stream), MPEG-4 part 2 (.avi) or lossless FFV1 (.mkv), at any frame
rate, with variable frame timing, rotation metadata or an audio stream; and damaged files."""

import struct
from fractions import Fraction

import av
import numpy as np

CODECS = {".mp4": ("libx264", "yuv420p"), ".avi": ("mpeg4", "yuv420p"), ".mkv": ("ffv1", "bgr0"),
          ".h264": ("libx264", "yuv420p")}  # .h264: a raw stream, whose header states no frame count or duration
SQUARE = 6  # side of the square, pixels
COLOR = (255, 64, 0)  # the square's colour in RGB clips, on black


def square_frames(t: int = 12, h: int = 24, w: int = 32, speed: int = 2, rgb: bool = False, top: int = 4):
    """(t, h, w, 3) uint8: a white (or COLOR) SQUARE-pixel square moving right `speed` pixels per frame."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for k in range(t):
        left = (1 + k * speed) % (w - SQUARE)
        frames[k, top:top + SQUARE, left:left + SQUARE] = COLOR if rgb else 255
    return frames


def write_clip(path, frames: np.ndarray, rate=25, times_ms=None, audio: bool = False) -> None:
    """Encode RGB `frames` into `path` with the codec of its suffix (CODECS) at `rate` frames/s, or at
    the times `times_ms` (milliseconds: a variable frame rate); `audio` adds a second of silent AAC."""
    codec, pix_fmt = CODECS[path.suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "1"}
        elif codec == "mpeg4":
            stream.options = {"qscale": "1"}
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=8000) if audio else None
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[k]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.float32), format="fltp", layout="mono")
            silence.sample_rate = 8000
            for packet in [*sound.encode(silence), *sound.encode()]:
                container.mux(packet)


def luma(frames: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of RGB frames (T, H, W, 3) as float."""
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def rotate_90(path, out) -> None:
    """Copy the .mp4 `path` to `out` with rotation metadata (its track header's matrix) that says
    "turn 90 degrees clockwise to display", as phones write portrait videos."""
    data = bytearray(path.read_bytes())
    matrix = data.find(b"tkhd") + 4 + 40  # version 0 header: 40 bytes before the 3x3 matrix
    struct.pack_into(">9i", data, matrix, 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    out.write_bytes(bytes(data))


def unknown_codec(path, out) -> None:
    """Copy the MPEG-4 .avi `path` to `out` with its codec tag (FourCC) made one FFmpeg does not know."""
    out.write_bytes(path.read_bytes().replace(b"FMP4", b"ZQX9"))


def truncated(path, out, keep: float = 0.6) -> None:
    """The first `keep` of `path`'s bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
