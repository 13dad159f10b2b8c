"""One file, one name: data files named more than once (a symbolic link to another, through chains,
relative targets or a linked folder; a hard link; one path listed twice) are read once and belong to
one split, so that no frame of the training set reaches the test set through a link.

Two names are the same file when they resolve to the same device and inode (`os.stat`, links
followed). Byte-identical copies under other names are other files.
"""

import logging
import os
from pathlib import Path

from convgru._checks import shown_path

log = logging.getLogger(__name__)


def _identity(path: Path) -> tuple:
    """(device, inode) of the file `path` names, links followed; the path itself when it cannot be
    read (a missing file or a link loop: the caller's own checks name it)."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return ("path", os.path.abspath(path))
    return (stat.st_dev, stat.st_ino)


def unique_split_files(groups: dict[str, list]) -> tuple[dict[str, list[Path]], list[tuple[str, Path, str, Path]]]:
    """Each group's paths (e.g. {"data.train_files": [...], "data.test_files": [...]}, in the order of the
    splits) without those naming a file already named in it or in an earlier group: a file stays,
    under its first name, in the first group that names it. Returns the groups and the duplicates
    left out as (option, path, option of the first name, first name).

    Logs one warning counting the duplicates (with the first as an example). ValueError naming the
    option when every path of a group names files of earlier groups (a split left with none of its own).
    """
    seen: dict[tuple, tuple[str, Path]] = {}
    kept: dict[str, list[Path]] = {}
    duplicates = []
    for option, paths in groups.items():
        kept[option] = []
        for path in map(Path, paths):
            key = _identity(path)
            if key in seen:
                duplicates.append((option, path, *seen[key]))
            else:
                seen[key] = (option, path)
                kept[option].append(path)
        if paths and not kept[option]:
            _, path, first_option, first = next(d for d in duplicates if d[0] == option)
            raise ValueError(f"{option}: every file it names is already in {first_option} (e.g. {shown_path(path)} is "
                             f"{shown_path(first)}, through a link or listed twice); expected files of its own for "
                             "each split, so that no file is in two")
    if duplicates:
        option, path, first_option, first = duplicates[0]
        where = "" if first_option == option else f"{first_option}: "
        log.warning("%d file name(s) left out that name a file already named (a symbolic or hard link to it, or the "
                    "same path twice): each file is read once, in the first split naming it; e.g. %s: %s is %s%s",
                    len(duplicates), option, shown_path(path), where, shown_path(first))
    return kept, duplicates


def unique_files(paths, option: str) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """`paths` (given by option `option`, e.g. "data.files") without those naming a file already
    named before them, in order; and the (left out, first name) pairs. Logs one warning counting
    them (`unique_split_files`)."""
    kept, duplicates = unique_split_files({option: list(paths)})
    return kept[option], [(path, first) for _, path, _, first in duplicates]
