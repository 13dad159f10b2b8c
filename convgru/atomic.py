"""Atomic file writes: the one way convgru writes a file that someone may read (checkpoints, data
caches, ONNX files, forecasts).

`atomic_write(path)` yields a temporary name beside `path`; what is written there is flushed to
disk and renamed over `path` (os.replace) when the block ends, and removed when it raises. A reader
sees the old file or the new one, never a partial one, and a full disk is one OSError naming the
folder and the bytes needed. Temporary names carry the writer's process id and host
(`<name>.convgru<pid>@<host>.<random>.tmp<suffix>`: the suffix kept for writers that go by it),
so `remove_stale_tmp` can tell the leftovers of a
killed writer from a live writer's file.
"""

import errno
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

STALE_AGE = 24 * 3600  # seconds after which a temporary file of another machine's writer is taken as dead
FULL = (errno.ENOSPC, errno.EDQUOT)
FAILED = (*FULL, errno.EFBIG, errno.EIO)  # errnos of the OSErrors whose message names the file and says it all
_TMP = re.compile(r"\.convgru(?P<pid>\d+)@(?P<host>[\w-]*)\.[\w]+\.tmp(\.\w+)?$")
_OLD_TMP = re.compile(r"^(moving_mnist|synthetic_radar)_.*\.\w{8}\.tmp$")  # cache files of convgru 0.2.0
_OLD_PARTIAL = re.compile(r"^\..+\.partial$")  # checkpoint files of convgru 0.2.0 (a killed writer's)


def size_text(size: int) -> str:
    """`size` bytes as people read it: '1.5 GB' (powers of 1000), '512 bytes'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def free_disk(folder) -> int | None:
    """Free bytes on the file system of `folder` (or of its nearest existing parent), None if unknown."""
    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def disk_full_error(what: str, path: Path, needed: int, free: int | None, advice: str) -> OSError:
    """An OSError (ENOSPC) that the command line prints as one line: what, the folder, the bytes."""
    path = Path(path)
    free_text = "" if free is None else f", {_bytes(free)} free"
    error = OSError(f"cannot write the {what} {path.name} in {path.parent}: not enough disk space (it needs "
                    f"{_bytes(needed)}{free_text}); {advice}")
    error.errno = errno.ENOSPC
    return error


# what writers that pass no errno on say when the disk or the file size limit stops them: netCDF4 "NetCDF: HDF error"
# (HDF5 failed), the system's words for the errno (netCDF-3 files: nc_strerror), HDF5's "errno = 28" (h5py, h5netcdf)
_STOPPED = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_STOPPED_WORDS = re.compile("|".join(["NetCDF: HDF error", *(re.escape(os.strerror(n)) for n in _STOPPED),
                                      *(rf"errno = {n}\b" for n in _STOPPED)]))


def write_stopped(error: BaseException) -> bool:
    """Whether a writer library's `error` says that a full disk, a quota or the file size limit (`ulimit -f`)
    may have stopped the write: an OSError of ENOSPC, EDQUOT or EFBIG, or the words of `_STOPPED_WORDS`."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno in _STOPPED
    return bool(_STOPPED_WORDS.search(str(error)))


def failed_write_error(what: str, path: Path, needed: int, cause: str) -> OSError:
    """An OSError for a writer (a library such as netCDF4 / HDF5) that failed without saying why, `cause`
    its words: a full disk (ENOSPC) when the folder lacks `needed` bytes, the file size limit (EFBIG,
    `ulimit -f`) when it is below them, else EIO naming both as what may have happened."""
    path, free = Path(path), free_disk(Path(path).parent)
    if free is not None and needed and needed > free:
        return disk_full_error(what, path, needed, free, "free some space there or write to another disk")
    try:
        import resource  # POSIX only
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = None if limit == resource.RLIM_INFINITY else limit
    except ImportError:
        limit = None
    if limit is not None and (not needed or needed > limit):
        error = OSError(f"cannot write the {what} {path.name} in {path.parent}: it needs {_bytes(needed)}, the file "
                        f"size limit (ulimit -f) is {_bytes(limit)} ({cause}); raise the limit or write less")
        error.errno = errno.EFBIG
        return error
    error = OSError(f"cannot write the {what} {path.name} in {path.parent}: the writer failed ({cause}): a full disk "
                    f"or a file size limit (ulimit -f)? It needs {_bytes(needed)}"
                    f"{'' if free is None else f', {_bytes(free)} free'}")
    error.errno = errno.EIO
    return error


def _bytes(size: int) -> str:
    return f"{size} bytes" + (f" ({size_text(size)})" if size >= 1000 else "")


def _host() -> str:
    return re.sub(r"[^\w-]", "_", socket.gethostname())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process
        return True
    return True


def remove_stale_tmp(folder) -> list[Path]:
    """Remove the temporary files that dead writers left in `folder`: those of this machine whose
    process is gone, and any older than STALE_AGE (another machine's, or of convgru 0.2.0);
    returns them. Files of live writers are kept."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now, host = time.time(), _host()
    for entry in entries:
        match = _TMP.search(entry.name)
        old_style = _OLD_TMP.match(entry.name) or _OLD_PARTIAL.match(entry.name)
        if not (match or old_style) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AGE
            dead = match is not None and match["host"] == host and not _alive(int(match["pid"]))
            if old or dead:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # another process removed it first, or it is not ours to remove
            continue
    return removed


@contextmanager
def atomic_write(path, what: str = "file", needed: int = 0,
                 advice: str = "free some space there or write to another disk"):
    """Yield a temporary path beside `path` to write; on success flush it to disk, give it the usual
    permissions and rename it over `path`; on any error remove it and leave `path` as it was.

    `needed` (bytes, if known) is checked against the free disk space first. A full disk, then or
    while writing, raises `disk_full_error` naming `what`, the folder and the bytes (with `advice`).
    Leftovers of dead writers in the folder are removed first (`remove_stale_tmp`).
    """
    path = Path(path)
    remove_stale_tmp(path.parent)
    free = free_disk(path.parent)
    if needed and free is not None and needed > free:
        raise disk_full_error(what, path, needed, free, advice)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.convgru{os.getpid()}@{_host()}.",
                                   suffix=f".tmp{path.suffix}")
    except OSError as error:
        if error.errno in FULL:
            raise disk_full_error(what, path, needed, free, advice) from error
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        if error.errno in FULL:
            raise disk_full_error(what, path, needed or _size(tmp), free_disk(path.parent),
                                  advice) from error
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
