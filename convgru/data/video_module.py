"""LightningDataModule for video files (mp4, avi, mkv, webm, mov, ...), decoded once into a uint8 cache."""

import logging
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

from convgru._checks import OptionError, shown_path

from .array_module import SPLITS, ArrayDataModule
from .cache import USER_CACHE
from .files import unique_files, unique_split_files
from .video import MAX_GAP_FRAMES, check_options, find_videos, frame_size
from .video_cache import Clip, ensure_clips

log = logging.getLogger(__name__)


class VideoDataModule(ArrayDataModule):
    """Windows of `frames_in + frames_out` frames from video files, as `ArrayDataModule` cuts arrays.

    `files` (files, folders, globs) are split by file: in order by `split` fractions, or by regular
    expressions `train_pattern` / `val_pattern` / `test_pattern` searched in each file's name (e.g.
    KTH's persons, `person(0[1-9]|1[0-6])_`; a file may match several, files matching none are left
    out), or given per split as `train_files` / `val_files` / `test_files`. A file named twice (a
    symbolic or hard link to another, the same path twice) is read once, in the first split naming
    it, with one warning (`convgru.data.files`). Each clip gives the window at frame 0, or windows
    every `stride` frames.

    Decoding (`convgru.data.video.decode_clip`): `channels` 1 (ITU-R BT.601 luma) or 3 (RGB),
    `image_size` (int or [H, W]) after cropping the centre to its aspect ratio (`crop` "center") or
    not ("none"), every `frame_step`-th frame, at each clip's constant frame rate; a gap between two
    frames that would repeat a frame more than `max_gap_frames` times makes the clip a bad file. A
    clip whose frames would not fit in memory at that size stops with an error. The first use
    decodes every clip into `cache_dir` (`convgru.data.video_cache`, `decode_workers` threads);
    later epochs and runs read only the cache. Clips shorter than one window are skipped (counted
    in the log). A file that is not a readable video is an error naming it, or with
    `skip_bad_files` a warning with the count skipped. Pixels are uint8 0..255 mapped to [0, 1].
    """

    def __init__(self, files=None, split=(0.8, 0.1, 0.1), train_files=None, val_files=None, test_files=None,
                 train_pattern: str | None = None, val_pattern: str | None = None, test_pattern: str | None = None,
                 channels: int = 1, image_size: int | list[int] = 64, crop: str = "center", frame_step: int = 1,
                 max_gap_frames: int = MAX_GAP_FRAMES, frames_in: int = 10, frames_out: int = 10,
                 stride: int | None = None, skip_bad_files: bool = False,
                 decode_workers: int | None = None, cache_dir=USER_CACHE, batch_size: int = 16,
                 num_workers: int = 2, pin_memory: bool = True, persistent_workers: bool = True):
        super().__init__(files=files, split=split, train_files=train_files, val_files=val_files, test_files=test_files,
                         layout="NTCHW", frames_in=frames_in, frames_out=frames_out, channels=channels, stride=stride,
                         batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                         persistent_workers=persistent_workers)
        check_options(channels, frame_size(image_size), crop, frame_step, max_gap_frames)
        patterns = dict(zip(SPLITS, (train_pattern, val_pattern, test_pattern)))
        if any(p is not None for p in patterns.values()):
            if files is None:
                raise OptionError("train_pattern", "the split patterns pick from files: expected files (with "
                                  "train_pattern, val_pattern, test_pattern), found files=None")
            for name, pattern in patterns.items():
                if not isinstance(pattern, str):
                    raise OptionError(f"{name}_pattern", "expected a regular expression searched in the file names "
                                      f"(with the other two split patterns), found {pattern!r}")
                try:
                    patterns[name] = re.compile(pattern)
                except re.error as error:
                    raise OptionError(f"{name}_pattern", f"not a regular expression ({error}): {pattern!r}") from None
            self.patterns = patterns
        else:
            self.patterns = None
        if decode_workers is not None and (not isinstance(decode_workers, int) or decode_workers < 1):
            raise OptionError("decode_workers", f"expected null (the usable cores, at most 8) or an integer >= 1, "
                              f"found {decode_workers!r}")
        self.video_options = dict(channels=channels, image_size=list(frame_size(image_size)), crop=crop,
                                  frame_step=frame_step, max_gap_frames=max_gap_frames)
        self.video_files, self.video_split_files = files, dict(self.split_files)
        self.skip_bad_files, self.decode_workers = skip_bad_files, decode_workers
        self.cache_dir = Path(cache_dir)
        self.frame_rate: Fraction | None = None  # the clips' most common frame rate (frames/s, after frame_step)
        self.found: dict[str, list[Path]] | None = None  # the video files of each split option (`_sources`)
        self.usable: dict[Path, Clip] | None = None  # the clips long enough for a window (`_decode`)

    def _sources(self) -> dict[str, list[Path]]:
        """The video files of every split option given ({"files": [...]} or {"train": [...], ...}), each
        file once (`convgru.data.files`: a link to a file already named is left out, with one warning).
        Found once per module, so that prepare_data and setup agree and warn once."""
        if self.found is not None:
            return self.found
        if self.video_files is not None:
            self.found = {"files": unique_files(find_videos(self.video_files, "data.files"), "data.files")[0]}
            return self.found
        for name, value in self.video_split_files.items():
            if value is None:
                raise OptionError(f"data.{name}_files", "expected video files, folders or globs (with the other "
                                  "two splits' files), found None")
        found, _ = unique_split_files({f"data.{name}_files": find_videos(value, f"data.{name}_files")
                                       for name, value in self.video_split_files.items()})
        self.found = {name: found[f"data.{name}_files"] for name in self.video_split_files}
        return self.found

    def _decode(self) -> dict[Path, Clip]:
        """Every source decoded (from the cache when there); bad files raise, or are dropped with a warning.
        Once per module, so that prepare_data and setup warn once."""
        if self.usable is not None:
            return self.usable
        sources = [p for paths in self._sources().values() for p in paths]
        clips = ensure_clips(sources, self.cache_dir, **self.video_options, workers=self.decode_workers)
        bad = [c for c in clips if c.error]
        if bad and not self.skip_bad_files:
            more = f" ({len(bad) - 1} more bad file(s); data.skip_bad_files=true skips them)" if len(bad) > 1 else \
                " (data.skip_bad_files=true skips such files)"
            raise ValueError(bad[0].error + more)
        if bad:
            log.warning("Skipped %d of %d video files that could not be read (data.skip_bad_files=true), e.g. %s",
                        len(bad), len(clips), bad[0].error)
        length = self.frames_in + self.frames_out
        short = [c for c in clips if not c.error and c.frames < length]
        if short:
            log.info("Skipped %d of %d clips shorter than frames_in + frames_out = %d frames (after frame_step=%d), "
                     "e.g. %s (%d frames)", len(short), len(clips), length, self.video_options["frame_step"],
                     shown_path(short[0].source), short[0].frames)
        self.usable = {c.source: c for c in clips if not c.error and c.frames >= length}
        return self.usable

    def _split_paths(self) -> dict[str, list]:
        """The caches of each split's clips, as they are: their sources were made unique (`_sources`), and
        split patterns may share clips on purpose (experiment=kth validates on its test persons)."""
        return self.split_files

    def prepare_data(self) -> None:
        """Decode every clip into the cache unless it is there (once per node)."""
        self._decode()

    def _build(self) -> None:
        sources = self._sources()
        usable = self._decode()
        rates = Counter(clip.rate for clip in usable.values())
        self.frame_rate = rates.most_common(1)[0][0] if rates else None
        if self.video_files is not None:
            files = [p for p in sources["files"] if p in usable]
            if not files:
                raise ValueError(f"data.files: none of the {len(sources['files'])} video file(s) holds "
                                 f"frames_in + frames_out = {self.frames_in + self.frames_out} frames; expected at "
                                 "least one clip that long (lower frames_in, frames_out or frame_step)")
            if self.patterns is None:
                self.files = [str(usable[p].cache) for p in files]
                return super()._build()
            split_files = {name: [p for p in files if pattern.search(p.name)]
                           for name, pattern in self.patterns.items()}
            unmatched = len([p for p in files if not any(p in f for f in split_files.values())])
            if unmatched:
                log.info("%d of %d clips match none of the split patterns and are left out", unmatched, len(files))
            for name, chosen in split_files.items():
                if not chosen:
                    raise OptionError(f"data.{name}_pattern", f"matches none of the {len(files)} usable clip names "
                                      f"(e.g. {shown_path(files[0].name)}); expected a regular expression found in "
                                      f"some, found {self.patterns[name].pattern!r}")
        else:
            split_files = {name: [p for p in paths if p in usable] for name, paths in sources.items()}
            for name, chosen in split_files.items():
                if not chosen:
                    raise ValueError(f"data.{name}_files: no clip of at least frames_in + frames_out = "
                                     f"{self.frames_in + self.frames_out} frames among {len(sources[name])} file(s)")
        self.files = None
        self.split_files = {name: [str(usable[p].cache) for p in paths] for name, paths in split_files.items()}
        super()._build()
