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
import re
import socket
import sys
from pathlib import Path

from convgru._checks import shown_name, shown_path
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


def claim(folder, named: bool) -> tuple[Path, RunLock]:
    """Lock a run's folder (`RunLock`): `folder` itself when the user `named` it (hydra.run.dir=, or a resumed
    run's), raising RunFolderInUse if another run holds it; else, for a generated name, the first of `folder`,
    `folder-2`, `folder-3`... that no other run holds or has written in (runs started in the same second whose
    names agree: same command, or names made equal by shortening). Returns (folder, its lock)."""
    folder = Path(folder)
    if not _is_launcher():  # DDP's processes and other nodes share the folder of rank 0, unlocked
        return folder, RunLock(folder)
    for n in range(1, 1000 if not named else 2):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:
            lock = RunLock(candidate).acquire()
        except RunFolderInUse:
            if named:
                raise
            continue
        if named or not any(p.name != LOCK for p in candidate.iterdir()):
            return candidate, lock
        lock.release()  # a run of the same second that has ended: its folder is its own
    raise RunFolderInUse(f"{folder}: 999 runs with this name started in the same second; pick a hydra.run.dir")


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


SWEEP_RESULTS = "optimization_results.yaml"  # hydra-optuna-sweeper's summary in a sweep folder
SWEEP_RECORDS = ("multirun.yaml", SWEEP_RESULTS)  # Hydra's (basic sweeper) and hydra-optuna-sweeper's records


def check_fresh_sweep(folder) -> None:
    """Refuse to start a sweep (-m) in `folder`, a hydra.sweep.dir the user named, that holds an earlier sweep: its
    records (SWEEP_RECORDS) or a job's folder (`<num>+key-value...` with Hydra's .hydra/), which Hydra would write
    over job by job before any job could refuse (`check_fresh_folder` stops a job after Hydra wrote .hydra/ there)."""
    folder = Path(folder)
    found = sorted(p.name for p in folder.iterdir() if p.name in SWEEP_RECORDS or (
        re.fullmatch(r"\d+(\+.*)?", p.name) and (p / ".hydra").is_dir())) if folder.is_dir() else []
    if found:
        raise ValueError(
            f"hydra.sweep.dir={shown_path(folder)} holds an earlier sweep ({', '.join(map(shown_name, found[:4]))}"
            f"{', ...' * (len(found) > 4)}) whose records and jobs' folders this sweep would write over: pick "
            "another hydra.sweep.dir (by default every sweep gets a new folder)")


# --- run names ------------------------------------------------------------------------------

NAME_BYTES = 80  # the name before its time: at most 80 bytes, 100 with `_<time>`
TIME = re.compile(r"_?\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(-\d+)?$")  # the time (and -N, `claim`) ending a run's name
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # a name's characters: typed unquoted in a shell and in Hydra's grammar
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")  # a whole run name's: also the `+` between its parts
_LEFT_OUT = ("hydra.", "hydra/", "paths.", "ckpt_path")  # where a run writes, not what it is


def _word(text: str, unsafe: re.Pattern = _UNSAFE) -> str:
    return unsafe.sub(".", text).strip(".") or "_"


def _value_word(value) -> str:
    """A value written in a run's name: lists and sweeps as their items joined by '.', a path by its
    file name (data.files=[/data/a.npy] -> a.npy), a float to 4 significant digits (an Optuna trial's
    lr=0.0012345678 -> 0.001235, 1e6 -> 1e06: the exact value is in the run's .hydra/ and HPARAMS)."""
    if isinstance(value, (list, tuple)):
        return ".".join(_value_word(v) for v in value)
    if isinstance(value, dict):
        return ".".join(f"{k}.{_value_word(v)}" for k, v in value.items())
    if hasattr(value, "list"):  # a sweep (-m): key=a,b
        return ".".join(_value_word(v) for v in value.list)
    if isinstance(value, float):
        return _word(f"{value:.4g}".replace("e+", "e"))  # 1e+06 -> 1e06: `+` separates a name's parts
    text = str(value)
    return _word(text.rstrip("/").rsplit("/", 1)[-1] if "/" in text else text)


def _parse(overrides) -> list:
    """`overrides` (strings, or hydra.overrides.task as a resolver gets it: a ListConfig) parsed as the user typed them:
    their interpolations unresolved (`x=${oc.env:TOKEN}` names a run `x-oc.env.TOKEN`, never by the variable's value,
    which may not even parse again: a comma, a quote)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    typed = OmegaConf.to_container(overrides, resolve=False) if OmegaConf.is_config(overrides) else overrides
    return OverridesParser.create().parse_overrides([str(o) for o in typed or ()])


def _key_word(key: str) -> str:
    """The last part of an override's key (model.optimizer.lr -> lr, data/aug -> aug), with the part before it
    where the last is a list index (model.net.hidden_sizes.0 -> hidden_sizes.0)."""
    parts = key.replace("/", ".").split(".")
    return _word(".".join(parts[-2:] if len(parts) > 1 and parts[-1].isdigit() else parts[-1:]))


def _words(overrides, skip=()) -> list[str]:
    """Each override (parsed) as `key-value` (`no-key` for a deletion), leaving out the keys in `skip` and
    where the run writes (hydra.*, paths.*, ckpt_path)."""
    return [f"no-{_key_word(o.key_or_group)}" if o.is_delete() else
            f"{_key_word(o.key_or_group)}-{_value_word(o.value())}"
            for o in overrides if o.key_or_group not in skip and not o.key_or_group.startswith(_LEFT_OUT)]


def _fit(base: str, words: list[str], left: int = 0) -> str:
    """`base+word+word...` in at most NAME_BYTES bytes, the words that do not fit (and `left` left out
    before) counted as `+N-more`."""
    name = "+".join([base, *words]) + (f"+{left}-more" if left else "")
    if len(name) <= NAME_BYTES:
        return name
    if not words and not left:  # a long name alone (an evaluated checkpoint's file name): cut, nothing left out
        return base[:NAME_BYTES]
    name = base[:NAME_BYTES - len("+99-more")]
    for i, word in enumerate(words):
        if len(f"{name}+{word}+99-more") > NAME_BYTES:
            return f"{name}+{left + len(words) - i}-more"
        name += f"+{word}"
    return f"{name}+{left}-more"


def run_name(choices, overrides, checkpoint_run: str | None = None) -> str:
    """What a run is, as its folder (and so TensorBoard's run and HPARAMS row) is named before its time:
    the experiment (else the data and the model chosen), or `checkpoint_run` (an evaluation: the name of
    the run its checkpoint comes from), then each override of the command line that differs from it as
    `+key-value` (the last part of the key; lists joined by '.', paths by their file name), leaving out
    where the run writes (hydra.*, paths.*, ckpt_path). Only letters, digits and `._+-`, so that a path
    through it is typed as it is in a shell and in an override; at most NAME_BYTES bytes, overrides that
    do not fit counted as `+N-more`. E.g. `quickstart+max_steps-100`, `moving_mnist-convgru3+lr-0.01`."""
    choices = dict(choices or {})
    if checkpoint_run:
        base, named = _word(checkpoint_run, _UNSAFE_NAME), ()
    elif choices.get("experiment"):
        base, named = _word(str(choices["experiment"])), ("experiment",)
    else:
        base, named = f"{_word(str(choices.get('data')))}-{_word(str(choices.get('model')))}", ("data", "model")
    more = re.search(r"\+(\d+)-more$", base)  # a checkpoint's run name, cut short already
    left, base = (int(more[1]), base[:more.start()]) if more else (0, base)
    return _fit(base, _words(_parse(overrides), named), left)


# --- sweep names (-m): <sweep dir>/<job subdir> ------------------------------------------------

def swept_keys(overrides, params=None) -> set[str]:
    """The keys a sweep varies: its command line's sweeps (`lr=0.1,0.2`, `lr=interval(0.01,1)`) and the keys
    of its sweeper's search space (hydra.sweeper.params: hparams_search=optuna's)."""
    return {o.key_or_group for o in _parse(overrides) if o.is_sweep_override()} | set(params or ())


def fixed_keys(overrides, params=None) -> list[str]:
    """The keys of a sweep's command line that every job of it runs with (those not `swept_keys`): what the
    sweep's folder is named by and its jobs' folders are not."""
    swept = swept_keys(overrides, params)
    return sorted({o.key_or_group for o in _parse(overrides)} - swept)


def sweep_dir(root: str, time: str, choices, overrides, params=None) -> str:
    """`hydra.sweep.dir`: `<root>/<sweep name>_<time>`, the sweep named as a run is (`run_name`) by what all
    its jobs share, its overrides that are not swept; a swept experiment, data or model in the name's first
    part as its values (`-m model=convgru1,convgru2`: `moving_mnist-convgru1.convgru2`). Resolved once, by
    the sweep (`cli.OutputDirCheck` pins it for its jobs, which see their own values only)."""
    parsed = _parse(overrides)
    swept = swept_keys(overrides, params)
    choices = {**dict(choices or {}), **{o.key_or_group: _value_word(o.value()) for o in parsed
                                         if o.key_or_group in swept & {"experiment", "data", "model"}}}
    return f"{root}/{run_name(choices, [o.input_line for o in parsed if o.key_or_group not in swept])}_{time}"


def job_subdir(num, overrides, fixed=()) -> str:
    """`hydra.sweep.subdir`: a job's folder in its sweep's, `<num>+key-value...` by the values of the swept keys
    it runs with (its overrides but those whose key is in `fixed`, `fixed_keys`), e.g. `3+lr-0.002+batch_size-8`;
    at most NAME_BYTES bytes as a run's name."""
    return _fit(str(num), _words(_parse(overrides), set(fixed or ())))


def source_run(folder: Path) -> str:
    """The name an evaluation of a checkpoint of the run in `folder` starts with: its name without the time, or
    for a job of a sweep (`<sweep>_<time>/<num>+key-value...`) the sweep's name and the job's values."""
    job = re.fullmatch(r"\d+((\+.*)?)", folder.name)
    if job and TIME.search(folder.parent.name):
        return TIME.sub("", folder.parent.name) + job[1]
    return TIME.sub("", folder.name)


def _checkpoint(overrides) -> Path | None:
    """The path that `ckpt_path=` among `overrides` gives (the last one), or None; an interpolation in it
    (`ckpt_path=${paths.log_dir}/...`) resolved as the run resolves it, where `overrides` is the config's node."""
    from omegaconf import OmegaConf

    paths = [o.value() for o in _parse(overrides)
             if o.key_or_group == "ckpt_path" and isinstance(o.value(), str)]
    if paths and "${" in paths[-1] and OmegaConf.is_config(overrides):
        paths[-1] = str(OmegaConf.select(overrides._get_root(), "ckpt_path"))
    return Path(paths[-1]).expanduser() if paths else None


def _run_of(checkpoint: Path) -> Path | None:
    """The run folder a run's checkpoint lies in where runs write them: `<run>/checkpoints/x.ckpt`, or
    Lightning's requeue checkpoint `<run>/hpc_ckpt_<n>.ckpt`; None for any other file."""
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    return checkpoint.parent if checkpoint.match(HPC_CHECKPOINTS) else None


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` carries a convgru run's marks: its lock file (`LOCK`, which only convgru writes and
    which stays after the run), Hydra's .hydra/config.yaml and a checkpoints/ folder. Another program's
    output folder (even a Hydra app's, with .hydra/ and checkpoints/) is not one."""
    return ((folder / LOCK).is_file() and (folder / ".hydra" / "config.yaml").is_file()
            and (folder / "checkpoints").is_dir())


def resumed_run(overrides) -> Path | None:
    """The run folder that `ckpt_path=` on a training's command line continues: the folder of a
    checkpoint in `<run>/checkpoints/` (or of Lightning's `<run>/hpc_ckpt_<n>.ckpt`) that carries a
    convgru run's marks (`is_run_folder`); None for a checkpoint from elsewhere (a new run starts from it,
    in a new folder)."""
    checkpoint = _checkpoint(overrides)
    if checkpoint is None or not checkpoint.is_file():
        return None
    folder = _run_of(checkpoint)
    return folder if folder is not None and is_run_folder(folder) else None


def run_dir(root: str, time: str, task: str, choices, overrides) -> str:
    """`hydra.run.dir`: `<root>/<run_name>_<time>`. A
    training whose ckpt_path is a checkpoint of an earlier run continues in that run's folder
    (`resumed_run`); an evaluation is named after the run of its checkpoint (its folder's name without
    the time; a checkpoint outside a run folder: its file name)."""
    if task == "train" and (folder := resumed_run(overrides)) is not None:
        return str(folder)
    checkpoint = _checkpoint(overrides) if task == "eval" else None
    source = None
    if checkpoint is not None:
        source = source_run(checkpoint.parent.parent) if checkpoint.parent.name == "checkpoints" else ""
        source = source or checkpoint.stem
    return f"{root}/{run_name(choices, overrides, source)}_{time}"


def config_subdir(task: str, time: str, overrides) -> str:
    """`hydra.output_subdir`, where Hydra writes the run's config.yaml, hydra.yaml and overrides.yaml: `.hydra`,
    or `.hydra/resumed_<time>` for a training that continues a run in its folder (`resumed_run`), so that the
    run's own records stay as they are, also when the resume is then refused."""
    return f".hydra/resumed_{time}" if task == "train" and resumed_run(overrides) is not None else ".hydra"
