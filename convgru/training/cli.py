"""Command-line helpers: user errors as one `error: ...` line (exit status 2) instead of a traceback,
and the argument checks shared by scripts/predict.py and scripts/export.py."""

import argparse
import logging
import os
import re
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException, InstantiationException
from hydra.experimental.callback import Callback
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from convgru._checks import shown_path
from convgru.training.checkpoint import CheckpointError
from convgru.training.paste import as_text, hydra_value
from convgru.training.report import say
from convgru.training.run_folder import (
    check_fresh_folder,
    check_fresh_sweep,
    claim,
    fixed_keys,
    requeued_checkpoint,
    resumed_run,
)

USER_ERRORS = (ValueError, OSError, CheckpointError, FloatingPointError, MisconfigurationException,
               OmegaConfBaseException)
DEBUG = "HYDRA_FULL_ERROR"  # =1: raise with the full traceback, as Hydra does for its own errors


def error_message(error: BaseException) -> str:
    """The message of `error` alone: unwrapped from Hydra's instantiation and DataLoader workers."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    message = str(error)
    last = message.rfind(f"\n{type(error).__name__}: ")
    if message.startswith("Caught ") and last >= 0:  # re-raised from a DataLoader worker with its traceback
        return message[last:].split(": ", 1)[1].strip()
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{shown_path(error.filename)}: {error.strerror}"
    return message


def is_user_error(error: BaseException) -> bool:
    """Whether `error` (unwrapped from Hydra's instantiation) is about the user's input."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return isinstance(error, USER_ERRORS)


class TrialFailed(CompactHydraException):
    """A job of a sweep (-m) ended with a user error (a diverged training, a bad value of a swept option) or
    was terminated (SIGTERM, `Terminated`): the sweep records it as failed (Optuna: a FAIL trial with its
    `reason`, in the sweep's summary; Hydra's log: "Failed experiment: <message>") and goes on with its other
    jobs, within hydra.sweeper.max_failure_rate; Hydra prints it as this one line."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason

    def __reduce__(self):  # a job's result travels pickled (submitit launchers): keep the reason
        return type(self), (str(self), self.reason)


class Terminated(SystemExit):
    """SIGTERM stopped a training (its resumable checkpoint saved): the process exits with status 143, as a
    terminated one. In a job of a sweep, `user_errors` makes it a failed trial whose reason starts with
    "terminated" (a preempted SLURM job of one trial), and the sweep goes on with its other trials."""

    def __init__(self, reason: str):
        super().__init__(128 + signal.SIGTERM)
        self.reason = reason


def _in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (-m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def user_errors():
    """Print user errors as `error: <message>` on stderr and exit with status 2; others propagate.
    In a job of a sweep (-m), raise TrialFailed instead, so that the sweep goes on with its other jobs.
    HYDRA_FULL_ERROR=1 lets every error propagate with its traceback."""
    try:
        yield
    except Terminated as stop:
        if not _in_sweep():
            raise
        _trial_failed(stop.reason)
    except Exception as error:
        if os.environ.get(DEBUG) == "1" or not is_user_error(error):
            raise
        if _in_sweep():
            _trial_failed(error_message(error))
        fail(f"{error_message(error)}\n(set {DEBUG}=1 for the traceback)")


def _trial_failed(reason: str):
    """Raise TrialFailed for this job of a sweep, having printed its one line."""
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get().job
    message = f"error: job {job.num} ({job.override_dirname or 'no overrides'}): {reason}"
    say(f"\n{message}", logging.ERROR, sys.stderr)
    raise TrialFailed(message, reason) from None


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on stderr (and the log) and exit with status 2."""
    say(f"\nerror: {message}", logging.ERROR, sys.stderr)
    sys.exit(2)


def check_writable(folder, option: str) -> None:
    """Raise NotADirectoryError / PermissionError naming `option` unless `folder` can be created and written."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    advice = "choose another folder with paths.log_dir=... or hydra.run.dir=..."
    if not existing.is_dir():
        raise NotADirectoryError(f"{option}={folder}: cannot create this output folder, {existing} is a file; "
                                 + advice)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{option}={folder}: cannot write in {existing} (read-only or not yours); " + advice)


class OutputDirCheck(Callback):
    """Hydra callback: stop with `error: ...` before Hydra creates an output folder it cannot write,
    or writes its config and log into the folder of a run that is still going (`RunLock`, held until
    the run ends) or of a finished run (its checkpoints/ folder holds checkpoints, and ckpt_path does
    not continue that run). A generated run folder (not hydra.run.dir=, not a resumed run's) that another
    run of the same name and second holds becomes `<folder>-2`, `-3`... (`run_folder.claim`); so does a generated
    sweep folder (-m), which it names once for all the sweep's jobs (`on_multirun_start`); a sweep folder the user
    named (hydra.sweep.dir=) is refused while another sweep runs in it, or when it holds an earlier sweep
    (`run_folder.check_fresh_sweep`)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        with user_errors():
            check_writable(config.hydra.run.dir, "hydra.run.dir")
            generated = str(OmegaConf.to_container(config.hydra.run)["dir"]).startswith("${run_dir:") and not (
                config.get("task_name") == "train" and resumed_run(config.hydra.overrides.task))
            folder, self.lock = claim(config.hydra.run.dir, named=not generated)
            if str(folder) != config.hydra.run.dir:  # a run of the same name started in the same second
                with read_write(config):
                    config.hydra.run.dir = as_text(str(folder))
            if config.get("task_name") == "train":  # before Hydra writes .hydra/ over a finished run's
                check_fresh_folder(Path(config.hydra.run.dir) / "checkpoints",
                                   config.get("ckpt_path") or requeued_checkpoint(config.hydra.run.dir))

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """A sweep's folder is named by its overrides, which its jobs see with their own values only: resolve it
        here (a generated one claimed as a run's is, `-2` for a sweep of the same name and second, and locked
        until the sweep ends) and pin it for every job, with the keys the jobs share
        (hydra.job.config.override_dirname.exclude_keys), which their folders (`run_folder.job_subdir`) and
        override_dirname leave out, through hydra.overrides.hydra: the overrides a launcher composes each job's
        config with."""
        with user_errors():
            check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
            pinned = []
            if str(OmegaConf.to_container(config.hydra.sweep)["dir"]).startswith("${sweep_dir:"):
                folder, self.lock = claim(config.hydra.sweep.dir, named=False)
                pinned.append(("hydra.sweep.dir", str(folder)))
            else:  # the user's folder: not one that another sweep is running in, or ran in
                check_fresh_sweep(config.hydra.sweep.dir)
                _, self.lock = claim(config.hydra.sweep.dir, named=True)
            exclude = config.hydra.job.config.override_dirname.exclude_keys
            fixed = fixed_keys(config.hydra.overrides.task, OmegaConf.select(config, "hydra.sweeper.params"))
            pinned.append(("hydra.job.config.override_dirname.exclude_keys",
                           list(dict.fromkeys([*exclude, *fixed]))))
            with read_write(config):
                if "hydra.sweep.dir" in dict(pinned):  # as text: a `${` in the folder's name is not interpolated
                    config.hydra.sweep.dir = as_text(dict(pinned)["hydra.sweep.dir"])
                config.hydra.overrides.hydra.extend([f"{key}={hydra_value(value)}" for key, value in pinned])

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self.on_run_end(config)


def quote_non_ascii(overrides: list[str]) -> list[str]:
    """Quote override values that Hydra's grammar refuses only for their non-ASCII characters
    (`data.files=[/données/a.npy]` -> `data.files=["/données/a.npy"]`), so such paths work as typed."""
    parser = OverridesParser.create()
    quoted = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and not value.isascii() and not re.search(r"[\"'\\]", value) and not _parses(parser, override):
            if value.startswith("[") and value.endswith("]"):
                candidate = f"{key}=[{','.join(_quote(item) for item in value[1:-1].split(','))}]"
            else:
                candidate = f"{key}={_quote(value)}"
            override = candidate if _parses(parser, candidate) else override
        quoted.append(override)
    return quoted


def _parses(parser: OverridesParser, override: str) -> bool:
    try:
        parser.parse_overrides([override])
    except Exception:  # Hydra's OverrideParseException and the grammar's own errors
        return False
    return True


def _quote(item: str) -> str:
    return f'"{item.strip()}"'


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return value


def output_error(path: Path, force: bool, option: str) -> str | None:
    """Why `path` (given as `option`) cannot be written, or None: a missing folder, a folder in its
    place, or an existing file without --force."""
    if not path.parent.is_dir():
        return f"{option} {shown_path(path)}: the folder {shown_path(path.parent)} does not exist"
    if path.is_dir():
        return f"{option} {shown_path(path)} is a folder, expected a file name"
    if path.exists() and not force:
        return f"{option} {shown_path(path)} exists; pass --force to replace it"
    return None


def parse_overrides(overrides) -> list:
    """The command line's overrides as Hydra parses them (key, type: change, +add, ++add, ~delete)."""
    return OverridesParser.create().parse_overrides(list(overrides))


def group_choices(overrides, groups) -> list[str]:
    """The overrides that choose an option of one of `groups` (e.g. 'experiment=quickstart')."""
    return [f"{o.key_or_group}={o.value()}" for o in parse_overrides(overrides)
            if o.key_or_group in groups and not o.is_delete()]


def override_keys(overrides, group: str, delete: bool = False) -> list[str]:
    """Keys set (or with `delete`, deleted) below `group`: 'net.kernel_size' from 'model.net.kernel_size=5'."""
    return [o.key_or_group[len(group) + 1:] for o in parse_overrides(overrides)
            if o.key_or_group.startswith(group + ".") and o.is_delete() == delete]
