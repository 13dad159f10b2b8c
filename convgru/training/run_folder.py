"""One run per run folder: a lock held while a run uses its folder, and no run over another's checkpoints.

Two runs started into one folder (a reused `hydra.run.dir`) would mix their checkpoints, TensorBoard
logs and metrics.json. The first run holds an exclusive `flock` on `<folder>/.convgru.lock`, which
records its process id, host and command, until it ends; a second run is refused at once, naming the
first. The operating system drops the lock of a process that dies (killed, power cut), so the next
run takes it over; the lock file itself stays (emptied). Only the launching process (rank 0) locks:
the processes Lightning starts for DDP, and the nodes of a multi-node run, share the folder.
"""

import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from convgru.training.paste import paste_command

LOCK = ".convgru.lock"
HPC_CHECKPOINTS = "hpc_ckpt_*.ckpt"  # what Lightning's SLURM auto-requeue saves in the run folder
_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "RANK")


class RunFolderInUse(ValueError):
    """Another live process is running in this run folder."""


def _is_launcher() -> bool:
    """Whether this process is rank 0 of its run (no rank variable set to anything but 0)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in _RANK_VARIABLES)


class RunLock:
    """Hold `folder`'s lock while a run uses it (`with RunLock(folder): ...`, or acquire / release).

    Raises RunFolderInUse naming the process that holds it. Re-entrant within one process: a lock
    this process already holds (taken by the Hydra callback before the run) is kept, and released by
    whoever took it first.
    """

    held: dict[Path, "RunLock"] = {}

    def __init__(self, folder):
        self.folder = Path(folder).resolve()
        self.path = self.folder / LOCK
        self.fd = None

    def acquire(self) -> "RunLock":
        if not _is_launcher() or self.folder in RunLock.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _record(fd)
            os.close(fd)
            where = "" if record.get("host") in (None, socket.gethostname()) else f" on {record['host']}"
            raise RunFolderInUse(
                f"{self.folder} is in use by another run (process {record.get('pid', '?')}{where}: "
                f"{record.get('command', '?')}); two runs in one folder would mix their checkpoints and logs. Pick "
                "another hydra.run.dir, or wait for that run to end") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": " ".join(sys.argv)}).encode())
        self.fd = fd
        RunLock.held[self.folder] = self
        return self

    def release(self) -> None:
        """Empty the record and drop the lock (the file stays: removing it would let a process that
        opened it just before lock a file no longer in the folder)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None
            RunLock.held.pop(self.folder, None)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _record(fd: int) -> dict:
    """The holder's {pid, host, command} as it wrote them ({} if unreadable, or not yet written)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 65536).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {k: str(v)[:200].encode("ascii", "backslashreplace").decode() for k, v in record.items()
            if k in ("pid", "host", "command")}


def requeued_checkpoint(run_folder) -> Path | None:
    """The checkpoint a requeued SLURM job continues from, or None if `run_folder` is not a requeued run's.

    Lightning's SLURM auto-requeue (SIGUSR1, sent ahead of the time limit with `sbatch --signal=SIGUSR1@90`)
    writes `hpc_ckpt_<n>.ckpt` into the run folder and requeues the job; the SIGTERM that stops it then makes
    `ResumableOnInterrupt` write `checkpoints/last.ckpt`. The requeued job, started in the same folder,
    continues from the newer of the two."""
    folder = Path(run_folder)
    requeue = sorted(folder.glob(HPC_CHECKPOINTS)) if folder.is_dir() else []
    if not requeue:
        return None
    last = folder / "checkpoints" / "last.ckpt"
    return max([*requeue, *([last] if last.is_file() else [])], key=lambda p: p.stat().st_mtime)


def check_fresh(checkpoints, resume: str | None) -> None:
    """Refuse to write a run's checkpoints over those of another run in the same folder (a reused
    hydra.run.dir); resuming from a checkpoint in that folder (or in the run folder above it: a requeued
    SLURM job's) continues its run there."""
    check_fresh_folder(checkpoints.dirpath if checkpoints else None, resume)


def check_fresh_folder(folder, resume: str | None) -> None:
    """`check_fresh` for a checkpoint folder `folder` (None: no checkpoints)."""
    folder = Path(folder) if folder else None
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder and folder.is_dir() else []
    if found and not (resume and Path(resume).resolve().parent in (folder.resolve(), folder.resolve().parent)):
        raise ValueError(
            f"{folder} already holds checkpoints ({', '.join(found)}) that this run would write over: pick another "
            f"hydra.run.dir (by default every run gets a new folder), or continue that run with "
            f"{paste_command(None, [('ckpt_path', str(folder / 'last.ckpt'))])}"
        )
