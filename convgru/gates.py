"""The gate math of one ConvGRUCell step as two autograd Functions with a hand-written backward.

Given the convolutions' outputs, in the notation of ``cell.py``::

    s  = σ(N_rz(a + b))           UpdateResetGates; r, z = s.chunk(2, 1)
    n  = tanh(N_n(a + r ⊙ c))     Candidate, reset="after":  c = W_hn*h + b_hn
    n  = tanh(N_n(a + c))         Candidate, r=None, reset="before": c = W_hn*(r ⊙ h) + b_hn
    h' = n + z ⊙ (h - n)          Candidate (torch.lerp)

``a`` is the input term (None for a cell without input), ``N_*`` a GroupNorm given by its weight,
bias, groups and eps (``groups=0``: the identity). Autograd would record and save tensors for
every element-wise op; the hand-written backward needs about half as many ops per step, and both
directions are plain element-wise ops and GroupNorms that inductor fuses under torch.compile.
GroupNorm runs in float32 for half-precision inputs (as autocast runs group_norm), and h' takes
the wider dtype of h and n, so a float32 state stays float32 under bf16 autocast.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

HALF = (torch.float16, torch.bfloat16)


def _wide(x: Tensor) -> Tensor:
    """x, contiguous (as native_group_norm needs before torch 2.12), in float32 if it is half precision."""
    return (x.float() if x.dtype in HALF else x).contiguous()


def _as(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


def group_norm(x: Tensor, weight, bias, groups: int, eps: float):
    """(GroupNorm(x), mean, rstd), or (x, None, None) when groups == 0."""
    if not groups:
        return x, None, None
    x = _wide(x)
    b, c = x.shape[:2]
    return torch.native_group_norm(x, _as(weight, x.dtype), _as(bias, x.dtype), b, c,
                                   x.shape[2] * x.shape[3], groups, eps)


def group_norm_backward(dy: Tensor, x: Tensor, mean, rstd, weight, groups: int, affine: tuple):
    """(d_input, d_weight, d_bias) of group_norm; d_weight / d_bias only where `affine` says."""
    x = _wide(x)
    b, c = x.shape[:2]
    mask = [True, weight is not None and affine[0], weight is not None and affine[1]]
    return torch.ops.aten.native_group_norm_backward(dy, x, mean, rstd, _as(weight, x.dtype), b, c,
                                                     x.shape[2] * x.shape[3], groups, mask)


class UpdateResetGates(torch.autograd.Function):
    """s = σ(N_rz(a + b)): reset and update gates stacked (B, 2C, H, W); a may be None."""

    @staticmethod
    def forward(ctx, a, b, weight, bias, groups: int, eps: float):
        pre = b if a is None else a + b
        y, mean, rstd = group_norm(pre, weight, bias, groups, eps)
        s = torch.sigmoid(y)
        ctx.groups, ctx.has_a = groups, a is not None
        ctx.save_for_backward(pre, mean, rstd, weight, s)
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx, ds):
        pre, mean, rstd, weight, s = ctx.saved_tensors
        dy = torch.ops.aten.sigmoid_backward(ds, s)
        dw = db = None
        if ctx.groups:
            dy, dw, db = group_norm_backward(dy, pre, mean, rstd, weight, ctx.groups, ctx.needs_input_grad[2:4])
        return dy if ctx.has_a else None, dy, dw, db, None, None


class Candidate(torch.autograd.Function):
    """h' = lerp(n, h, z) with n = tanh(N_n(a + r ⊙ c)), or tanh(N_n(a + c)) when r is None."""

    @staticmethod
    def forward(ctx, a, c, r, z, h, weight, bias, groups: int, eps: float):
        if r is None:
            pre = c if a is None else a + c
        else:
            pre = r * c if a is None else torch.addcmul(a, r, c)
        y, mean, rstd = group_norm(pre, weight, bias, groups, eps)
        n = torch.tanh(y)
        dtype = h.dtype if h.dtype.itemsize > n.dtype.itemsize else n.dtype
        n, z = n.to(dtype), z.to(dtype)
        ctx.groups, ctx.has_a = groups, a is not None
        ctx.save_for_backward(pre, mean, rstd, weight, c, r, z, n, h)
        return torch.lerp(n, h.to(dtype), z)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        pre, mean, rstd, weight, c, r, z, n, h = ctx.saved_tensors
        dz = dout * (h - n)
        dh = dout * z
        dy = torch.ops.aten.tanh_backward(dout - dh, n)
        dw = db = None
        if ctx.groups:
            dy, dw, db = group_norm_backward(dy, pre, mean, rstd, weight, ctx.groups, ctx.needs_input_grad[5:7])
        dr, dc = (None, dy) if r is None else (dy * c, dy * r)
        return dy if ctx.has_a else None, dc, dr, dz, dh, dw, db, None, None
