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

Dtypes: GroupNorm runs in float32 for half-precision inputs (as autocast runs group_norm), and h'
is computed in the wider dtype of h and n and returned in h's dtype. So a module cast to bfloat16
or float16 keeps a bfloat16 or float16 state, and under bf16 autocast (float32 parameters, bf16
convolutions) the float32 state stays float32.

Memory format: from torch 2.12 the GroupNorms run on their inputs' own strides, so a channels_last
step stays channels_last (before, the inputs are made NCHW-contiguous, as native_group_norm needs),
and so does its backward, an NCHW output gradient (mse_loss's) being laid out channels_last once.

Double backward: a backward run with ``create_graph=True`` (grad mode on inside the backward)
computes the same gradients from plain differentiable torch ops, recomputing the normalisation
from the saved pre-activation. The pre-activation is returned as a second output of each Function
(None where it is an input itself) so that, saved as an output, it stays connected to the inputs
``a``, ``b`` / ``c``, ``r``: second derivatives are exact (``gradgradcheck``). The first-order
backward (``create_graph=False``) is the lean one, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

HALF = (torch.float16, torch.bfloat16)
# native_group_norm takes any strides from torch 2.12 (it assumed NCHW-contiguous inputs before)
STRIDED_GROUP_NORM = torch.torch_version.TorchVersion(torch.__version__) >= "2.12"


def _wide(x: Tensor) -> Tensor:
    """x in float32 if it is half precision; in its own memory format (channels_last stays
    channels_last) from torch 2.12, NCHW-contiguous before, as native_group_norm needs there."""
    x = x.float() if x.dtype in HALF else x
    return x if STRIDED_GROUP_NORM else x.contiguous()


def _layout_of(grad: Tensor | None, like: Tensor) -> Tensor | None:
    """An incoming gradient in channels_last when `like` is (a loss such as mse_loss hands back an
    NCHW gradient for a channels_last output): one copy here rather than one per op downstream."""
    last = torch.channels_last
    if grad is None or grad.dim() != 4 or like.is_contiguous() or not like.is_contiguous(memory_format=last):
        return grad
    return grad.contiguous(memory_format=last)


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
    return torch.ops.aten.native_group_norm_backward(dy.to(x.dtype), x, mean, rstd, _as(weight, x.dtype),
                                                     b, c, x.shape[2] * x.shape[3], groups, mask)


def differentiable_group_norm(x: Tensor, weight, bias, groups: int, eps: float
                              ) -> tuple[Tensor, Callable[[Tensor], tuple]]:
    """GroupNorm(x) from plain differentiable ops, and its backward dy -> (dx, dweight, dbias),
    also from plain differentiable ops (for create_graph; native_group_norm_backward has no
    derivative). groups == 0: the identity."""
    if not groups:
        return x, lambda dy: (dy, None, None)
    x = _wide(x)
    b, c = x.shape[:2]
    xg = x.reshape(b, groups, -1)
    rstd = torch.rsqrt(xg.var(-1, unbiased=False, keepdim=True) + eps)
    xhat = (xg - xg.mean(-1, keepdim=True)) * rstd
    w, bb = (None if t is None else t.to(x.dtype).view(1, c, 1, 1) for t in (weight, bias))
    y = xhat.view_as(x)
    y = y if w is None else y * w
    y = y if bb is None else y + bb

    def backward(dy: Tensor) -> tuple:
        dy = dy.to(x.dtype)
        g = (dy if w is None else dy * w).reshape(b, groups, -1)
        dx = rstd * (g - g.mean(-1, keepdim=True) - xhat * (g * xhat).mean(-1, keepdim=True))
        dw = None if w is None else (dy * xhat.view_as(x)).sum((0, 2, 3))
        db = None if bb is None else dy.sum((0, 2, 3))
        return dx.view_as(x), dw, db

    return y, backward


def _add(x: Tensor | None, y: Tensor | None) -> Tensor | None:
    return y if x is None else x if y is None else x + y


class UpdateResetGates(torch.autograd.Function):
    """(s, pre): s = σ(N_rz(a + b)), reset and update gates stacked (B, 2C, H, W); a may be None.

    pre = a + b is returned for double backward (None when a is None); callers ignore it.
    """

    @staticmethod
    def forward(ctx, a, b, weight, bias, groups: int, eps: float):
        ctx.set_materialize_grads(False)
        pre = b if a is None else a + b
        y, mean, rstd = group_norm(pre, weight, bias, groups, eps)
        s = torch.sigmoid(y)
        ctx.groups, ctx.eps, ctx.has_a = groups, eps, a is not None
        ctx.save_for_backward(pre, mean, rstd, weight, bias, s)
        return s, None if a is None else pre

    @staticmethod
    def backward(ctx, ds, dpre_out):
        pre, mean, rstd, weight, bias, s = ctx.saved_tensors
        ds = _layout_of(ds, s)
        dpre = dw = db = None
        if ds is not None and not torch.is_grad_enabled():  # the lean first-order backward
            dpre = torch.ops.aten.sigmoid_backward(ds, s)
            if ctx.groups:
                dpre, dw, db = group_norm_backward(dpre, pre, mean, rstd, weight, ctx.groups,
                                                   ctx.needs_input_grad[2:4])
        elif ds is not None:  # create_graph: plain differentiable ops
            y, norm_backward = differentiable_group_norm(pre, weight, bias, ctx.groups, ctx.eps)
            s = torch.sigmoid(y)
            dpre, dw, db = norm_backward(ds * s * (1 - s))
        dpre = _add(dpre, dpre_out)
        return dpre if ctx.has_a else None, dpre, dw, db, None, None


class Candidate(torch.autograd.Function):
    """(h', pre): h' = lerp(n, h, z) with n = tanh(N_n(pre)), pre = a + r ⊙ c, or a + c when r is
    None (a may be None). h' has h's dtype.

    pre is returned for double backward (None when it is c itself); callers ignore it.
    """

    @staticmethod
    def forward(ctx, a, c, r, z, h, weight, bias, groups: int, eps: float):
        ctx.set_materialize_grads(False)
        if r is None:
            pre = c if a is None else a + c
        else:
            pre = r * c if a is None else torch.addcmul(a, r, c)
        y, mean, rstd = group_norm(pre, weight, bias, groups, eps)
        n = torch.tanh(y)
        wide = h.dtype if h.dtype.itemsize > n.dtype.itemsize else n.dtype
        n, zw = n.to(wide), z.to(wide)
        ctx.groups, ctx.eps, ctx.has_a = groups, eps, a is not None
        ctx.save_for_backward(pre, mean, rstd, weight, bias, c, r, z, zw, n, h)
        return torch.lerp(n, h.to(wide), zw).to(h.dtype), None if pre is c else pre

    @staticmethod
    def backward(ctx, dout, dpre_out):
        pre, mean, rstd, weight, bias, c, r, z, zw, n, h = ctx.saved_tensors
        dout = _layout_of(dout, n)
        dpre = dz = dh = dw = db = None
        if dout is not None and not torch.is_grad_enabled():  # the lean first-order backward
            dout = dout.to(n.dtype)
            dz = dout * (h - n)
            dh = dout * zw
            dpre = torch.ops.aten.tanh_backward(dout - dh, n)
            if ctx.groups:
                dpre, dw, db = group_norm_backward(dpre, pre, mean, rstd, weight, ctx.groups,
                                                   ctx.needs_input_grad[5:7])
        elif dout is not None:  # create_graph: plain differentiable ops
            y, norm_backward = differentiable_group_norm(pre, weight, bias, ctx.groups, ctx.eps)
            n = torch.tanh(y).to(n.dtype)
            zw = z.to(n.dtype)
            dout = dout.to(n.dtype)
            dz = dout * (h - n)
            dh = dout * zw
            dpre, dw, db = norm_backward((dout - dh) * (1 - n * n))
        dpre = _add(dpre, dpre_out)
        if dpre is None:
            dr = dc = None
        else:
            dr, dc = (None, dpre) if r is None else (dpre * c, dpre * r)
        return dpre if ctx.has_a else None, dc, dr, dz, dh, dw, db, None, None
