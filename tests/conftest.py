"""Shared fixtures for the training, evaluation, export and config tests: tiny composed Hydra configs, tiny
checkpoints, one ONNX export per session; `gpu` tests are skipped without a CUDA device (markers: pyproject.toml;
`pytest -m "not slow"` is the quick loop)."""

import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from hydra import compose, initialize_config_dir

import convgru.training
from convgru.training import ForecastModule, cli
from convgru.training.paths import CONFIG_DIR, register_resolvers

register_resolvers()  # ${project_root:}, which the configs use (the scripts register it when they start)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`-n 2` on 2 cores): one thread per worker and per Python it spawns, so the
    # workers do not oversubscribe the cores (torch's default is one thread per core in every process).
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    torch.set_num_threads(1)
    # Each worker its own inductor cache: two workers compiling at once must not hand each other graphs
    # compiled for other shapes (seen: "cannot determine truth value of Relational" in a compiled run).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"torchinductor_{os.getpid()}")

ROOT = Path(__file__).resolve().parents[1]
CONF = CONFIG_DIR

# A model and data small enough for a CPU test: 32x32 frames, 3 in / 2 out, one digit.
TINY = [
    "data.image_size=32",
    "data.num_digits=1",
    "data.frames_in=3",
    "data.frames_out=2",
    "data.train_size=8",
    "data.val_size=4",
    "data.test_size=4",
    "data.batch_size=4",
    "data.num_workers=0",
    "model.net.hidden_sizes=[4,4]",
    "model.net.stem_channels=4",
    "model.net.kernel_size=3",
    "callbacks.prediction_images.num_sequences=2",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "figures.enabled=false",  # seconds of matplotlib per run; tests/test_figures.py draws them
]
# The nowcast quickstart shrunk for a CPU test: 24 synthetic sequences of 16x16, 3 in / 2 out, a tiny model.
NOWCAST = [
    "experiment=nowcast_quickstart",
    "data.synthetic.num_sequences=24",
    "data.synthetic.image_size=16",
    "data.frames_in=3",
    "data.frames_out=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "model.net.hidden_sizes=[4,4]",
    "model.net.stem_channels=4",
    "callbacks.prediction_images.num_sequences=2",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "figures.enabled=false",
]
# experiment=nowcast shrunk the same way, with the S-PROG and STEPS baselines cheap (2 members, 3 cascade levels).
TINY_NOWCAST = ["experiment=nowcast", *NOWCAST[1:], "model.baselines.steps.members=2",
                "model.baselines.steps.n_cascade_levels=3", "model.baselines.sprog.n_cascade_levels=3"]


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device: skipped without one."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def compose_config(name: str, output_dir: Path, overrides=(), cache_dir: Path | None = None):
    """Compose convgru/conf/<name>.yaml with `overrides`, outputs (and data caches) under `output_dir`; no figures
    (figures.enabled=false: seconds of matplotlib per run) unless `overrides` set figures.enabled=true."""
    paths = cli.quote_non_ascii([f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}/logs",
                                 f"paths.cache_dir={cache_dir or output_dir / 'cache'}", "figures.enabled=false"])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=[*paths, *overrides])


def tiny(name: str, extra=()) -> list[str]:
    """TINY overrides valid for convgru/conf/<name>.yaml (eval has no callbacks group) plus `extra`."""
    keep = [o for o in TINY if name == "train" or not o.startswith("callbacks.")]
    return [*keep, *extra]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One data cache for the whole session, so fixed val/test sets are generated once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, cache_dir):
    """One tiny training run (1 epoch, then test): (output dir, returned metrics, config)."""
    out = tmp_path_factory.mktemp("trained")
    cfg = compose_config("train", out, tiny("train"), cache_dir)
    metrics = convgru.training.train(cfg)
    return out, metrics, cfg


@pytest.fixture(scope="session")
def fields_checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained data=fields checkpoint (t2m, 3 in, 2 out) that records the grid of tests/fields_data.py
    (`fields_data.write_checkpoint`): for predict and eval on NetCDF files without a training run."""
    from fields_data import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("fields_ckpt") / "fields.ckpt")


@pytest.fixture(scope="session")
def nowcast_run(tmp_path_factory, cache_dir):
    """The tiny experiment=nowcast (TINY_NOWCAST: every baseline) trained for an epoch and tested, once per
    session: (output dir, metrics, config, what it printed)."""
    out = tmp_path_factory.mktemp("nowcast")
    cfg = compose_config("train", out, TINY_NOWCAST, cache_dir)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        metrics = convgru.training.train(cfg)
    return out, metrics, cfg, printed.getvalue()


def tiny_checkpoint(path, data=None):
    """A Lightning-style checkpoint of an untrained 2-level ForecastModule (future=2) whose raw
    outputs go above 1; `data` is its data config (None: none, as convgru 0.1.0 wrote)."""
    torch.manual_seed(0)
    module = ForecastModule(net=dict(hidden_sizes=[4, 4], kernel_size=3, stem_channels=4), future=2, data=data)
    with torch.no_grad():
        module.net.head[-1].bias.fill_(1.0)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": "2.6.6", "epoch": 0, "global_step": 0}, path)
    return path


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """A tiny checkpoint (`tiny_checkpoint`, data config: 3 frames in, 8x8) exported by `convgru export CKPT
    model.onnx` (what scripts/export.py runs) once per test run: (checkpoint, model.onnx, what the command
    printed). An export spends ~25 s on an idle core in torch.export's symbolic-shape tracing, so under
    pytest-xdist the first worker to ask writes it, under a lock, in the run's folder, and the others read it."""
    from convgru import commands

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder (pytest-N), above each worker's own (pytest-N/popen-gwK)
    folder = root / "exported_model"
    with FileLock(str(root / "exported_model.lock")):
        if not (folder / "printed.txt").is_file():  # written last: a failed export is tried again
            folder.mkdir(exist_ok=True)
            ckpt = tiny_checkpoint(folder / "tiny_data.ckpt", {"frames_in": 3, "image_size": 8})
            (folder / "model.onnx").unlink(missing_ok=True)
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                commands.run("export", [str(ckpt), str(folder / "model.onnx")])
            (folder / "printed.txt").write_text(printed.getvalue())
    return folder / "tiny_data.ckpt", folder / "model.onnx", (folder / "printed.txt").read_text()
