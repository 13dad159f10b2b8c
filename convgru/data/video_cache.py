"""Decode once: every clip decoded into a memory-mapped uint8 .npy under the cache folder.

A clip's cache is `<cache_dir>/video/<name>_<key>.npy`, shape (1, T, C, H, W) (one sequence, read
as layout NTCHW), and a `.json` beside it with the source, its frame rate (after frame_step) and
frame count; a file that is not a readable video gets a `.json` holding the error instead. `key`
digests the file (absolute path, size, modification time) and every option that changes the
pixels or whether the clip is read (channels, image_size, crop, frame_step, max_gap_frames) and
DECODER_VERSION, so changing any of them, or the file, decodes again; everything else (frames_in,
splits, ...) reads the same cache. Both files are written atomically (`convgru.atomic.atomic_write`).
Clips missing from the cache are decoded in parallel (threads: FFmpeg and torch release the GIL),
with a progress bar over clips and frames.
"""

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from convgru._checks import shown_name, shown_path
from convgru.atomic import atomic_write, remove_stale_tmp

from .cache import write_npy
from .video import MAX_GAP_FRAMES, BadVideo, check_options, decode_clip

log = logging.getLogger(__name__)
DECODER_VERSION = 2  # bump when decode_clip's output changes, so caches decode again


@dataclass
class Clip:
    """A decoded clip: its source, cache file (None when `error`), frame count and rate (frames/s)."""

    source: Path
    cache: Path | None
    frames: int = 0
    rate: Fraction = Fraction(0)
    error: str | None = None


def clip_key(source: Path, options: dict) -> str:
    """12 hex digits naming the decoded pixels of `source` with these `decode_clip` options."""
    stat = source.stat()
    size = check_options(**options)
    text = json.dumps([str(source.resolve()), stat.st_size, stat.st_mtime_ns, options["channels"], size,
                       options["crop"], options["frame_step"], options["max_gap_frames"], DECODER_VERSION])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cache_files(cache_dir, source: Path, key: str) -> tuple[Path, Path]:
    """(.npy, .json) of `source`'s cache."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.stem)[:80]
    base = Path(cache_dir) / "video" / f"{stem}_{key}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def _read(npy: Path, info: Path, source: Path) -> Clip | None:
    """The cached clip, or None when its cache is missing or incomplete."""
    try:
        meta = json.loads(info.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("error"):
        return Clip(source, None, error=shown_name(meta["error"], None))
    if not npy.is_file():
        return None
    return Clip(source, npy, int(meta["frames"]), Fraction(meta["rate"]))


def _decode(source: Path, npy: Path, info: Path, options: dict, at_once: int) -> Clip:
    """Decode `source` into its cache (or record why it is not a video), `at_once` clips at a time."""
    try:
        frames, rate = decode_clip(source, **options, at_once=at_once)
    except BadVideo as error:
        clip = Clip(source, None, error=str(error))
    else:
        write_npy(npy, (1, *frames.shape), frames.dtype, [(0, frames[None])], "video cache")
        clip = Clip(source, npy, len(frames), rate)
    meta = {"source": str(source), "frames": clip.frames, "rate": str(clip.rate), "error": clip.error,
            "options": options, "decoder_version": DECODER_VERSION}
    with atomic_write(info, "video cache") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    return clip


def default_workers() -> int:
    """Decoding threads by default: the CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def ensure_clips(sources: list[Path], cache_dir, channels: int = 1, image_size=64, crop: str = "center",
                 frame_step: int = 1, max_gap_frames: int = MAX_GAP_FRAMES, workers: int | None = None,
                 progress: bool = True) -> list[Clip]:
    """The decoded clips of `sources`, in order: read from the cache, the missing ones decoded into it
    first by `workers` threads (default `default_workers`), with a progress bar (tqdm, on a terminal).
    A source that is not a readable video gives a Clip with `error` (the caller raises or skips it);
    a clip too big for the memory, with as many others as threads decode at once, raises ValueError
    (`decode_clip`)."""
    options = dict(channels=channels, image_size=image_size, crop=crop, frame_step=frame_step,
                   max_gap_frames=max_gap_frames)
    check_options(**options)
    files = [cache_files(cache_dir, s, clip_key(s, options)) for s in sources]
    clips = [_read(npy, info, s) for s, (npy, info) in zip(sources, files)]
    missing = [i for i, c in enumerate(clips) if c is None]
    if not missing:
        return clips
    folder = files[0][0].parent
    where = shown_path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(f"cannot write the video cache in {where} ({error.strerror or error}); "
                          "set paths.cache_dir (or data.cache_dir) to a writable folder") from None
    remove_stale_tmp(folder)
    from tqdm.auto import tqdm

    start, total = time.perf_counter(), 0
    bar = tqdm(total=len(missing), unit="clip", desc=f"Decoding {len(missing)} video(s) into {where}",
               disable=None if progress else True, leave=False)
    at_once = max(1, min(workers or default_workers(), len(missing)))
    with bar, ThreadPoolExecutor(at_once) as pool:
        futures = {i: pool.submit(_decode, sources[i], *files[i], options, at_once) for i in missing}
        for i, future in futures.items():
            clips[i] = future.result()
            total += clips[i].frames
            bar.update(1)
            bar.set_postfix(frames=total)
    seconds = time.perf_counter() - start
    log.info("Decoded %d video(s), %d frames in %.1f s (%.0f frames/s) into %s", len(missing), total, seconds,
             total / max(seconds, 1e-9), where)
    return clips
