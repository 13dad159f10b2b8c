"""16-bit and 64-bit models: a module cast to a dtype keeps its state (and output) in that dtype and
computes what float64 computes to that dtype's precision, eager and compiled; autocast keeps float32
states; bf16-true and 16-true training runs through."""

import copy
import math

import pytest
import torch

import convgru.training
from conftest import compose_config, tiny
from convgru import ConvGRU, ConvGRUCell, EncoderForecaster

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
# max |error| against float64 allowed on states in [-1, 1] after a few steps: a few units in the last place
# of the dtype, with room for GroupNorm, which divides by a standard deviation
ATOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 4e-2, torch.float16: 6e-3}
OPTIONS = [(norm, reset) for norm in (None, "group") for reset in ("after", "before")]


def cast(module, dtype):
    return copy.deepcopy(module).to(dtype)


def run_cell(cell, x, steps=3):
    h = None
    for _ in range(steps):
        h = cell(x, h)
    return h


@pytest.mark.parametrize("norm,reset", OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cell_keeps_its_dtype_and_float64_accuracy(dtype, norm, reset):
    torch.manual_seed(0)
    ref = ConvGRUCell(3, 8, norm=norm, num_groups=2, reset=reset).double()
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    cell = cast(ref, dtype)
    out = run_cell(cell, x.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), run_cell(ref, x), rtol=0, atol=ATOL[dtype])
    no_input = cast(ConvGRUCell(0, 8, norm=norm, num_groups=2, reset=reset), dtype)
    assert no_input(None, out).dtype == dtype


@pytest.mark.parametrize("norm,reset", OPTIONS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cell_gradients_in_16_bit(dtype, norm, reset):
    torch.manual_seed(1)
    ref = ConvGRUCell(3, 8, norm=norm, num_groups=2, reset=reset).double()
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    cell = cast(ref, dtype)
    xs = (x.clone().requires_grad_(), x.to(dtype).requires_grad_())
    outs = [run_cell(ref, xs[0]), run_cell(cell, xs[1])]
    grads = [torch.autograd.grad(o.float().square().sum(), [xx, *m.parameters()])
             for o, xx, m in zip(outs, xs, (ref, cell))]
    for expected, got in zip(*grads):
        assert got.dtype == dtype
        scale = expected.abs().max().item() + 1e-3
        torch.testing.assert_close(got.double() / scale, expected / scale, rtol=0, atol=10 * ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_convgru_and_forecaster_keep_their_dtype(dtype):
    torch.manual_seed(2)
    ref = ConvGRU(2, [4, 6], num_layers=2, bidirectional=True, norm="group", num_groups=2).double()
    x = torch.rand(3, 2, 2, 6, 6, dtype=torch.float64)
    out, h_n = cast(ref, dtype)(x.to(dtype))
    assert out.dtype == dtype and all(h.dtype == dtype for h in h_n)
    torch.testing.assert_close(out.double(), ref(x)[0], rtol=0, atol=ATOL[dtype])

    net = EncoderForecaster(hidden_sizes=[4, 8], kernel_size=3, stem_channels=4, num_groups=2).double()
    x = torch.rand(2, 3, 1, 8, 8, dtype=torch.float64)
    low = cast(net, dtype)
    y = low(x.to(dtype), 2)
    assert y.dtype == dtype and all(h.dtype == dtype for h in low.encode(x.to(dtype)))
    expected = net(x, 2)
    scale = expected.abs().max().item()
    torch.testing.assert_close(y.double() / scale, expected / scale, rtol=0, atol=2 * ATOL[dtype])
    state = low.init_state(2, 8, 8)
    assert all(h.dtype == dtype for h in state)
    for frame in x.to(dtype).unbind(1):
        state = low.observe(frame, state)
    assert low.forecast_from(state, 2).dtype == dtype


def test_autocast_keeps_float32_states_and_bf16_convolutions():
    torch.manual_seed(3)
    cell = ConvGRUCell(2, 4, norm="group", num_groups=2, reset="before")
    x = torch.rand(1, 2, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cell.conv_x(x).dtype == torch.bfloat16
        h = cell(x, cell(x))
    assert h.dtype == torch.float32
    net = EncoderForecaster(hidden_sizes=[4, 4], kernel_size=3, stem_channels=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert all(s.dtype == torch.float32 for s in net.encode(torch.rand(1, 2, 1, 8, 8)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype,norm,reset", [
    (torch.bfloat16, "group", "after"), (torch.float16, "group", "before"), (torch.float64, None, "before"),
], ids=str)
def test_compiled_matches_float64(dtype, norm, reset):
    """torch.compile of one cell (a one-layer ConvGRU) against eager float64, for both resets and norms."""
    torch.manual_seed(4)
    ref = ConvGRU(2, 4, num_layers=1, norm=norm, num_groups=2, reset=reset).double()
    x = torch.rand(3, 2, 2, 6, 6, dtype=torch.float64)
    low = cast(ref, dtype)
    torch._dynamo.reset()
    out, h_n = torch.compile(low, fullgraph=True)(x.to(dtype))
    assert out.dtype == h_n.dtype == dtype
    torch.testing.assert_close(out.double(), ref(x)[0], rtol=0, atol=ATOL[dtype])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_16_bit_true_precision_trains(precision, tmp_path, cache_dir):
    """The README's training with 16-bit weights: sanity check, training, validation, test and the
    prediction pictures (float32 inputs cast to the weights' dtype) run, every loss finite."""
    cfg = compose_config("train", tmp_path, tiny("train", [f"trainer.precision={precision}"]), cache_dir)
    metrics = convgru.training.train(cfg)
    scores = {k: v for k, v in metrics.items() if k.endswith(("loss", "mse"))}
    assert {"train/loss", "val/loss", "test/mse"} <= set(scores), metrics
    assert all(math.isfinite(v) for v in scores.values()), metrics
