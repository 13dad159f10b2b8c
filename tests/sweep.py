"""The error sweep's framework: a Case is a bad input a user can reach from the README, run in a
folder of its own, giving the one message the user reads. The cases are listed in the cases_*.py
modules (cases_core.py first) that test_errors.py collects; docs/errors.md is their table.
"""

import gc
import hashlib
import importlib
import io
import os
import subprocess
import sys
from contextlib import nullcontext, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
import torch
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CONF, ROOT, compose_config  # noqa: E402
from convgru.training import ForecastModule, cli, evaluate, train  # noqa: E402
from convgru.training.checkpoint import load_checkpoint  # noqa: E402
from convgru.training.options import instantiate  # noqa: E402
from convgru.training.pipeline import _build  # noqa: E402
from convgru.training.restore import check_model_config  # noqa: E402

DOC = ROOT / "docs" / "errors.md"
FOLDER = "my data é"  # the user's data folder: a space and a non-ASCII character in every path
SHOWN = "/data"  # how the docs show that folder
ARRAYS = ["data=arrays", "data.layout=NTHW", "data.frames_in=3", "data.frames_out=2", "data.num_workers=0",
          "data.batch_size=2"]


def video(n=10, t=12, h=8, w=8, dtype=np.float32, c=None):
    """(N, T, H, W) (or (N, T, C, H, W) with `c`) values in [0, 1)."""
    shape = (n, t, h, w) if c is None else (n, t, c, h, w)
    return (np.random.default_rng(0).random(shape) * (250 if dtype == np.uint8 else 0.99)).astype(dtype)


def with_value(value, n, t, dtype=np.float32):
    """video() with pixel (3, 3) of sequence n, frame t set to `value`."""
    data = video(dtype=dtype)
    data[n, t, 3, 3] = value
    return data


def npy(array):
    return lambda path: np.save(path, array)


def raw(content: bytes):
    return lambda path: path.write_bytes(content)


def truncated(writer):
    def write(path):
        writer(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return write


class Exploit:
    """A pickled object whose loading would run code."""

    def __reduce__(self):
        return print, ("exploit ran",)


@dataclass
class Case:
    """A bad input: `what` the user did, `how` (overrides or a call), and `run(folder)` giving the message."""

    id: str
    what: str
    how: str
    run: Callable[[Path], str]
    expect: str  # regex the message must match
    exact: bool = True  # docs/errors.md shows exactly this message (False: words of Hydra, torch or Lightning,
    # or the version of convgru, which change with versions: docs and message only match `expect`)

    @property
    def slow(self) -> bool:
        """The case starts a process of its own (script_run): seconds, so it runs with -m slow."""
        return getattr(self.run, "slow", False)


def message_of(error: BaseException) -> str:
    """What the user reads: Hydra's own message for composition errors, else the `error: ...` line."""
    if isinstance(error, HydraException) and not cli.is_user_error(error):
        cause = error.__cause__
        return str(error) + (f"\n{cause}" if isinstance(cause, OmegaConfBaseException) else "")
    assert cli.is_user_error(error), f"not reported as a user error: {error!r}"
    return cli.error_message(error)


def raised(action: Callable[[], object]) -> str:
    try:
        action()
    except Exception as error:  # every error: message_of checks it is reported as a user error
        return message_of(error)
    raise AssertionError("no error was raised")


def digest(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_kept(folder: Path, before: dict) -> None:
    """Every file that was in `folder` before is there, unchanged."""
    after = digest(folder)
    assert {p: after.get(p) for p in before} == before, "the user's files changed"


def data_run(files: dict, overrides=(), workers: bool = False) -> Callable[[Path], str]:
    """Write `files` ({name: writer}) into the folder, build data=arrays with `overrides` ({dir} is the
    folder), open every file and read every item (the validation set through a DataLoader worker first
    if `workers`)."""
    def run(folder: Path) -> str:
        for name, write in files.items():
            write(folder / name)
        before = digest(folder)
        arrays = [o.replace("num_workers=0", "num_workers=1") if workers else o for o in ARRAYS]
        options = cli.quote_non_ascii([o.replace("{dir}", str(folder)) for o in [*arrays, *overrides]])

        def build():
            cfg = compose_config("train", folder.parent / "out", options)
            datamodule = instantiate(cfg.data, "data")
            datamodule.setup("fit")
            if workers:
                list(datamodule.val_dataloader())
            for dataset in datamodule.datasets.values():
                [dataset[i] for i in range(len(dataset))]
        message = raised(build)
        if workers:
            with mock.patch("torch.utils.data._utils.MP_STATUS_CHECK_INTERVAL", 0.1):
                gc.collect()  # shut the failed DataLoader's worker down now, not after torch's 5 s join timeout
        assert_kept(folder, before)
        return message
    return run


def config_run(overrides, then: Callable = lambda cfg, module: None) -> Callable[[Path], str]:
    """Compose convgru/conf/train.yaml with `overrides`, build what the pipeline builds, then `then(cfg, module)`."""
    def run(folder: Path) -> str:
        def build():
            options = cli.quote_non_ascii(overrides)
            cfg = compose_config("train", folder.parent / "out", options, folder.parent / "cache")
            _, module, _ = _build(cfg, callbacks=True)
            then(cfg, module)
        return raised(build)
    return run


def pipeline_run(overrides) -> Callable[[Path], str]:
    """convgru.training.train on a composed config: errors before any training step."""
    def run(folder: Path) -> str:
        return raised(lambda: train(compose_config("train", folder.parent / "out", overrides, folder.parent / "cache")))
    return run


def reused_run_dir(folder: Path) -> str:
    """train.py into a run folder whose checkpoints/ holds another run's checkpoints."""
    run = folder / "run"
    (run / "checkpoints").mkdir(parents=True)
    tiny_checkpoint(run / "checkpoints" / "last.ckpt")
    before = digest(folder)
    overrides = ["data.image_size=32", "data.num_digits=1", "data.train_size=8", "data.val_size=4", "data.test_size=4",
                 "data.num_workers=0", "trainer=cpu"]
    message = raised(lambda: train(compose_config("train", run, overrides, folder.parent / "cache")))
    assert_kept(folder, before)
    return message


def reused_sweep_dir(folder: Path) -> str:
    """A sweep (-m) into a hydra.sweep.dir that holds an earlier sweep (Hydra's multirun.yaml, a job's folder with its
    .hydra/ and checkpoints): the sweep's own start (`cli.OutputDirCheck.on_multirun_start`), before any job."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from convgru.training.paste import hydra_value

    sweep = folder / "sweep"
    (sweep / "0+lr-0.001" / ".hydra").mkdir(parents=True)
    (sweep / "0+lr-0.001" / ".hydra" / "config.yaml").write_text("the job's config")
    (sweep / "multirun.yaml").write_text("the sweep's config")
    before = digest(folder)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = GlobalHydra.instance().config_loader().load_configuration(
            "train", [f"hydra.sweep.dir={hydra_value(str(sweep))}", "model.optimizer.lr=0.001,0.002"],
            run_mode=RunMode.MULTIRUN)
        with mock.patch.dict(os.environ, {cli.DEBUG: "1"}):  # the error itself, not the exit that prints it
            message = raised(lambda: cli.OutputDirCheck().on_multirun_start(config))
    assert_kept(folder, before)
    return message


def checkpoint_run(write, action=load_checkpoint) -> Callable[[Path], str]:
    def run(folder: Path) -> str:
        path = folder / "model.ckpt"
        write(path)
        before = digest(folder)
        message = raised(lambda: action(path))
        assert_kept(folder, before)
        return message
    return run


def tiny_checkpoint(path: Path) -> None:
    module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)


def eval_with(override: str) -> Callable[[Path], object]:
    """scripts/eval.py ckpt_path=<path> <override>, in-process."""
    def action(path: Path):
        overrides = cli.quote_non_ascii([f"ckpt_path={path}", override])
        return evaluate(compose_config("eval", path.parent.parent / "eval", overrides), overrides)
    return action


def other_model(path: Path) -> None:
    """Resume from `path` with model.net.hidden_sizes=[8,8]."""
    checkpoint = load_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    check_model_config(checkpoint, {**hparams, "net": {**hparams["net"], "hidden_sizes": [8, 8]}}, path, resume=True)


def newer_format(path: Path) -> None:
    tiny_checkpoint(path)
    torch.save({**torch.load(path, weights_only=True), "convgru": {"format": 99, "version": "9.0"}}, path)


def script_run(args) -> Callable[[Path], str]:
    """Run scripts/train.py with `args` ({dir}: the folder); check it exits with status 2 and one
    `error: ...` line, no traceback; return that line's message."""
    def run(folder: Path) -> str:
        np.save(folder / "a.npy", video())
        (folder / "notes.txt").write_text("the user's notes")
        before = digest(folder)
        command = [sys.executable, "scripts/train.py", *(a.replace("{dir}", str(folder)) for a in args)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop(cli.DEBUG, None)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, result.stderr[-3000:]
        assert_kept(folder, before)
        return lines[0][len("error: "):]
    run.slow = True
    return run


def read_only_run(folder: Path) -> str:
    """A read-only log folder (as root, whom permissions do not stop, os.access is made to say so)."""
    logs = folder / "logs"
    logs.mkdir()
    logs.chmod(0o555)
    try:
        with mock.patch.object(cli.os, "access", lambda *args: False) if os.access(logs, os.W_OK) else nullcontext():
            return raised(lambda: cli.check_writable(logs / "train" / "runs" / "2025-01-01_00-00-00", "hydra.run.dir"))
    finally:
        logs.chmod(0o755)


def cache_run(folder: Path) -> str:
    """A Moving MNIST cache folder inside a file."""
    np.save(folder / "a.npy", video())
    before = digest(folder)
    message = config_run([f"paths.cache_dir={folder / 'a.npy' / 'cache'}"],
                         lambda cfg, module: instantiate(cfg.data, "data").prepare_data())(folder)
    assert_kept(folder, before)
    return message


def predict_run(prepare, patch=None, command: str = "predict") -> callable:
    """scripts/predict.py (or another deploy `command`: export) in-process on the arguments `prepare(folder)`
    writes and returns (with `patch`, a mock.patch, active): its one `error:` line's message; the folder's
    files unchanged."""
    def run(folder: Path) -> str:
        main = importlib.import_module(f"convgru.deploy.{command}").main
        argv = [str(a) for a in prepare(folder)]
        before, stderr = digest(folder), io.StringIO()
        with redirect_stderr(stderr), patch or nullcontext():
            try:
                main(argv)
            except SystemExit as exit:
                assert exit.code == 2, stderr.getvalue()
        lines = [line for line in stderr.getvalue().splitlines() if ": error: " in line]
        assert len(lines) == 1 and "Traceback" not in stderr.getvalue(), stderr.getvalue()
        assert_kept(folder, before)
        assert not [p for p in folder.iterdir() if ".tmp" in p.name], "a temporary file was left"
        return lines[0].split(": error: ", 1)[1]
    return run
