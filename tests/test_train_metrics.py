"""Metric conventions, losses, optimizers and schedules of ForecastModule."""

import pytest
import torch

from convgru.training import ForecastModule, FrameMetrics
from convgru.training.optim import build_optimizer, build_scheduler


def test_mse_mae_follow_openstl_convention():
    target = torch.ones(2, 3, 1, 16, 16)
    pred = torch.zeros_like(target)
    pred[:, 1] = 2.0  # clamped to 1: no error on frame 2
    pred[1, 2] = 0.5
    metrics = FrameMetrics(3)
    metrics.update(pred[:1], target[:1])
    metrics.update(pred[1:], target[1:])
    result = metrics.compute()
    # summed over C, H, W (256 pixels), averaged over the 2 sequences
    assert result["mse"].tolist() == pytest.approx([256.0, 0.0, (256 + 64) / 2])
    assert result["mae"].tolist() == pytest.approx([256.0, 0.0, (256 + 128) / 2])
    assert result["ssim"][1] == pytest.approx(1.0)
    assert result["psnr"][0] == pytest.approx(0.0, abs=1e-5)  # MSE per pixel 1 at data range 1
    assert result["psnr"][1] == pytest.approx(100.0, abs=1e-4)  # perfect (after clamping): capped, not inf
    assert all(torch.isfinite(v).all() for v in result.values())


def test_metrics_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, 3, C, H, W\)"):
        FrameMetrics(3).update(torch.zeros(1, 2, 1, 4, 4), torch.zeros(1, 2, 1, 4, 4))


@pytest.mark.parametrize("name", ["none", "onecycle", "cosine"])
def test_schedules(name):
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = build_optimizer(params, {"name": "adamw", "lr": 0.1, "betas": [0.9, 0.99]})
    scheduler = build_scheduler(optimizer, {"name": name}, total_steps=10)
    if name == "none":
        assert scheduler is None
        return
    rates = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert max(rates) <= 0.1 + 1e-9 and rates[-1] < 0.01


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="model.loss must be one of"):
        ForecastModule(net={"hidden_sizes": [4]}, loss="huber")
    with pytest.raises(ValueError, match="model.optimizer.name"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "sgd", "lr": 1})
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "adam", "lr": 1})
    with pytest.raises(ValueError, match="model.scheduler.name=cosine needs a finite number"):
        build_scheduler(optimizer, {"name": "cosine"}, total_steps=float("inf"))


def test_wrong_future_names_both_options():
    module = ForecastModule(net={"hidden_sizes": [4], "kernel_size": 3, "stem_channels": 4}, future=3)
    with pytest.raises(ValueError, match="data.frames_out and model.future"):
        module.training_step((torch.rand(1, 2, 1, 8, 8), torch.rand(1, 2, 1, 8, 8)), 0)


def test_metric_sums_stay_float32_in_a_16_bit_model():
    metrics = FrameMetrics(2).to(torch.bfloat16)
    assert all(getattr(metrics, name).dtype == torch.float32 for name in ("mse", "psnr", "count"))
    pred = torch.full((1, 2, 1, 8, 8), 0.3)
    metrics.update(pred, pred + 0.0123)
    assert metrics.compute()["mse"][0].item() == pytest.approx(64 * 0.0123 ** 2, rel=1e-4)


def test_hparams_tab_has_the_model_settings_and_their_metrics(trained_run):
    """TensorBoard's HPARAMS tab: the hyperparameters with the val and test metrics of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out, metrics, _ = trained_run
    events = EventAccumulator(str(next((out / "tensorboard").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    names = {info.name for info in experiment.hparam_infos}
    assert {"loss", "future", "net/hidden_sizes", "optimizer/lr"} <= names, names
    assert {"val/mse", "test/mse"} <= {info.name.tag for info in experiment.metric_infos}
