"""One run per run folder: a lock held while a run uses its folder, and no run over another's checkpoints.

Two runs started into one folder (a reused `hydra.run.dir`) would mix their checkpoints, TensorBoard
logs and metrics.json. The first run holds `<folder>/.convgru.lock` (its process id, host and
command) until it ends; a second run is refused at once, naming the first. A lock whose process no
longer exists on this host (a killed run) is taken over. Only the launching process (rank 0) locks:
the processes Lightning starts for DDP, and the nodes of a multi-node run, share the folder.
"""

import atexit
import json
import os
import socket
import sys
from pathlib import Path

LOCK = ".convgru.lock"
_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "RANK")


class RunFolderInUse(ValueError):
    """Another live process is running in this run folder."""


def _is_launcher() -> bool:
    """Whether this process is rank 0 of its run (no rank variable set to anything but 0)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in _RANK_VARIABLES)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


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
        self.owner = False

    def acquire(self) -> "RunLock":
        if not _is_launcher() or self.folder in RunLock.held:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}
        for _ in range(2):  # the second try after taking over a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_or_refuse()
                continue
            with os.fdopen(fd, "w") as file:
                json.dump(record, file)
            self.owner = True
            RunLock.held[self.folder] = self
            atexit.register(self.release)  # also when the run ends by an exception or sys.exit
            return self
        raise RunFolderInUse(f"{self.folder}: could not take the run folder's lock {self.path}; another run keeps "
                             "starting in it. Pick another hydra.run.dir")

    def _take_over_or_refuse(self) -> None:
        """Remove a stale lock (its process is gone); raise RunFolderInUse for a live one."""
        try:
            record = json.loads(self.path.read_text())
            pid, host = int(record["pid"]), str(record.get("host", ""))
        except FileNotFoundError:
            return  # released meanwhile
        except (ValueError, KeyError, TypeError, OSError):
            record, pid, host = {}, None, ""  # unreadable: left by a process killed while writing it
        if pid is not None and (host != socket.gethostname() or _alive(pid)):
            where = "" if host == socket.gethostname() else f" on {host}"
            raise RunFolderInUse(
                f"{self.folder} is in use by another run (process {pid}{where}: {record.get('command', '?')}); "
                "two runs in one folder would mix their checkpoints and logs. Pick another hydra.run.dir, or wait "
                f"for that run to end (if it is gone, delete {self.path})")
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self.owner:
            self.path.unlink(missing_ok=True)
            RunLock.held.pop(self.folder, None)
            self.owner = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_fresh(checkpoints, resume: str | None) -> None:
    """Refuse to write a run's checkpoints over those of another run in the same folder (a reused
    hydra.run.dir); resuming from a checkpoint in that folder continues its run there."""
    folder = Path(checkpoints.dirpath) if checkpoints and checkpoints.dirpath else None
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder and folder.is_dir() else []
    if found and not (resume and Path(resume).resolve().parent == folder.resolve()):
        raise ValueError(
            f"{folder} already holds checkpoints ({', '.join(found)}) that this run would write over: pick another "
            f"hydra.run.dir (by default every run gets a new folder), or continue that run with "
            f"ckpt_path={folder / 'last.ckpt'}"
        )
