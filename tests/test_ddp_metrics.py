"""Validation and test scores under DDP equal one process's: every sample of the set is scored exactly once
whatever the number of processes (Lightning's DistributedSampler pads the set by repeating samples; the module
trims them, `UnpaddedShard`), and every metric state is summed over the ranks.

The shards are simulated in one process: each rank's module scores what DistributedSampler gives it, then the
states are reduced over the ranks with each state's own reduction, as torchmetrics' sync does."""

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_sum

from convgru.training import ForecastModule
from convgru.training.fields import FieldTestScores
from convgru.training.metrics import UnpaddedShard

H = W = 8
THRESHOLDS = [0.3, 0.6]


class Fade(torch.nn.Module):
    """A cheap stand-in for the network: the last input frame, fading (the scores are under test, not the net)."""

    def forward(self, x: torch.Tensor, future: int) -> torch.Tensor:
        return torch.cat([x[:, -1:] * (1 - 0.2 * t) + 0.1 for t in range(future)], dim=1)

ROWS = 4  # rows of the climatology's table (days of year and hours): each target's row is data


def module(future: int) -> ForecastModule:
    torch.manual_seed(0)
    made = ForecastModule(net={"hidden_sizes": [4], "kernel_size": 3, "stem_channels": 4}, future=future,
                          thresholds=THRESHOLDS, fss_scales=[1, 3], csi_pool_sizes=[2], baselines=["persistence"])
    made.field_scores = FieldTestScores({"names": ["t2m"], "units": ["K"], "height": H, "mean": [280.0], "std": [5.0],
                                         "latitudes": torch.linspace(-60, 60, H).numpy(), "lead_times": [6.0] * future,
                                         "lead_unit": "h",
                                         "climatology": torch.rand(ROWS, 1, H, W).numpy()}, future)
    made.net = Fade()
    return made.eval()


def data(n: int, future: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(n)
    return TensorDataset(torch.rand(n, 3, 1, H, W, generator=generator),
                         torch.rand(n, future, 1, H, W, generator=generator),
                         torch.randint(ROWS, (n, future), generator=generator))  # the climatology's rows


def metrics(model: ForecastModule) -> dict[str, Metric]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Metric)}


def scored_states(model: ForecastModule, loader: DataLoader) -> dict[tuple[str, str], torch.Tensor]:
    """The metric states of `model` after a validation and a test epoch over `loader` (as the module's hooks and
    steps run them, without a trainer)."""
    for metric in metrics(model).values():
        metric.reset()
    with torch.no_grad():
        for step in (model.validation_step, model.test_step):
            model.shard = UnpaddedShard(loader)
            for i, batch in enumerate(loader):
                step(batch, i)
    return {(name, state): getattr(m, state).clone() for name, m in metrics(model).items() for state in m._defaults}


def reduced(model: ForecastModule, ranks: list[dict]) -> ForecastModule:
    """`model` holding the states of `ranks` reduced with each state's reduction, as torchmetrics' sync does."""
    for name, metric in metrics(model).items():
        for state, reduce in metric._reductions.items():
            assert reduce is dim_zero_sum, f"{name}.{state} is not summed over ranks"
            setattr(metric, state, reduce(torch.stack([r[name, state] for r in ranks])))
    return model


def results(model: ForecastModule) -> dict[str, torch.Tensor]:
    summary, per_frame = model.test_results()
    val = {f"val/{k}": v for k, v in model.val_metrics.compute().items()}
    return {**summary, **{f"{k}_per_frame": v for k, v in per_frame.items()}, **val,
            "val/loss": model.val_loss.compute(), "nonfinite": model.nonfinite.compute().float()}


@pytest.mark.parametrize("n,batch,future", [(5, 2, 2), (3, 4, 1)])
@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")  # a rank that scored nothing
def test_scores_of_any_world_size_equal_one_process(n, batch, future):
    """World sizes 1 to 7, sets of 5 and 3 sequences (fewer than the processes: ranks that score nothing),
    with one lead time and two."""
    dataset, model = data(n, future), module(future)
    expected = results(reduced(model, [scored_states(model, DataLoader(dataset, batch_size=batch))]))
    assert expected["mse_per_frame"].shape == (future,)
    for world in range(1, 8):
        samplers = [DistributedSampler(dataset, world, rank, shuffle=False) for rank in range(world)]
        loaders = [DataLoader(dataset, batch_size=batch, sampler=sampler) for sampler in samplers]
        padded = sum(len(loader.sampler) for loader in loaders)
        assert padded == n + (-n) % world  # what Lightning's sampler gives the ranks: the padding repeats samples
        merged = reduced(model, [scored_states(model, loader) for loader in loaders])
        assert merged.test_metrics.count.tolist() == [n] * future  # every sample scored once
        assert merged.val_metrics.count.tolist() == [n] * future
        assert int(merged.skill["test"].counts[0, 0].sum()) == n * H * W
        got = results(merged)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, equal_nan=True,
                                       msg=f"{key}, world size {world}")


def test_one_process_loader_is_left_as_it_is():
    x = torch.zeros(3, 1)
    assert UnpaddedShard(DataLoader(TensorDataset(x, x))).trim((x, x)) == (x, x)
    shard = UnpaddedShard([DataLoader(TensorDataset(x, x), sampler=DistributedSampler(x, 2, 1, shuffle=False))])
    assert shard.left == 1 and [len(shard.trim((x[:2], x[:2]))[0]) for _ in range(2)] == [1, 0]
