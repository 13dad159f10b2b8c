"""Second derivatives through ConvGRUCell, ConvGRU and EncoderForecaster (gradient penalties, physics-
informed losses): exact (gradgradcheck, nn.GRUCell, a plain-autograd reference), never silently None."""

import pytest
import torch
from torch import nn
from torch.autograd import grad

from convgru import ConvGRU, ConvGRUCell, EncoderForecaster
from gru_reference import copy_gru_cell, gru_cell_ref, plain_step

OPTIONS = [(reset, norm) for reset in ("after", "before") for norm in (None, "group")]


def random_cell(input_size=2, reset="after", norm=None, seed=0, **kwargs):
    """A float64 cell with weights large enough that every nonlinearity bends."""
    torch.manual_seed(seed)
    cell = ConvGRUCell(input_size, 4, norm=norm, num_groups=2, reset=reset, **kwargs).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.7)
    return cell


@pytest.mark.parametrize("reset,norm", OPTIONS)
def test_gradgradcheck_cell(reset, norm):
    cell = random_cell(reset=reset, norm=norm)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(cell, (x, h), fast_mode=True)


@pytest.mark.parametrize("reset,norm", [("after", "group"), ("before", None)])
def test_gradgradcheck_no_input_cell(reset, norm):
    cell = random_cell(0, reset=reset, norm=norm)
    h = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda h: cell(None, h), (h,), fast_mode=True)


@pytest.mark.parametrize("reset,norm", OPTIONS)
def test_gradient_penalty_matches_plain_autograd(reset, norm):
    """WGAN-GP: the parameters' gradients of ||d out / d x||, through the cell and through plain ops
    (a non-square dilated kernel, a GroupNorm eps other than the default, a broadcast context)."""
    cell = random_cell(reset=reset, norm=norm, seed=1, kernel_size=(3, 1), dilation=(1, 2), norm_eps=1e-3)
    x = torch.randn(2, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    context = torch.randn(2, 12, 1, 1, dtype=torch.float64, requires_grad=True)
    results = []
    for step in (lambda x, h: cell(x, h, context), lambda x, h: plain_step(cell, x, h, context)):
        out = step(x, h)
        torch.testing.assert_close(out, plain_step(cell, x, h, context))
        gx, gh = grad(out.square().sum(), (x, h), create_graph=True)
        penalty = (gx.flatten(1).norm(dim=1) - 1).square().mean() + gh.square().sum()
        results.append(grad(penalty, [x, h, context, *cell.parameters()]))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("reset", ["after", "before"])
def test_issue_example_matches_nn_gru_cell(reset):
    """grad(grad(cell(x).sum(), x, create_graph=True)[0].sum(), x) was None; kernel 1 on 1x1 images is
    nn.GRUCell (reset="after") or the plain reference (reset="before")."""
    torch.manual_seed(2)
    ref = nn.GRUCell(3, 5).double()
    cell = ConvGRUCell(3, 5, kernel_size=1, reset=reset).double()
    copy_gru_cell(ref, cell)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    xi = x[..., None, None]
    second = grad(grad(cell(xi).sum(), x, create_graph=True)[0].sum(), x)[0]
    assert second is not None and second.abs().sum() > 0
    h0 = torch.zeros(4, 5, dtype=torch.float64)
    step = (lambda x: ref(x)) if reset == "after" else (
        lambda x: gru_cell_ref(x, h0, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh, reset="before"))
    expected = grad(grad(step(x).sum(), x, create_graph=True)[0].sum(), x)[0]
    torch.testing.assert_close(second, expected)
    # and the central difference of s(x) = sum(d cell(x).sum() / dx), element by element
    def s(x):
        x = x.detach().requires_grad_()
        return grad(cell(x[..., None, None]).sum(), x)[0].sum()

    eps = 1e-6
    numeric = torch.stack([(s(x + eps * e) - s(x - eps * e)) / (2 * eps)
                           for e in torch.eye(x.numel(), dtype=torch.float64).view(-1, *x.shape)]).view_as(x)
    torch.testing.assert_close(second, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reset,norm", OPTIONS)
def test_create_graph_gives_the_first_order_gradients_of_the_lean_backward(reset, norm):
    cell = random_cell(reset=reset, norm=norm, seed=3)
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    inputs = [x, h, *cell.parameters()]
    weight = torch.randn(2, 4, 5, 4, dtype=torch.float64)
    lean = grad((cell(x, h) * weight).sum(), inputs)
    graph = grad((cell(x, h) * weight).sum(), inputs, create_graph=True)
    for a, b in zip(lean, graph):
        torch.testing.assert_close(a, b)
        assert b.requires_grad or not a.any()


def test_gradgradcheck_convgru_and_hessian_vector_product_of_forecaster():
    torch.manual_seed(4)
    model = ConvGRU(1, 2, num_layers=2, norm="group", reset="before").double()
    x = torch.randn(2, 1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: model(x)[0], (x,), fast_mode=True)
    net = EncoderForecaster(hidden_sizes=[2, 2], kernel_size=3, stem_channels=2).double()
    x = torch.rand(1, 2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    g = grad(net(x, 2).square().sum(), x, create_graph=True)[0]
    hvp = grad((g * torch.ones_like(g)).sum(), list(net.parameters()), allow_unused=False)
    assert all(t is not None and torch.isfinite(t).all() for t in hvp)
