"""Training end to end on tiny configs: every depth, TensorBoard image, resume, bad input."""

import json
import re
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from conftest import ROOT, compose_config, tiny
from convgru.training import CheckpointError, ForecastModule, train
from convgru.training.images import rows_grid
from convgru.training.run_folder import TIME, run_name


@pytest.mark.parametrize("depth", [1, *(pytest.param(d, marks=pytest.mark.slow) for d in (2, 3, 4))])
def test_fast_dev_run_each_depth(tmp_path, cache_dir, depth):
    sizes = ",".join(["4"] * depth)
    overrides = [f"model=convgru{depth}", f"model.net.hidden_sizes=[{sizes}]", "+trainer.fast_dev_run=true"]
    metrics = train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))
    assert {"val/mse", "test/mse", "test/ssim", "test/psnr", "test/mae"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.slow
@pytest.mark.parametrize("options", [["trainer.precision=bf16-mixed"],
                                     ["model.compile=true", "model.net.hidden_sizes=[4]"]], ids=str)
def test_bf16_and_compiled_training_on_the_cpu(tmp_path, cache_dir, options, monkeypatch):
    """model.compile=true through Lightning: one level is enough (test_forecaster.py compares a compiled
    2-level network with eager, forward and backward, across batch sizes). The compile runs dynamo and
    AOT autograd (fullgraph) on the aot_eager backend: inductor's C++ builds (minutes on a 2-core CPU) are
    tested on cells in test_dtypes.py and test_porting.py."""
    compile_module = torch.nn.Module.compile
    backends = []

    def aot_eager(module, **options):
        backends.append("aot_eager")
        return compile_module(module, backend="aot_eager", **options)

    monkeypatch.setattr(torch.nn.Module, "compile", aot_eager)
    overrides = [*options, "trainer.max_steps=3", "+trainer.limit_val_batches=0", "test=false", "data.train_size=4",
                 "trainer.max_epochs=3", "model.scheduler.name=none"]  # three training steps, no validation
    torch._dynamo.reset()  # nothing compiled by the tests before this one in the process (pytest-xdist workers)
    metrics = train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))
    assert torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))
    assert backends == (["aot_eager"] if "model.compile=true" in options else [])


def test_run_writes_checkpoints_and_metrics(trained_run):
    out, metrics, _ = trained_run
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert metrics["val/mse"] > 0 and 0 <= metrics["test/ssim"] <= 1


def test_checkpoint_loads_weights_only(trained_run):
    out, _, _ = trained_run
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["lr_schedulers"] and checkpoint["callbacks"] and checkpoint["optimizer_states"]
    assert type(checkpoint["hyper_parameters"]["net"]) is dict


def test_tensorboard_holds_prediction_image(trained_run):
    out, _, cfg = trained_run
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={IMAGES: 0}).Reload()
    assert events.Tags()["images"] == ["val/predictions"]
    image = events.Images("val/predictions")[-1]
    sequences, size = cfg.callbacks.prediction_images.num_sequences, cfg.data.image_size
    x, y = torch.zeros(sequences, cfg.data.frames_in, 1, size, size), torch.zeros(sequences, cfg.data.frames_out, 1,
                                                                                  size, size)
    assert (image.height, image.width) == tuple(rows_grid(x, y, y).shape[1:])  # labelled rows, frames numbered
    assert "test/mse_per_frame" in events.Tags()["scalars"]
    assert len(events.Scalars("test/mse_per_frame")) == cfg.data.frames_out


@pytest.mark.slow
def test_csv_logger_saves_prediction_pictures(tmp_path, cache_dir):
    train(compose_config("train", tmp_path, tiny("train", ["logger=csv", "test=false"]), cache_dir))
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "csv" / "val_predictions" / "epoch_000.png").stat().st_size > 0


@pytest.mark.slow
def test_resume_continues_from_checkpoint(tmp_path, cache_dir):
    keep_all = ["trainer.max_epochs=2", "test=false", "callbacks.model_checkpoint.save_top_k=-1"]
    train(compose_config("train", tmp_path / "a", tiny("train", keep_all), cache_dir))
    first = torch.load(tmp_path / "a" / "checkpoints" / "epoch_000.ckpt", weights_only=True)
    full = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    resume = [*keep_all, f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'epoch_000.ckpt'}"]
    train(compose_config("train", tmp_path / "b", tiny("train", resume), cache_dir))
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (first["epoch"], resumed["epoch"]) == (0, 1)
    assert resumed["global_step"] == full["global_step"] == 2 * first["global_step"]
    assert not (tmp_path / "b" / "checkpoints" / "epoch_000.ckpt").exists()


def test_resume_with_longer_onecycle_says_what_to_do(trained_run, tmp_path, cache_dir):
    out, _, _ = trained_run
    overrides = [f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=2"]
    with pytest.raises(ValueError, match="OneCycle schedule lasts 2 steps, this run 4"):
        train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))


def test_resume_from_missing_checkpoint_says_so(tmp_path, cache_dir):
    cfg = compose_config("train", tmp_path, tiny("train", [f"ckpt_path={tmp_path / 'nope.ckpt'}"]), cache_dir)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.ckpt"):
        train(cfg)


def test_resume_with_other_model_names_the_difference(trained_run, tmp_path, cache_dir):
    out, _, _ = trained_run
    overrides = [f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", "model.net.hidden_sizes=[8,8]"]
    cfg = compose_config("train", tmp_path, tiny("train", overrides), cache_dir)
    with pytest.raises(CheckpointError, match=r"hidden_sizes: checkpoint \[4, 4\], config \[8, 8\]"):
        train(cfg)


@pytest.mark.parametrize("cause, match", [
    ("data", r"training loss is nan .*\(batch 0\): the batch holds NaN or inf \(inputs: 192 of 192 values\)"),
    ("weights", r"training loss is nan .*the batch is finite, so training diverged: lower model.optimizer.lr"),
])
def test_non_finite_loss_stops_with_message(cause, match):
    module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2)
    x, y = torch.full((1, 3, 1, 8, 8), float("nan") if cause == "data" else 0.5), torch.zeros(1, 2, 1, 8, 8)
    if cause == "weights":
        torch.nn.init.constant_(next(module.parameters()), float("inf"))
    with pytest.raises(FloatingPointError, match=match) as error:
        module.training_step((x, y), 0)
    assert ("lower model.optimizer.lr" in str(error.value)) == (cause == "weights")


def test_non_finite_loss_keeps_earlier_checkpoints(trained_run, tmp_path, cache_dir, monkeypatch):
    out, _, _ = trained_run
    earlier = tmp_path / "checkpoints" / "last.ckpt"
    earlier.parent.mkdir()
    earlier.write_bytes((out / "checkpoints" / "last.ckpt").read_bytes())
    before = earlier.read_bytes()
    monkeypatch.setattr(ForecastModule, "forward", lambda self, x, future=None: torch.full(
        (x.shape[0], 2, *x.shape[2:]), float("inf")))  # a run that diverges
    overrides = [f"ckpt_path={earlier}", "trainer.max_epochs=3", "model.scheduler.name=none"]
    with pytest.raises(FloatingPointError, match="the batch is finite, so training diverged.*Checkpoints saved so far "
                                                 "are kept"):
        train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))
    assert earlier.read_bytes() == before


def test_a_new_run_does_not_write_over_another_runs_checkpoints(trained_run, cache_dir):
    out, _, _ = trained_run
    before = {p: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    with pytest.raises(ValueError, match=r"checkpoints already holds checkpoints \(epoch_000.ckpt, last.ckpt\) that "
                                         r"this run would write over: pick another hydra.run.dir"):
        train(compose_config("train", out, tiny("train"), cache_dir))
    assert {p: p.read_bytes() for p in (out / "checkpoints").iterdir()} == before


@pytest.mark.slow
def test_quickstart_command_runs(tmp_path, cache_dir):
    command = [sys.executable, "scripts/train.py", "experiment=quickstart", *tiny("train"), "trainer.max_epochs=1",
               f"paths.cache_dir={cache_dir}", f"paths.log_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^Checkpoints: .*\(best: epoch_000.ckpt, and last.ckpt\)$", result.stdout, re.M)
    assert re.search(r"^metric +val +test\nmse +[\d.]+ +[\d.]+$", result.stdout, re.M), result.stdout[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()  # what was printed, with Lightning's lines and warnings
    assert "Checkpoints:" in log and "GPU available" in log
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    # the checkpoint alone is enough to evaluate it (the command line only moves the outputs)
    evaluation = [sys.executable, "scripts/eval.py", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
                  f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'eval'}"]
    result = subprocess.run(evaluation, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["mse"] > 0
    assert (tmp_path / "eval" / "predictions.gif").is_file()


@pytest.mark.slow
def test_multirun_sweep(tmp_path, cache_dir):
    """Two jobs in a sweep folder named by what they share (`multiruns/<name>_<time>`), each job's folder by its
    number and the value it was given (tests/test_run_names.py checks the names on composed configs)."""
    command = [sys.executable, "scripts/train.py", "-m", *tiny("train"), "model.optimizer.lr=1e-3,1e-2",
               f"paths.cache_dir={cache_dir}", f"paths.log_dir={tmp_path}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "train" / "multiruns").iterdir()
    shared = run_name({"data": "moving_mnist", "model": "convgru3"}, [*tiny("train"), f"paths.cache_dir={cache_dir}"])
    assert TIME.sub("", sweep.name) == shared and TIME.search(sweep.name) and "lr-" not in shared
    for job in ("0+lr-0.001", "1+lr-0.01"):
        assert "val/mse" in json.loads((sweep / job / "metrics.json").read_text())
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()


def test_the_model_summary_counts_the_flops_of_one_sequence(tmp_path):
    """Lightning's model summary showed FLOPs of 0: a fit gives the module the shape of the data's inputs, whose
    zeros Lightning runs through `forward` under FlopCounterMode, in the module's dtype (bf16-true runs)."""
    from pytorch_lightning.utilities.model_summary import summarize
    from torch.utils.flop_counter import FlopCounterMode

    from convgru.data.moving_mnist_module import MovingMNISTDataModule
    from convgru.training.module import example_shape

    data = MovingMNISTDataModule(image_size=32, frames_in=3, frames_out=2, val_size=2, num_workers=0,
                                 cache_dir=tmp_path)
    data.setup("fit")
    module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2)
    assert module.example_input_array is None and summarize(module, max_depth=1).total_flops == 0  # the 0s
    module.example_shape = example_shape(data)
    assert module.example_shape == (1, 3, 1, 32, 32)
    with FlopCounterMode(display=False) as counter:
        module.net(torch.zeros(1, 3, 1, 32, 32), 2)
    summary = summarize(module, max_depth=1)
    assert summary.total_flops == sum(summary.flop_counts["net"].values()) == counter.get_total_flops() > 0
    assert module.to(torch.bfloat16).example_input_array.dtype == torch.bfloat16


def test_the_summary_shape_comes_from_the_training_set_of_a_fit_without_validation(tmp_path):
    """A fit with trainer.limit_val_batches=0 may have no validation set (data=fields with data.val_time=null, whose
    val_dataloader refuses): the summary's input shape is the training set's first input's, without validation data;
    a set with no first sample to read (empty, or a stream) gives no shape, and the summary no FLOPs."""
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    from convgru.data import FieldDataModule
    from convgru.training.module import example_shape
    from fields_data import write_netcdf

    write_netcdf(tmp_path, 1, days=3)
    data = FieldDataModule(files=[str(tmp_path / "era5_0.nc")], variables=["t2m"], frames_in=3, frames_out=2,
                           train_time=["2000-01-01", "2000-01-03"], num_workers=0, cache_dir=tmp_path)
    data.setup("fit")
    with pytest.raises(ValueError, match="data.val_time"):
        data.val_dataloader()  # what the summary asked for, in a fit that never validates
    assert example_shape(data, validates=False) == (1, 3, 1, 8, 16)

    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(3, 1, 8, 8), torch.zeros(2, 1, 8, 8)

    class Loaders(pl.LightningDataModule):  # a user's data module: a training set alone
        def __init__(self, dataset):
            super().__init__()
            self.dataset = dataset

        def train_dataloader(self):
            return DataLoader(self.dataset)

    inputs = TensorDataset(torch.zeros(2, 3, 1, 8, 8), torch.zeros(2, 2, 1, 8, 8))
    assert example_shape(Loaders(inputs)) == (1, 3, 1, 8, 8)  # no val_dataloader: the training set's
    assert example_shape(Loaders(TensorDataset(torch.zeros(0, 3, 1, 8, 8)))) is None
    assert example_shape(Loaders(Stream())) is None
