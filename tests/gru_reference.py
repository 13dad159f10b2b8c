"""A plain-matrix GRU reference (both reset conventions) and weight copying from nn.GRU."""

import torch
import torch.nn.functional as F
from torch import nn

from convgru import ConvGRU, ConvGRUCell


def gru_cell_ref(x, h, w_ih, w_hh, b_ih, b_hh, reset="after"):
    """One GRU step on vectors: x (B, I), h (B, C) -> (B, C), weights stacked r, z, n."""
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, 1)
    w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
    b_hr, b_hz, b_hn = b_hh.chunk(3, 0)
    r = torch.sigmoid(xr + h @ w_hr.T + b_hr)
    z = torch.sigmoid(xz + h @ w_hz.T + b_hz)
    if reset == "after":
        n = torch.tanh(xn + r * (h @ w_hn.T + b_hn))
    else:
        n = torch.tanh(xn + (r * h) @ w_hn.T + b_hn)
    return (1 - z) * n + z * h


def plain_step(cell: ConvGRUCell, x, h, context=None):
    """The cell's equations (convgru.cell) with plain autograd ops on its weights; context: None or
    broadcastable to (B, 3C, H, W)."""
    c, w, b = cell.hidden_size, cell.conv_h.weight, cell.conv_h.bias
    conv = dict(padding=cell.conv_h.padding, dilation=cell.conv_h.dilation)
    gx = F.conv2d(x, cell.conv_x.weight, cell.conv_x.bias, **conv) if x is not None else 0 * h.repeat(1, 3, 1, 1)
    gx = gx if context is None else gx + context
    xr, xz, xn = gx.split(c, 1)
    (wr, wz, wn), (br, bz, bn) = w.split(c), b.split(c)

    def norm(pre, gate):
        if cell.norm_rz is None:
            return pre
        if gate == "n":
            return F.group_norm(pre, cell.num_groups, cell.norm_n.weight, cell.norm_n.bias, cell.norm_n.eps)
        i = "rz".index(gate)
        weight, bias = cell.norm_rz.weight.split(c)[i], cell.norm_rz.bias.split(c)[i]
        return F.group_norm(pre, cell.num_groups, weight, bias, cell.norm_rz.eps)

    r = torch.sigmoid(norm(xr + F.conv2d(h, wr, br, **conv), "r"))
    z = torch.sigmoid(norm(xz + F.conv2d(h, wz, bz, **conv), "z"))
    hn = F.conv2d(h, wn, bn, **conv) if cell.reset == "after" else None
    pre = xn + r * hn if cell.reset == "after" else xn + F.conv2d(r * h, wn, bn, **conv)
    n = torch.tanh(norm(pre, "n"))
    return (1 - z) * n + z * h


def gru_ref(gru: nn.GRU, x, h0, reset="after"):
    """nn.GRU's multi-layer, bidirectional loop on (T, B, I) with gru_cell_ref steps."""
    d = 2 if gru.bidirectional else 1
    h_n, seq = [], x
    for layer in range(gru.num_layers):
        outs = []
        for direction in range(d):
            sfx = f"l{layer}" + ("_reverse" if direction else "")
            weights = [getattr(gru, f"{n}_{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih",
                                                            "bias_hh")]
            h = h0[layer * d + direction]
            steps = range(seq.shape[0] - 1, -1, -1) if direction else range(seq.shape[0])
            out = [None] * seq.shape[0]
            for t in steps:
                h = gru_cell_ref(seq[t], h, *weights, reset=reset)
                out[t] = h
            outs.append(torch.stack(out))
            h_n.append(h)
        seq = torch.cat(outs, -1)
    return seq, torch.stack(h_n)


@torch.no_grad()
def copy_gru_cell(src, cell: ConvGRUCell, suffix=""):
    """Copy nn.GRUCell / nn.GRU weights (with suffix such as '_l1_reverse') into a 1x1 cell."""
    cell.conv_x.weight.copy_(getattr(src, f"weight_ih{suffix}")[..., None, None])
    cell.conv_x.bias.copy_(getattr(src, f"bias_ih{suffix}"))
    cell.conv_h.weight.copy_(getattr(src, f"weight_hh{suffix}")[..., None, None])
    cell.conv_h.bias.copy_(getattr(src, f"bias_hh{suffix}"))


def convgru_like(gru: nn.GRU, reset="after") -> ConvGRU:
    """A 1x1 ConvGRU with the same options and weights as gru."""
    model = ConvGRU(gru.input_size, gru.hidden_size, kernel_size=1, num_layers=gru.num_layers,
                    batch_first=gru.batch_first, bidirectional=gru.bidirectional, reset=reset)
    d = 2 if gru.bidirectional else 1
    for i, cell in enumerate(model.cells):
        copy_gru_cell(gru, cell, f"_l{i // d}" + ("_reverse" if i % d else ""))
    return model
