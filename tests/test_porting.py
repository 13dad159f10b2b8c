"""The recipes of docs/porting.md: eight public hand-written ConvGRUs, each written here from its
paper's or project's equations in a few lines, replaced by ConvGRUCell with the project's weights
mapped through convgru's porting API; outputs and gradients (inputs, state, the project's own
weights, context) agree in float64 to 1e-10 over several steps. Each substituted step also traces
with torch.compile(fullgraph=True) (the eager backend here; one inductor compile is marked slow)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from convgru import ConvGRUCell
from convgru.porting import concat_state_dict, gate_context, load_concat_weights

B, X, C, H, W, STEPS = 2, 3, 4, 5, 6, 3
TOL = 1e-10
sigmoid, tanh = torch.sigmoid, torch.tanh


def conv(cin: int, cout: int, kernel=3) -> nn.Conv2d:
    """A 'same'-padded convolution as the projects write them, in float64."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Conv2d(cin, cout, k, padding=(k[0] // 2, k[1] // 2)).double()


def group_norm(channels: int, groups: int = 1, eps: float = 1e-5) -> nn.GroupNorm:
    norm = nn.GroupNorm(groups, channels, eps).double()
    with torch.no_grad():  # trained affine terms, not the identity of a fresh norm
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


def cell_step(cell: ConvGRUCell, weights: dict):
    """A step of `cell` whose parameters are concat_state_dict(**weights), recomputed each call from
    the project's weights (so gradients reach them)."""
    def step(x, h, context=None):
        return functional_call(cell, concat_state_dict(**weights), (x, h), {"context": context})
    return step


def check_same(project_step, convgru_step, params, channels=C, size=(H, W), batch=B, inputs=X, extra=()):
    """Run both steps STEPS times from random x_t, h_0; assert equal states and gradients of a
    random functional of them w.r.t. x_t, h_0, the project's parameters and `extra` tensors."""
    torch.manual_seed(0)
    xs = [torch.randn(batch, inputs, *size, dtype=torch.float64, requires_grad=True) for _ in range(STEPS)]
    h0 = torch.randn(batch, channels, *size, dtype=torch.float64, requires_grad=True)
    probes = [torch.randn(batch, channels, *size, dtype=torch.float64) for _ in range(STEPS)]
    leaves = [*xs, h0, *params, *extra]
    results = []
    for step in (project_step, convgru_step):
        h, states = h0, []
        for x in xs:
            h = step(x, h)
            states.append(h)
        loss = sum((s * p).sum() for s, p in zip(states, probes))
        results.append((states, torch.autograd.grad(loss, leaves)))
    (want, want_grads), (got, got_grads) = results
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    return xs[0], h0


def compiles(step, *args) -> None:
    """`step` traces as one graph (torch.compile fullgraph=True raises on a graph break)."""
    torch._dynamo.reset()
    compiled = torch.compile(step, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(*args), step(*args), rtol=0, atol=TOL)


# --- RAFT (Teed & Deng 2020), core/update.py: gates over [h, x], h' = (1 - z) h + z q ------------------------

class RaftGRU(nn.Module):
    """RAFT's ConvGRU (kernel 3) or one half of its SepConvGRU ((1, 5) or (5, 1)); RAFT-Stereo adds
    context terms cz, cr, cq to the pre-activations."""

    def __init__(self, kernel=3):
        super().__init__()
        self.convz, self.convr, self.convq = (conv(C + X, C, kernel) for _ in range(3))

    def forward(self, h, x, cz=0, cr=0, cq=0):
        hx = torch.cat([h, x], 1)
        z = sigmoid(self.convz(hx) + cz)
        r = sigmoid(self.convr(hx) + cr)
        q = tanh(self.convq(torch.cat([r * h, x], 1)) + cq)
        return (1 - z) * h + z * q


def raft_weights(gru: RaftGRU) -> dict:
    return dict(order="hx", z_keeps="candidate", conv_r=gru.convr, conv_z=gru.convz, conv_n=gru.convq)


def test_raft_convgru():
    torch.manual_seed(1)
    gru = RaftGRU()
    cell = ConvGRUCell.from_concat(**raft_weights(gru))
    assert (cell.input_size, cell.hidden_size, cell.kernel_size, cell.reset) == (X, C, 3, "before")
    x, h = check_same(lambda x, h: gru(h, x), cell_step(cell, raft_weights(gru)), list(gru.parameters()))
    torch.testing.assert_close(cell(x, h), gru(h, x), rtol=0, atol=TOL)  # the copied weights themselves
    compiles(cell, x, h)


def test_raft_sepconvgru():
    """SepConvGRU: a (1, 5) GRU update then a (5, 1) one, two cells."""
    torch.manual_seed(2)
    horizontal, vertical = RaftGRU((1, 5)), RaftGRU((5, 1))
    cells = [ConvGRUCell.from_concat(**raft_weights(g)) for g in (horizontal, vertical)]
    assert [c.kernel_size for c in cells] == [(1, 5), (5, 1)]
    steps = [cell_step(c, raft_weights(g)) for c, g in zip(cells, (horizontal, vertical))]
    x, h = check_same(lambda x, h: vertical(horizontal(h, x), x), lambda x, h: steps[1](x, steps[0](x, h)),
                      [*horizontal.parameters(), *vertical.parameters()])
    compiles(lambda x, h: cells[1](x, cells[0](x, h)), x, h)


def test_raft_stereo_context():
    """RAFT-Stereo: per-image context cz, cr, cq added to the pre-activations."""
    torch.manual_seed(3)
    gru = RaftGRU()
    cz, cr, cq = (torch.randn(B, C, H, W, dtype=torch.float64, requires_grad=True) for _ in range(3))
    cell = ConvGRUCell.from_concat(**raft_weights(gru))
    step = cell_step(cell, raft_weights(gru))
    x, h = check_same(lambda x, h: gru(h, x, cz, cr, cq),
                      lambda x, h: step(x, h, gate_context(cr, cz, cq, z_keeps="candidate")),
                      list(gru.parameters()), extra=[cz, cr, cq])
    compiles(lambda x, h: cell(x, h, context=gate_context(cr, cz, cq, z_keeps="candidate")), x, h)


# --- DROID-SLAM (Teed & Deng 2021), modules/gru.py: RAFT's GRU plus a pooled, state-dependent term ---------

class DroidGRU(RaftGRU):
    def __init__(self):
        super().__init__()
        self.w = conv(C, C, 1)
        self.convz_glo, self.convr_glo, self.convq_glo = (conv(C, C, 1) for _ in range(3))

    def glo(self, h):
        return (sigmoid(self.w(h)) * h).mean((2, 3), keepdim=True)  # (B, C, 1, 1)

    def forward(self, h, x):
        g = self.glo(h)
        return super().forward(h, x, self.convz_glo(g), self.convr_glo(g), self.convq_glo(g))


def test_droid_slam_global_context():
    torch.manual_seed(4)
    gru = DroidGRU()
    cell = ConvGRUCell.from_concat(**raft_weights(gru))

    def context(h):  # (B, 3C, 1, 1): broadcast over H, W
        g = gru.glo(h)
        return gate_context(gru.convr_glo(g), gru.convz_glo(g), gru.convq_glo(g), z_keeps="candidate")

    step = cell_step(cell, raft_weights(gru))
    x, h = check_same(lambda x, h: gru(h, x), lambda x, h: step(x, h, context(h)), list(gru.parameters()))
    compiles(lambda x, h: cell(x, h, context=context(h)), x, h)


# --- MVSNet-family cells: gates over [x, h], h' = z h + (1 - z) y, GroupNorm on every gate ----------------

class MVSNetGRU(nn.Module):
    """The GRU cell of the PyTorch MVSNet ports (R-MVSNet's regularisation): one gates convolution
    (reset, update stacked), GroupNorm(1, C, eps=1e-6) on each gate and on the output."""

    def __init__(self):
        super().__init__()
        self.gate_conv, self.output_conv = conv(X + C, 2 * C), conv(X + C, C)
        self.reset_norm, self.update_norm, self.output_norm = (group_norm(C, 1, 1e-6) for _ in range(3))

    def forward(self, x, h):
        r, u = self.gate_conv(torch.cat([x, h], 1)).chunk(2, 1)
        r, u = sigmoid(self.reset_norm(r)), sigmoid(self.update_norm(u))
        y = tanh(self.output_norm(self.output_conv(torch.cat([x, r * h], 1))))
        return u * h + (1 - u) * y


def mvsnet_weights(gru: MVSNetGRU) -> dict:
    return dict(order="xh", z_keeps="h", conv_gates=gru.gate_conv, gate_order="rz", conv_n=gru.output_conv,
                norm_r=gru.reset_norm, norm_z=gru.update_norm, norm_n=gru.output_norm)


def test_mvsnet_cell_group_norm_eps():
    torch.manual_seed(5)
    gru = MVSNetGRU()
    cell = ConvGRUCell.from_concat(**mvsnet_weights(gru))
    assert (cell.norm, cell.num_groups, cell.norm_eps) == ("group", 1, 1e-6)
    x, h = check_same(gru, cell_step(cell, mvsnet_weights(gru)), list(gru.parameters()))
    compiles(cell, x, h)


def layer_norm(a, gamma, beta, eps=1e-12):
    """TensorFlow's layer_norm (R-MVSNet's group_norm for groups of one): statistics over C, H, W,
    per-channel gamma and beta, variance eps 1e-12."""
    mean = a.mean((1, 2, 3), keepdim=True)
    var = a.var((1, 2, 3), unbiased=False, keepdim=True)
    return (a - mean) / torch.sqrt(var + eps) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def test_r_mvsnet_tensorflow_weights():
    """R-MVSNet (Yao et al. 2019): TensorFlow weights (kernels HWIO, transposed to OIHW), layer
    norm (eps 1e-12) on each gate; given as (weight, bias) pairs, groups and eps stated."""
    torch.manual_seed(6)
    p = {name: torch.randn(*shape, dtype=torch.float64, requires_grad=True) for name, shape in [
        ("gates_w", (3, 3, X + C, 2 * C)), ("gates_b", (2 * C,)), ("out_w", (3, 3, X + C, C)), ("out_b", (C,)),
        *((f"{g}_{t}", (C,)) for g in ("reset", "update", "output") for t in ("gamma", "beta"))]}

    def oihw(hwio):
        return hwio.permute(3, 2, 0, 1)

    def tf_step(x, h):
        gates = F.conv2d(torch.cat([x, h], 1), oihw(p["gates_w"]), p["gates_b"], padding=1)
        r, u = gates.chunk(2, 1)
        r = sigmoid(layer_norm(r, p["reset_gamma"], p["reset_beta"]))
        u = sigmoid(layer_norm(u, p["update_gamma"], p["update_beta"]))
        y = F.conv2d(torch.cat([x, r * h], 1), oihw(p["out_w"]), p["out_b"], padding=1)
        y = tanh(layer_norm(y, p["output_gamma"], p["output_beta"]))
        return u * h + (1 - u) * y

    def weights():
        return dict(order="xh", z_keeps="h", conv_gates=(oihw(p["gates_w"]), p["gates_b"]), gate_order="rz",
                    conv_n=(oihw(p["out_w"]), p["out_b"]), norm_r=(p["reset_gamma"], p["reset_beta"]),
                    norm_z=(p["update_gamma"], p["update_beta"]), norm_n=(p["output_gamma"], p["output_beta"]))

    cell = ConvGRUCell.from_concat(**weights(), num_groups=1, norm_eps=1e-12)
    x, h = check_same(tf_step, cell_step(cell, weights()), list(p.values()))
    compiles(cell, x, h)


# --- jacobkimmel/pytorch_convgru and jhhuang96/ConvLSTM-PyTorch: gates over [x, h], h' = (1 - z) h + z q --

class KimmelGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.reset_gate, self.update_gate, self.out_gate = (conv(X + C, C) for _ in range(3))

    def forward(self, x, h):
        stacked = torch.cat([x, h], 1)
        update, reset = sigmoid(self.update_gate(stacked)), sigmoid(self.reset_gate(stacked))
        out = tanh(self.out_gate(torch.cat([x, h * reset], 1)))
        return h * (1 - update) + out * update


def test_jacobkimmel_convgru():
    torch.manual_seed(7)
    gru = KimmelGRU()

    def weights():
        return dict(order="xh", z_keeps="candidate", conv_r=gru.reset_gate, conv_z=gru.update_gate,
                    conv_n=gru.out_gate)

    cell = ConvGRUCell.from_concat(**weights())
    x, h = check_same(gru, cell_step(cell, weights()), list(gru.parameters()))
    compiles(cell, x, h)


class HuangGRU(nn.Module):
    """jhhuang96's CGRU_cell: GroupNorms of 32-channel groups; the gates conv stacks (z, r)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Sequential(conv(X + channels, 2 * channels), group_norm(2 * channels, 2 * channels // 32))
        self.conv2 = nn.Sequential(conv(X + channels, channels), group_norm(channels, channels // 32))

    def forward(self, x, h):
        z, r = sigmoid(self.conv1(torch.cat([x, h], 1))).chunk(2, 1)
        q = tanh(self.conv2(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * q


def test_jhhuang96_cgru_cell_negates_z_through_the_norm():
    """z keeps the candidate behind a GroupNorm: the norm's affine terms carry the negation."""
    torch.manual_seed(8)
    gru = HuangGRU(32)

    def weights():
        return dict(order="xh", z_keeps="candidate", conv_gates=gru.conv1[0], gate_order="zr",
                    norm_gates=gru.conv1[1], conv_n=gru.conv2[0], norm_n=gru.conv2[1])

    cell = ConvGRUCell.from_concat(**weights())
    assert (cell.num_groups, cell.norm_eps) == (1, 1e-5)
    x, h = check_same(gru, cell_step(cell, weights()), list(gru.parameters()), channels=32, size=(3, 4), batch=1)
    compiles(cell, x, h)


# --- the API's checks ----------------------------------------------------------------------------------------

def test_load_concat_weights_names_what_the_cell_lacks():
    gru = MVSNetGRU()
    cell = ConvGRUCell(X, C, norm="group", reset="after")  # reset "after" and eps 1e-5: both wrong
    with pytest.raises(ValueError, match=r"cell: the weights need norm_eps=1e-06 \(the GroupNorms\), the cell has "
                       r"1e-05; reset='before' \(a convolution over \[x, r ⊙ h\]\), the cell has 'after'"):
        load_concat_weights(cell, **mvsnet_weights(gru))
    fitting = ConvGRUCell(X, C, norm="group", reset="before", norm_eps=1e-6).double()
    load_concat_weights(fitting, **mvsnet_weights(gru))
    x, h = torch.randn(B, X, H, W, dtype=torch.float64), torch.randn(B, C, H, W, dtype=torch.float64)
    torch.testing.assert_close(fitting(x, h), gru(x, h), rtol=0, atol=TOL)


@pytest.mark.parametrize("change,match", [
    (dict(order="x,h"), r"order must be one of \['xh', 'hx'\], got 'x,h'"),
    (dict(z_keeps="z"), r"z_keeps must be one of \['h', 'candidate'\], got 'z'"),
    (dict(gate_order=None), r"gate_order must be one of \['rz', 'zr'\], got None"),
    (dict(norm_n=None), r"norm_n: expected a norm: ConvGRUCell normalises all three gates or none"),
    (dict(conv_gates=(torch.zeros(2 * C, X + C, 3, 3),)), r"conv_gates: expected an nn.Conv2d or a \(weight, bias\)"),
    (dict(conv_gates=nn.Conv2d(X + C, 2 * C, 3)), r"conv_gates: expected a convolution of stride 1, groups 1 and "
                                                    r"zero 'same' padding \(\(1, 1\)\)"),
    (dict(conv_gates=nn.Conv2d(X + C, 2 * C, 5, padding=2)), r"conv_gates: expected a weight of shape "
                                                               r"\(8, 7, 3, 3\)"),
    (dict(conv_r=nn.Conv2d(X + C, C, 3, padding=1)), r"conv_gates: expected either conv_gates or conv_r and conv_z"),
    (dict(norm_r=nn.GroupNorm(1, 2 * C)), r"norm_r: expected a GroupNorm of 4 channels"),
])
def test_bad_porting_arguments(change, match):
    with pytest.raises(ValueError, match=match):
        ConvGRUCell.from_concat(**{**mvsnet_weights(MVSNetGRU()), **change})


def test_pair_norms_need_groups_and_eps():
    gru = MVSNetGRU()
    pairs = {name: (getattr(gru, module).weight, getattr(gru, module).bias) for name, module in
             (("norm_r", "reset_norm"), ("norm_z", "update_norm"), ("norm_n", "output_norm"))}
    weights = {**mvsnet_weights(gru), **pairs}
    with pytest.raises(ValueError, match=r"num_groups: expected a value: the GroupNorms are \(weight, bias\) pairs"):
        ConvGRUCell.from_concat(**weights, norm_eps=1e-6)
    with pytest.raises(ValueError, match=r"norm_eps: expected a value: .*TensorFlow's layer_norm is 1e-12"):
        ConvGRUCell.from_concat(**weights, num_groups=1)
    with pytest.raises(ValueError, match=r"norm_eps: expected 1e-06 as the GroupNorms says, or nothing; got 1e-05"):
        ConvGRUCell.from_concat(**mvsnet_weights(gru), norm_eps=1e-5)
    assert ConvGRUCell.from_concat(**weights, num_groups=1, norm_eps=1e-6).norm_eps == 1e-6


@pytest.mark.slow
def test_ported_cell_compiles_with_inductor():
    """One real compile: RAFT-Stereo's substituted step under inductor, fullgraph, equal to eager."""
    torch.manual_seed(9)
    gru = RaftGRU()
    cell = ConvGRUCell.from_concat(**raft_weights(gru)).float()
    x, h, context = torch.randn(1, X, H, W), torch.randn(1, C, H, W), torch.randn(1, 3 * C, H, W)
    torch._dynamo.reset()
    compiled = torch.compile(cell, fullgraph=True)
    torch.testing.assert_close(compiled(x, h, context=context), cell(x, h, context=context), rtol=1e-5, atol=1e-5)
