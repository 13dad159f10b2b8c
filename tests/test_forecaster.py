"""EncoderForecaster: shape contract at depths 1-4, structure, gradients, dtypes, compile, errors."""

import pytest
import torch

from convgru import EncoderForecaster


def small(depth, **kwargs):
    """A small network of the given depth."""
    return EncoderForecaster(hidden_sizes=[4 * (i + 1) for i in range(depth)], kernel_size=3,
                             stem_channels=4, **kwargs)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("t_in,future", [(1, 1), (3, 5)])
def test_shape_contract(depth, t_in, future):
    net = small(depth, in_channels=2, out_channels=3)
    x = torch.rand(2, t_in, 2, 16, 8 * 2 ** (depth - 1))
    assert net(x, future).shape == (2, future, 3, 16, 8 * 2 ** (depth - 1))


def test_default_is_shi_moving_mnist_configuration():
    net = EncoderForecaster()
    assert net.hidden_sizes == [64, 96, 96]
    assert [c.hidden_size for c in net.encoder] == [64, 96, 96]
    assert [c.input_size for c in net.encoder] == [16, 64, 96]
    assert [c.input_size for c in net.forecaster] == [64, 96, 0]
    assert net.encoder[0].conv_h.kernel_size == (5, 5)
    assert [d[0].stride for d in net.downsample] == [(1, 1), (2, 2), (2, 2)]


def test_forecast_depends_on_inputs_and_all_parameters_learn():
    torch.manual_seed(0)
    net = small(3, norm=None)
    x = torch.rand(2, 4, 1, 16, 16)
    y = net(x, 3)
    assert not torch.allclose(y, net(torch.rand_like(x), 3))
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("reset", ["after", "before"])
def test_gradcheck(reset):
    torch.manual_seed(1)
    net = EncoderForecaster(hidden_sizes=[2, 2], kernel_size=3, stem_channels=2,
                            reset=reset).double()
    x = torch.rand(1, 2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: net(x, 2), (x,), fast_mode=True)


@pytest.mark.gpu
def test_cuda_matches_the_cpu(monkeypatch):
    """The whole network on a CUDA device (TF32 off): the forecast and streaming as on the CPU."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(6)
    net = small(3)
    x = torch.rand(2, 4, 1, 16, 16)
    want = net(x, 3)
    net.cuda()
    torch.testing.assert_close(net(x.cuda(), 3).cpu(), want, rtol=1e-4, atol=1e-5)
    state = net.init_state(2, 16, 16)
    assert all(h.device.type == "cuda" for h in state)
    for t in range(x.shape[1]):
        state = net.observe(x[:, t].cuda(), state)
    torch.testing.assert_close(net.forecast_from(state, 3).cpu(), want, rtol=1e-4, atol=1e-5)


def test_float64_and_bfloat16_autocast():
    torch.manual_seed(2)
    net = small(2)
    x = torch.rand(2, 3, 1, 16, 16)
    assert net.double()(x.double(), 2).dtype == torch.float64
    net.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x, 2)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), net(x, 2), rtol=0, atol=5e-2)


@pytest.mark.parametrize("x,future,match", [
    (torch.zeros(1, 3, 16, 16), 2, r"x \(B, T_in, C_in, H, W\) must have shape .* got \(1, 3, 16, 16\)"),
    (torch.zeros(1, 3, 2, 16, 16), 2, r"must have shape \(\*, \*, 1, \*, \*\), got \(1, 3, 2, 16, 16\)"),
    (torch.zeros(1, 3, 1, 16, 10), 2, "H and W must be divisible by 4 for 3 levels, got H=16, W=10"),
    (torch.zeros(1, 0, 1, 16, 16), 2, "T_in >= 1 frames, got T_in=0"),
    (torch.zeros(1, 3, 1, 16, 16), 0, "future must be an int >= 1, got 0"),
])
def test_bad_inputs(x, future, match):
    with pytest.raises(ValueError, match=match):
        small(3)(x, future)


def test_empty_hidden_sizes():
    with pytest.raises(ValueError, match="hidden_sizes must name at least one level"):
        EncoderForecaster(hidden_sizes=[])


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden_sizes=[16, -32]), r"hidden_sizes: expected a non-empty list of ints >= 1, got \[16, -32\]"),
    (dict(hidden_sizes=[16, 0]), r"hidden_sizes: expected a non-empty list of ints >= 1, got \[16, 0\]"),
    (dict(hidden_sizes=16), r"hidden_sizes: expected a non-empty list of ints >= 1, got 16"),
    (dict(kernel_size=4), (r"kernel_size: expected an odd int >= 1 or a pair \(kh, kw\) of them, for 'same' "
                          r"padding, got 4")),
    (dict(kernel_size=(3, 4)), r"kernel_size: expected .* got \(3, 4\)"),
    (dict(norm_eps=0), r"norm_eps: expected a number > 0, got 0"),
    (dict(num_groups=0), r"num_groups: expected an int >= 1, got 0"),
    (dict(num_groups=-2), r"num_groups: expected an int >= 1, got -2"),
    (dict(num_groups=3), (r"num_groups: expected a divisor of every entry of hidden_sizes=\[4, 8\] for "
                         r"norm='group', got 3")),
    (dict(in_channels=0), r"in_channels: expected an int >= 1, got 0"),
    (dict(out_channels=-1), r"out_channels: expected an int >= 1, got -1"),
    (dict(stem_channels=0), r"stem_channels: expected an int >= 1, got 0"),
    (dict(norm="batch"), r"norm must be one of \[None, 'group'\], got 'batch'"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderForecaster(**{"hidden_sizes": [4, 8], "kernel_size": 3, "stem_channels": 4, **kwargs})


def test_num_groups_needs_no_divisor_without_norm_and_kernel_pairs_work():
    net = EncoderForecaster(hidden_sizes=[4, 8], kernel_size=(3, 3), stem_channels=4, norm=None, num_groups=3)
    assert net.encoder[0].conv_h.kernel_size == (3, 3)
    assert net(torch.rand(1, 2, 1, 8, 8), 1).shape == (1, 1, 1, 8, 8)
    net = EncoderForecaster(hidden_sizes=[4, 8], kernel_size=[1, 5], stem_channels=4, norm_eps=1e-6)
    assert all(c.conv_h.kernel_size == (1, 5) and c.norm_n.eps == 1e-6 for c in [*net.encoder, *net.forecaster])
    assert net(torch.rand(1, 2, 1, 8, 8), 1).shape == (1, 1, 1, 8, 8)


def test_inputs_and_states_of_another_dtype_or_device():
    net = small(2)
    with pytest.raises(ValueError, match=r"x must be on the parameters' device and of their dtype .* got x: "
                                         r"torch.float64 on cpu, parameters: torch.float32 on cpu"):
        net(torch.rand(1, 2, 1, 8, 8, dtype=torch.float64), 1)
    state = net.init_state(1, 8, 8)
    with pytest.raises(ValueError, match=r"frame and state\[1\] must have the same dtype and device, got frame: "
                                         r"torch.float32 on cpu, state\[1\]: torch.float64 on cpu"):
        net.observe(torch.rand(1, 1, 8, 8), [state[0], state[1].double()])
    with pytest.raises(ValueError, match=r"x and state\[0\] must have the same dtype and device"):
        net.encode(torch.rand(1, 2, 1, 8, 8), [state[0].to("meta"), state[1]])
    with pytest.raises(ValueError, match=r"state\[0\] must be on the parameters' device"):
        net.forecast_from([h.double() for h in state], 1)


@pytest.mark.parametrize("depth", [1, 3])
def test_streaming_equals_forward(depth):
    torch.manual_seed(4)
    net = small(depth, in_channels=2, out_channels=2)
    x = torch.rand(3, 5, 2, 16, 16)
    state = net.init_state(3, 16, 16)
    assert [tuple(h.shape) for h in state] == [(3, 4 * (i + 1), 16 >> i, 16 >> i) for i in range(depth)]
    for t in range(x.shape[1]):
        state = net.observe(x[:, t], state)
    for h, e in zip(state, net.encode(x)):
        torch.testing.assert_close(h, e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.forecast_from(state, 4), net(x, 4), rtol=1e-5, atol=1e-6)


def test_streaming_continues_a_history():
    torch.manual_seed(5)
    net = small(2)
    x = torch.rand(2, 6, 1, 16, 16)
    state = net.encode(x[:, :4])
    for t in (4, 5):
        state = net.observe(x[:, t], state)
    torch.testing.assert_close(net.forecast_from(state, 3), net(x, 3), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda net: net.init_state(2, 16, 10), "H and W must be divisible by 4 for 3 levels, got H=16, W=10"),
    (lambda net: net.observe(torch.zeros(2, 1, 16, 16), [torch.zeros(2, 4, 16, 16)]),
     r"state must be a list of 3 \(B, C, H, W\) tensors"),
    (lambda net: net.observe(torch.zeros(2, 1, 16, 16), net.init_state(1, 16, 16)),
     r"state\[0\] must have shape \(2, 4, 16, 16\), got \(1, 4, 16, 16\)"),
    (lambda net: net.observe(torch.zeros(2, 3, 16, 16), net.init_state(2, 16, 16)),
     r"frame \(B, C_in, H, W\) must have shape \(\*, 1, \*, \*\)"),
    (lambda net: net.forecast_from(net.init_state(2, 16, 16), 0), "future must be an int >= 1, got 0"),
])
def test_streaming_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(small(3))


@pytest.mark.slow
def test_compiled_fullgraph_matches_eager_and_keeps_its_graph_across_batch_sizes():
    from torch._dynamo.utils import counters

    torch.manual_seed(3)
    net = small(2)
    torch._dynamo.reset()
    counters.clear()
    # aot_eager: Dynamo's one full graph for every batch size and AOTAutograd's forward and backward, checked
    # against eager; inductor's code generation for this 2-level network took ~4 min of the suite (its C++ compile
    # of a dynamic-batch graph). Inductor stays on: the compiled training of test_train.py (the forecaster, one
    # level, forward and backward) and test_dtypes.py's compiled cells against float64.
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    for batch in (2, 3, 5):
        x = torch.rand(batch, 3, 1, 16, 16)
        torch._dynamo.mark_dynamic(x, 0)  # what model.compile=true does for every batch
        y = compiled(x, 2)
        torch.testing.assert_close(y, net(x, 2), rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1
    grads = torch.autograd.grad(y.square().sum(), list(net.parameters()))
    expected = torch.autograd.grad(net(x, 2).square().sum(), list(net.parameters()))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
