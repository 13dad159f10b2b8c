"""ConvGRUCell: equations (against nn.GRUCell and the Cho et al. form), gradients, shapes, errors."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convgru import ConvGRUCell
from gru_reference import copy_gru_cell, gru_cell_ref, plain_step


def image(t):
    """(B, C) -> (B, C, 1, 1)."""
    return t[..., None, None]


@pytest.mark.parametrize("reset", ["after", "before"])
def test_kernel1_on_1x1_images_is_gru_cell(reset):
    torch.manual_seed(0)
    ref = nn.GRUCell(5, 7)
    cell = ConvGRUCell(5, 7, kernel_size=1, reset=reset)
    copy_gru_cell(ref, cell)
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    out = cell(image(x), image(h))[..., 0, 0]
    expected = ref(x, h) if reset == "after" else gru_cell_ref(
        x, h, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh, reset="before")
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_reset_modes_differ_and_reference_matches_torch():
    torch.manual_seed(1)
    ref = nn.GRUCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    w = ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh
    torch.testing.assert_close(gru_cell_ref(x, h, *w, reset="after"), ref(x, h))
    assert not torch.allclose(gru_cell_ref(x, h, *w, reset="before"), ref(x, h), atol=1e-4)


def test_no_bias_and_zero_state():
    torch.manual_seed(2)
    ref = nn.GRUCell(3, 4, bias=False)
    cell = ConvGRUCell(3, 4, kernel_size=1, bias=False)
    assert cell.conv_x.bias is None and cell.conv_h.bias is None
    with torch.no_grad():
        cell.conv_x.weight.copy_(image(ref.weight_ih))
        cell.conv_h.weight.copy_(image(ref.weight_hh))
    x = torch.randn(2, 3)
    torch.testing.assert_close(cell(image(x))[..., 0, 0], ref(x))


def test_parameters_are_stacked_r_z_n():
    cell = ConvGRUCell(3, 8, kernel_size=5)
    assert cell.conv_x.weight.shape == (24, 3, 5, 5)
    assert cell.conv_h.weight.shape == (24, 8, 5, 5)
    assert cell.conv_x.bias.shape == cell.conv_h.bias.shape == (24,)


@pytest.mark.parametrize("kernel_size,dilation", [(1, 1), (3, 1), (5, 2), (3, 3)])
def test_same_padding_any_size(kernel_size, dilation):
    cell = ConvGRUCell(2, 3, kernel_size=kernel_size, dilation=dilation)
    for hw in [(1, 1), (7, 5), (16, 9)]:
        assert cell(torch.randn(2, 2, *hw)).shape == (2, 3, *hw)


def test_group_norm_sits_on_each_pre_activation():
    torch.manual_seed(3)
    cell = ConvGRUCell(2, 4, norm="group", num_groups=2)
    assert (cell.norm_rz.num_groups, cell.norm_rz.num_channels) == (4, 8)
    assert (cell.norm_n.num_groups, cell.norm_n.num_channels) == (2, 4)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    x, h = torch.randn(2, 2, 6, 6), torch.randn(2, 4, 6, 6)
    xr, xz, xn = cell.conv_x(x).chunk(3, 1)
    hr, hz, hn = cell.conv_h(h).chunk(3, 1)
    (wr, wz), (br, bz) = cell.norm_rz.weight.chunk(2), cell.norm_rz.bias.chunk(2)
    r = torch.sigmoid(F.group_norm(xr + hr, 2, wr, br))
    z = torch.sigmoid(F.group_norm(xz + hz, 2, wz, bz))
    n = torch.tanh(cell.norm_n(xn + r * hn))
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h)


def test_loads_0_1_0_state_dict_with_separate_r_z_norms():
    torch.manual_seed(8)
    cell = ConvGRUCell(2, 4, norm="group", num_groups=2)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    old = {k: v for k, v in cell.state_dict().items() if not k.startswith("norm_rz")}
    for name in ("weight", "bias"):
        old[f"norm_r.{name}"], old[f"norm_z.{name}"] = getattr(cell.norm_rz, name).detach().chunk(2)
    fresh = ConvGRUCell(2, 4, norm="group", num_groups=2)
    fresh.load_state_dict(old)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(fresh(x), cell(x))


def test_no_input_cell_uses_hidden_path_only():
    torch.manual_seed(4)
    cell = ConvGRUCell(0, 4)
    assert cell.conv_x is None
    h = torch.randn(2, 4, 5, 5)
    hr, hz, hn = cell.conv_h(h).chunk(3, 1)
    r, z = torch.sigmoid(hr), torch.sigmoid(hz)
    n = torch.tanh(r * hn)
    torch.testing.assert_close(cell(None, h), (1 - z) * n + z * h)


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("norm", [None, "group"])
def test_gradcheck(reset, norm):
    torch.manual_seed(5)
    cell = ConvGRUCell(2, 4, kernel_size=3, norm=norm, num_groups=2, reset=reset).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h), fast_mode=True)


def random_cell(*args, seed=0, **kwargs):
    """A float64 cell with weights large enough that every nonlinearity bends."""
    torch.manual_seed(seed)
    cell = ConvGRUCell(*args, **kwargs).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.7)
    return cell


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("norm", [None, "group"])
@pytest.mark.parametrize("input_size", [0, 2])
def test_kernels_dilations_eps_and_context_follow_the_equations(reset, norm, input_size):
    """A (3, 1) kernel dilated (1, 2), eps 1e-3 and a context, full-size or (B, 3C, 1, 1): outputs and
    first-order gradients (the hand-written backward) as plain autograd on the equations gives."""
    cell = random_cell(input_size, 4, kernel_size=(3, 1), dilation=(1, 2), norm=norm, num_groups=2, reset=reset,
                       norm_eps=1e-3)
    assert cell.conv_h.padding == (1, 0)
    x = torch.randn(2, input_size, 5, 4, dtype=torch.float64, requires_grad=True) if input_size else None
    h = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 4, 5, 4, dtype=torch.float64)
    for shape in [(2, 12, 5, 4), (2, 12, 1, 1), (1, 12, 5, 1)]:
        context = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        leaves = [t for t in (x, h, context, *cell.parameters()) if t is not None]
        got, want = cell(x, h, context), plain_step(cell, x, h, context)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        for a, b in zip(torch.autograd.grad((got * probe).sum(), leaves),
                        torch.autograd.grad((want * probe).sum(), leaves)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    if norm:  # the eps is the one used: 1e-5 gives another state
        default = copy.deepcopy(cell)
        default.norm_rz.eps = default.norm_n.eps = 1e-5
        assert (default(x, h, context) - got).abs().max() > 1e-6


@pytest.mark.parametrize("context,match", [
    (torch.zeros(2, 8, 3, 3), r"context must have shape \(B, 3 \* hidden_size, H, W\) = \(2, 12, 3, 3\), gates r, z, n "
                              r"stacked, with any of B, H, W possibly 1 to broadcast; got \(2, 8, 3, 3\)"),
    (torch.zeros(2, 12, 2, 3), r"context must have shape .* got \(2, 12, 2, 3\)"),
    (torch.zeros(3, 12, 1, 1), r"context must have shape .* got \(3, 12, 1, 1\)"),
    (torch.zeros(12, 1, 1), r"context must have shape .* got \(12, 1, 1\)"),
    ([0.0] * 12, r"context must have shape .* got list"),
    (torch.zeros(2, 12, 1, 1, dtype=torch.float64), r"h and context must have the same dtype and device, got h: "
                                                    r"torch.float32 on cpu, context: torch.float64 on cpu"),
])
def test_bad_context(context, match):
    with pytest.raises(ValueError, match=match):
        ConvGRUCell(2, 4)(torch.zeros(2, 2, 3, 3), None, context=context)


@pytest.mark.parametrize("reset", ["after", "before"])
@pytest.mark.parametrize("norm", [None, "group"])
def test_channels_last_stays_channels_last(reset, norm):
    """A channels_last x and h give a channels_last state (and gradients), equal to NCHW's."""
    torch.manual_seed(12)
    cell = ConvGRUCell(3, 8, norm=norm, num_groups=2, reset=reset)
    last = torch.channels_last
    x, h = torch.randn(2, 3, 5, 6), torch.randn(2, 8, 5, 6)
    xl, hl = (t.to(memory_format=last).requires_grad_() for t in (x, h))
    out = cell(xl, cell(xl, hl))
    assert out.is_contiguous(memory_format=last) and cell(xl).is_contiguous(memory_format=last)
    torch.testing.assert_close(out, cell(x, cell(x, h)))
    for loss in (out.square().sum(), F.mse_loss(out, torch.zeros_like(out))):  # mse_loss's gradient is NCHW
        gx, gh = torch.autograd.grad(loss, (xl, hl), retain_graph=True)
        assert gx.is_contiguous(memory_format=last) and gh.is_contiguous(memory_format=last)


def test_state_follows_input_dtype_and_device():
    cell = ConvGRUCell(2, 3).double()
    out = cell(torch.randn(1, 2, 4, 4, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.device.type == "cpu"


def test_bfloat16_autocast():
    torch.manual_seed(6)
    cell = ConvGRUCell(2, 3, norm="group")
    x, h = torch.randn(2, 2, 8, 8), torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cell(x, h)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), cell(x, h), rtol=0, atol=5e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("norm,reset", [(None, "after"), ("group", "before")])
def test_cuda_matches_the_cpu(norm, reset, monkeypatch):
    """On a CUDA device (TF32 off): forward and backward as on the CPU; under bf16 autocast the state
    stays float32 and close."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(8)
    cell = ConvGRUCell(3, 8, norm=norm, num_groups=2, reset=reset)
    gpu = copy.deepcopy(cell).cuda()
    x, h = torch.randn(2, 3, 9, 7, requires_grad=True), torch.randn(2, 8, 9, 7, requires_grad=True)
    xg, hg = x.detach().cuda().requires_grad_(), h.detach().cuda().requires_grad_()
    out, out_gpu = cell(x, h), gpu(xg, hg)
    assert out_gpu.device.type == "cuda"
    torch.testing.assert_close(out_gpu.cpu(), out, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    out_gpu.square().sum().backward()
    for got, expected in zip([xg, hg, *gpu.parameters()], [x, h, *cell.parameters()]):
        torch.testing.assert_close(got.grad.cpu(), expected.grad, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = gpu(xg.detach(), hg.detach())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.cpu(), out.detach(), rtol=0, atol=5e-2)


KERNEL = r"kernel_size: expected an odd int >= 1 or a pair \(kh, kw\) of them, for 'same' padding, got "


@pytest.mark.parametrize("kwargs,match", [
    (dict(norm="batch"), r"norm must be one of \[None, 'group'\], got 'batch'"),
    (dict(reset="middle"), r"reset must be one of \['after', 'before'\], got 'middle'"),
    (dict(init="xavier"), r"init must be one of \['conv', 'gru'\], got 'xavier'"),
    (dict(kernel_size=4), KERNEL + "4"),
    (dict(kernel_size=(4, 4)), KERNEL + r"\(4, 4\)"),
    (dict(kernel_size=(3, 4)), KERNEL + r"\(3, 4\)"),
    (dict(kernel_size=(2, 5)), KERNEL + r"\(2, 5\)"),
    (dict(kernel_size=(3,)), KERNEL + r"\(3,\)"),
    (dict(kernel_size=(3, 3, 3)), KERNEL + r"\(3, 3, 3\)"),
    (dict(kernel_size=3.0), KERNEL + r"3.0"),
    (dict(kernel_size="3"), KERNEL + r"'3'"),
    (dict(kernel_size=True), KERNEL + r"True"),
    (dict(kernel_size=-1), KERNEL + r"-1"),
    (dict(norm="group", num_groups=3), r"num_groups: expected a divisor of hidden_size=4 for norm='group', got 3"),
    (dict(num_groups=0), r"num_groups: expected an int >= 1, got 0"),
    (dict(norm="group", num_groups=-2), r"num_groups: expected an int >= 1, got -2"),
    (dict(hidden_size=0), r"hidden_size: expected an int >= 1, got 0"),
    (dict(hidden_size=4.0), r"hidden_size: expected an int >= 1, got 4.0"),
    (dict(input_size=-1), r"input_size: expected an int >= 0, got -1"),
    (dict(dilation=0), r"dilation: expected an int >= 1 or a pair \(dh, dw\) of them, got 0"),
    (dict(dilation=(1, 0)), r"dilation: expected an int >= 1 or a pair \(dh, dw\) of them, got \(1, 0\)"),
    (dict(norm_eps=0.0), r"norm_eps: expected a number > 0, got 0.0"),
    (dict(norm_eps=float("nan")), r"norm_eps: expected a number > 0, got nan"),
    (dict(norm_eps="1e-5"), r"norm_eps: expected a number > 0, got '1e-5'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvGRUCell(**{"input_size": 2, "hidden_size": 4, **kwargs})


@pytest.mark.parametrize("kernel_size", [5, (5, 5), [5, 5], np.int64(5), torch.tensor(5).item()])
def test_kernel_size_in_the_forms_conv2d_takes(kernel_size):
    torch.manual_seed(9)
    cell = ConvGRUCell(2, 3, kernel_size=kernel_size)
    assert cell.kernel_size == 5 and cell.conv_h.kernel_size == (5, 5) and cell.conv_h.padding == (2, 2)
    reference = ConvGRUCell(2, 3, kernel_size=5)
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(1, 2, 6, 7)
    torch.testing.assert_close(cell(x), reference(x))


@pytest.mark.parametrize("x,h,match", [
    (torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.float64),
     r"x and h must have the same dtype and device, got x: torch.float32 on cpu, h: torch.float64 on cpu"),
    (torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, 4, device="meta"),
     r"x and h must have the same dtype and device, got x: torch.float32 on cpu, h: torch.float32 on meta"),
    (torch.zeros(1, 2, 4, 4, dtype=torch.float64), None,
     (r"x must be on the parameters' device and of their dtype \(outside autocast\), got x: torch.float64 on "
     r"cpu, parameters: torch.float32 on cpu")),
    (torch.zeros(1, 2, 4, 4, device="meta"), None, r"got x: torch.float32 on meta, parameters: torch.float32 on cpu"),
])
def test_dtype_and_device_mismatch_is_one_value_error(x, h, match):
    with pytest.raises(ValueError, match=match):
        ConvGRUCell(2, 4)(x, h)


def test_no_input_cell_checks_the_state_dtype():
    with pytest.raises(ValueError, match=r"h must be on the parameters' device .* got h: torch.float64"):
        ConvGRUCell(0, 4)(None, torch.zeros(1, 4, 2, 2, dtype=torch.float64))


def test_autocast_takes_inputs_of_another_dtype():
    cell = ConvGRUCell(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cell(torch.zeros(1, 2, 4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16
        assert cell(torch.zeros(1, 2, 4, 4, dtype=torch.bfloat16), torch.zeros(1, 4, 4, 4)).dtype == torch.float32


def test_default_init_is_conv2d_and_gru_init_is_nn_gru():
    torch.manual_seed(10)
    cell = ConvGRUCell(3, 16, kernel_size=3, norm="group", num_groups=2)
    bound = 1 / (16 * 9) ** 0.5  # nn.Conv2d: 1/sqrt(fan_in), fan_in = in_channels * k * k
    assert 0.9 * bound < cell.conv_h.weight.abs().max() <= bound
    assert 0.9 * bound < cell.conv_h.bias.abs().max() <= bound
    gru = ConvGRUCell(3, 16, kernel_size=3, norm="group", num_groups=2, init="gru")
    for p in (gru.conv_x.weight, gru.conv_x.bias, gru.conv_h.weight, gru.conv_h.bias):
        assert 0.9 / 4 < p.abs().max() <= 1 / 4  # nn.GRU: 1/sqrt(hidden_size)
    with torch.no_grad():
        for p in gru.parameters():
            p.fill_(7.0)
    gru.reset_parameters()
    assert gru.conv_h.weight.abs().max() <= 1 / 4 and gru.conv_x.bias.abs().max() <= 1 / 4
    assert (gru.norm_rz.weight == 1).all() and (gru.norm_n.bias == 0).all()


def test_gru_init_draws_what_nn_gru_cell_draws():
    """init="gru" with kernel 1: from the same seed, the very values of nn.GRUCell's initialisation."""
    torch.manual_seed(11)
    ref = nn.GRUCell(5, 7)
    cell = ConvGRUCell(5, 7, kernel_size=1, init="gru")
    torch.manual_seed(11)
    cell.reset_parameters()
    for conv_param, name in ((cell.conv_x.weight, "weight_ih"), (cell.conv_h.weight, "weight_hh"),
                             (cell.conv_x.bias, "bias_ih"), (cell.conv_h.bias, "bias_hh")):
        torch.testing.assert_close(conv_param.reshape(getattr(ref, name).shape), getattr(ref, name), rtol=0, atol=0)


def test_extra_repr_lists_non_default_options():
    assert repr(ConvGRUCell(2, 4)).startswith("ConvGRUCell(\n  2, 4\n")
    text = repr(ConvGRUCell(2, 4, kernel_size=(5, 5), bias=False, norm="group", num_groups=2, reset="before",
                            dilation=2, init="gru", norm_eps=1e-6))
    assert ("2, 4, kernel_size=5, bias=False, norm='group', num_groups=2, reset='before', dilation=2, "
            "init='gru', norm_eps=1e-06") in text
    assert "kernel_size=(1, 5), dilation=(2, 1)" in repr(ConvGRUCell(2, 4, kernel_size=[1, 5], dilation=(2, 1)))


def test_device_and_dtype_factory_arguments():
    cell = ConvGRUCell(2, 4, norm="group", device="meta", dtype=torch.float64)
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in cell.parameters())
    cell = ConvGRUCell(2, 4, norm="group", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in cell.parameters())
    assert cell(torch.rand(1, 2, 3, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("x,h,match", [
    (torch.zeros(2, 2, 4), None, r"x must have shape \(\*, 2, \*, \*\), got \(2, 2, 4\)"),
    (torch.zeros(2, 5, 4, 4), None, r"x must have shape \(\*, 2, \*, \*\), got \(2, 5, 4, 4\)"),
    (torch.zeros(2, 2, 4, 4), torch.zeros(2, 4, 4, 5),
     r"h must have shape \(2, 4, 4, 4\), got \(2, 4, 4, 5\)"),
    (None, torch.zeros(2, 4, 4, 4), r"input_size=2: x must be a \(B, input_size, H, W\) tensor"),
])
def test_bad_inputs(x, h, match):
    with pytest.raises(ValueError, match=match):
        ConvGRUCell(2, 4)(x, h)


def test_no_input_cell_rejects_input_and_missing_state():
    cell = ConvGRUCell(0, 4)
    with pytest.raises(ValueError, match="input_size=0: x must be None"):
        cell(torch.zeros(1, 1, 2, 2), torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="needs h"):
        cell(None, None)
