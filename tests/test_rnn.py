"""ConvGRU: nn.GRU equivalence for every option, state layouts, dropout, gradients, errors."""

import itertools

import pytest
import torch
from torch import nn

from convgru import ConvGRU
from gru_reference import convgru_like, gru_ref


def image(t):
    """(..., C) -> (..., C, 1, 1)."""
    return t[..., None, None]


@pytest.mark.parametrize("num_layers,bidirectional,batch_first,with_h0",
                         list(itertools.product([1, 2, 3], [False, True], [False, True],
                                                [False, True])))
def test_kernel1_on_1x1_images_is_nn_gru(num_layers, bidirectional, batch_first, with_h0):
    torch.manual_seed(num_layers)
    gru = nn.GRU(3, 5, num_layers=num_layers, batch_first=batch_first,
                 bidirectional=bidirectional)
    model = convgru_like(gru)
    d = 2 if bidirectional else 1
    x = torch.randn(4, 6, 3)
    h0 = torch.randn(d * num_layers, 4 if batch_first else 6, 5) if with_h0 else None
    out, h_n = gru(x, h0)
    out2, h_n2 = model(image(x), None if h0 is None else image(h0))
    assert out2.shape == (*out.shape, 1, 1) and h_n2.shape == (*h_n.shape, 1, 1)
    torch.testing.assert_close(out2[..., 0, 0], out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_n2[..., 0, 0], h_n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
def test_reset_before_matches_reference_loop(num_layers, bidirectional):
    torch.manual_seed(10)
    gru = nn.GRU(3, 5, num_layers=num_layers, bidirectional=bidirectional)
    model = convgru_like(gru, reset="before")
    x = torch.randn(7, 2, 3)
    h0 = torch.randn((2 if bidirectional else 1) * num_layers, 2, 5)
    out, h_n = model(image(x), image(h0))
    ref_out, ref_h = gru_ref(gru, x, h0, reset="before")
    torch.testing.assert_close(out[..., 0, 0], ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_n[..., 0, 0], ref_h, rtol=1e-5, atol=1e-6)


def test_reference_loop_matches_nn_gru():
    torch.manual_seed(11)
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    x, h0 = torch.randn(5, 2, 3), torch.randn(4, 2, 4)
    out, h_n = gru(x, h0)
    ref_out, ref_h = gru_ref(gru, x, h0)
    torch.testing.assert_close(ref_out, out)
    torch.testing.assert_close(ref_h, h_n)


def test_cells_in_h_n_order():
    model = ConvGRU(2, [3, 4], num_layers=2, bidirectional=True)
    assert (model.input_size, model.hidden_size, model.num_layers) == (2, [3, 4], 2)
    assert model.hidden_sizes == [3, 4] and model.bidirectional
    assert [c.input_size for c in model.cells] == [2, 2, 6, 6]
    assert [c.hidden_size for c in model.cells] == [3, 3, 4, 4]


def test_per_layer_sizes_give_list_state():
    torch.manual_seed(12)
    model = ConvGRU(2, [3, 4], kernel_size=[3, 5], num_layers=2, bidirectional=True,
                    batch_first=True)
    x = torch.randn(2, 5, 2, 8, 6)
    out, h_n = model(x)
    assert out.shape == (2, 5, 8, 8, 6)
    assert [h.shape for h in h_n] == [(2, 2, 3, 8, 6), (2, 2, 4, 8, 6)]
    torch.testing.assert_close(h_n[1][0], out[:, -1, :4])  # forward direction: last step
    torch.testing.assert_close(h_n[1][1], out[:, 0, 4:])  # reverse direction: first step
    out2, _ = model(x, h_n)
    assert not torch.allclose(out2, out)


def test_h0_is_used():
    torch.manual_seed(13)
    model = ConvGRU(2, 3, num_layers=2)
    x = torch.randn(4, 1, 2, 5, 5)
    h0 = torch.randn(2, 1, 3, 5, 5)
    assert not torch.allclose(model(x, h0)[0], model(x)[0])
    torch.testing.assert_close(model(x, torch.zeros_like(h0))[0], model(x)[0])


def test_dropout_between_layers_in_training_only():
    torch.manual_seed(14)
    x = torch.randn(3, 2, 2, 6, 6)
    single = ConvGRU(2, 4, num_layers=1, dropout=0.5).train()
    torch.testing.assert_close(single(x)[0], single(x)[0])  # no dropout after the last layer
    model = ConvGRU(2, 4, num_layers=2, dropout=0.5).train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])


def test_steps_by_unbind_not_indexing():
    model = ConvGRU(2, 3, num_layers=2, bidirectional=True)
    out, _ = model(torch.randn(6, 1, 2, 4, 4, requires_grad=True))
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    assert any(n.startswith("UnbindBackward") for n in names)
    assert not any(n.startswith("SelectBackward") for n in names), names


@pytest.mark.parametrize("reset", ["after", "before"])
def test_gradcheck(reset):
    torch.manual_seed(15)
    model = ConvGRU(2, 3, num_layers=2, bidirectional=True, norm="group", reset=reset).double()
    x = torch.randn(3, 1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h0: model(x, h0)[0], (x, h0), fast_mode=True)


def test_dtype_and_bfloat16_autocast():
    torch.manual_seed(16)
    model = ConvGRU(2, 3, num_layers=2)
    x = torch.randn(4, 2, 2, 8, 8)
    out, h_n = model.double()(x.double())
    assert out.dtype == h_n.dtype == torch.float64
    model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h_n = model(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), model(x)[0], rtol=0, atol=5e-2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_layers=0), "num_layers: expected an int >= 1, got 0"),
    (dict(num_layers=2, hidden_size=[3]), (r"hidden_size: expected an int >= 1, or a list of num_layers=2 "
                                          r"ints >= 1; got \[3\]")),
    (dict(num_layers=2, hidden_size=[3, -1]), r"hidden_size: expected .* got \[3, -1\]"),
    (dict(hidden_size=0), r"hidden_size: expected an int >= 1, or a list of num_layers=1 ints >= 1; got 0"),
    (dict(input_size=0), r"input_size: expected an int >= 1, got 0"),
    (dict(kernel_size=(3, 4)), (r"kernel_size: expected an odd int >= 1 or a pair \(kh, kw\) of them, for "
                               r"'same' padding, or a list of num_layers=1 odd ints .*; got \(3, 4\)")),
    (dict(num_layers=2, dilation=[1, 0]), (r"dilation: expected an int >= 1 or a pair \(dh, dw\) of them, or a "
                                           r"list of num_layers=2 ints >= 1 or pairs \(dh, dw\) of them; "
                                           r"got \[1, 0\]")),
    (dict(norm_eps=-1e-5), r"norm_eps: expected a number > 0, got -1e-05"),
    (dict(num_layers=2, kernel_size=[3, 4]), r"kernel_size: expected .* got \[3, 4\]"),
    (dict(kernel_size="3"), r"kernel_size: expected .* got '3'"),
    (dict(dropout=1.5), r"dropout: expected a number in \[0, 1\], got 1.5"),
    (dict(num_groups=0), r"num_groups: expected an int >= 1, got 0"),
    (dict(norm="layer"), "norm must be one of"),
    (dict(reset="never"), "reset must be one of"),
    (dict(init="orthogonal"), "init must be one of"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvGRU(**{"input_size": 2, "hidden_size": 3, **kwargs})


@pytest.mark.parametrize("kernel_size,num_layers,expected", [
    ((3, 3), 1, [3]), ([5, 5], 1, [5]), ((5, 5), 3, [5, 5, 5]), ([3, 5], 2, [3, 5]),
    ([(3, 3), [5, 5]], 2, [3, 5]), ([5, 5], 2, [5, 5]), ((1, 5), 1, [(1, 5)]), ([1, 5], 1, [(1, 5)]),
    ((1, 5), 2, [(1, 5), (1, 5)]), ([(1, 5), (5, 1)], 2, [(1, 5), (5, 1)]), ((1, 3, 5), 3, [1, 3, 5]),
])
def test_kernel_size_forms(kernel_size, num_layers, expected):
    """A list of num_layers entries is per layer; any other pair (a tuple in particular) is one kernel."""
    model = ConvGRU(2, 3, kernel_size=kernel_size, num_layers=num_layers)
    assert model.kernel_sizes == expected
    assert [c.kernel_size for c in model.cells] == expected
    assert [c.conv_h.kernel_size for c in model.cells] == [(k, k) if isinstance(k, int) else k for k in expected]


def test_dilation_per_layer_and_per_axis():
    model = ConvGRU(2, 3, kernel_size=[(1, 5), 3], num_layers=2, dilation=[(1, 2), 2])
    assert [(c.conv_h.dilation, c.conv_h.padding) for c in model.cells] == [((1, 2), (0, 4)), ((2, 2), (2, 2))]
    assert model(torch.rand(2, 1, 2, 5, 7))[0].shape == (2, 1, 3, 5, 7)
    assert "kernel_size=[(1, 5), 3], num_layers=2, dilation=[(1, 2), 2]" in repr(model)


def test_reset_parameters_extra_repr_and_factory_arguments():
    model = ConvGRU(2, [3, 4], kernel_size=[3, 5], num_layers=2, bidirectional=True, norm="group",
                    init="gru", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert all(c.init == "gru" for c in model.cells)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(5.0)
    model.reset_parameters()
    assert all(c.conv_h.weight.abs().max() <= 1 / c.hidden_size ** 0.5 for c in model.cells)
    assert all((c.norm_n.weight == 1).all() for c in model.cells)
    text = repr(model)
    assert text.startswith("ConvGRU(\n  2, [3, 4], kernel_size=[3, 5], num_layers=2, bidirectional=True, "
                           "norm='group', init='gru'\n"), text
    assert repr(ConvGRU(2, 3)).startswith("ConvGRU(\n  2, 3\n")
    assert ConvGRU(2, 3, device="meta").cells[0].conv_h.weight.device.type == "meta"


def test_bad_inputs():
    model = ConvGRU(2, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"x must be 5-D \(T, B, C, H, W\), got shape \(4, 2, 8, 8\)"):
        model(torch.zeros(4, 2, 8, 8))
    with pytest.raises(ValueError, match=r"x \(T, B, C, H, W\) must have shape \(\*, \*, 2, \*, \*\)"):
        model(torch.zeros(4, 1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 1, 3, 8, 8\), got \(1, 1, 3, 8, 8\)"):
        model(torch.zeros(4, 1, 2, 8, 8), torch.zeros(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"x \(T, B, C, H, W\): expected at least one time step, got T=0 "
                                         r"\(shape \(0, 1, 2, 8, 8\)\)"):
        model(torch.zeros(0, 1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"x \(B, T, C, H, W\): expected at least one time step, got T=0"):
        ConvGRU(2, 3, batch_first=True)(torch.zeros(1, 0, 2, 8, 8))
    with pytest.raises(ValueError, match=r"x and h0 must have the same dtype and device, got x: torch.float32 on "
                                         r"cpu, h0: torch.float64 on cpu"):
        model(torch.zeros(4, 1, 2, 8, 8), torch.zeros(2, 1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x must be on the parameters' device and of their dtype"):
        model(torch.zeros(4, 1, 2, 8, 8, dtype=torch.float64))
    mixed = ConvGRU(2, [3, 4], num_layers=2)
    with pytest.raises(ValueError, match=r"x and h0\[1\] must have the same dtype and device"):
        mixed(torch.zeros(4, 1, 2, 8, 8), [torch.zeros(1, 1, 3, 8, 8), torch.zeros(1, 1, 4, 8, 8).double()])
    with pytest.raises(ValueError, match="h0 must be a list of per-layer"):
        mixed(torch.zeros(4, 1, 2, 8, 8), torch.zeros(2, 1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"h0\[1\] must have shape \(1, 1, 4, 8, 8\)"):
        mixed(torch.zeros(4, 1, 2, 8, 8), [torch.zeros(1, 1, 3, 8, 8)] * 2)


def test_bfloat16_recurrence_stays_close_to_float32_over_20_steps():
    torch.manual_seed(17)
    model = ConvGRU(4, 16, num_layers=2, norm="group", num_groups=4)
    x = torch.rand(20, 2, 4, 8, 8)
    ref, _ = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h_n = model(x)
    assert out.dtype == h_n.dtype == torch.float32  # the state stays float32 under autocast
    error = (out - ref).abs().amax(dim=(1, 2, 3, 4))
    assert error.max() < 5e-2
    assert error[-5:].mean() < 2 * error[:5].mean() + 1e-2  # rounding does not pile up step after step


@pytest.mark.slow
def test_compiled_fullgraph_matches_eager():
    from torch._dynamo.utils import counters

    torch.manual_seed(18)
    model = ConvGRU(2, 4, num_layers=2, bidirectional=True, batch_first=True, norm="group", num_groups=2)
    torch._dynamo.reset()
    counters.clear()
    # aot_eager: dynamo's graph (one, no break, across batch sizes) and autograd's, without inductor's
    # minutes of code generation; inductor compiles the forecaster (test_forecaster) and cells (test_dtypes)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for batch in (2, 3):
        x = torch.randn(batch, 4, 2, 8, 8)
        torch._dynamo.mark_dynamic(x, 0)
        with torch.no_grad():  # the inference graph: quicker to compile (training is tested on the forecaster)
            for got, expected in zip(compiled(x), model(x)):
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1
