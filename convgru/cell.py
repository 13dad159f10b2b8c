"""The convolutional GRU cell.

With ``*`` a 2-D convolution (``conv_x`` on the input, ``conv_h`` on the state, both with 'same'
padding and output channels stacked in gate order r, z, n), ``σ`` the sigmoid and ``⊙`` the
element-wise product, one step is::

    r  = σ(N_r(W_ir*x + b_ir + c_r + W_hr*h + b_hr))
    z  = σ(N_z(W_iz*x + b_iz + c_z + W_hz*h + b_hz))
    n  = tanh(N_n(W_in*x + b_in + c_n + r ⊙ (W_hn*h + b_hn)))   reset="after"  (PyTorch, cuDNN,
                                                                    ONNX linear_before_reset=1)
    n  = tanh(N_n(W_in*x + b_in + c_n + W_hn*(r ⊙ h) + b_hn))   reset="before" (Cho et al. 2014,
                                                                    ONNX linear_before_reset=0)
    h' = (1 - z) ⊙ n + z ⊙ h

``c = (c_r, c_z, c_n)`` is the optional ``context`` of ``forward`` (zero without it): a tensor
added to the pre-activations where the input term enters, before the norm and outside the reset,
as RAFT-Stereo's per-image context and DROID-SLAM's pooled global term are (docs/porting.md).
``N_r``, ``N_z`` and ``N_n`` are the identity when ``norm=None``. With ``norm="group"`` each
normalises the full pre-activation of its gate (input and hidden terms summed) just before the
sigmoid or tanh, as the MVSNet ConvGRU does: ``N_n`` is ``GroupNorm(num_groups, hidden_size,
eps=norm_eps)``, and ``N_r`` and ``N_z`` are one ``GroupNorm(2 * num_groups, 2 * hidden_size,
eps=norm_eps)`` over the stacked r and z pre-activations (``norm_rz``), the same as two separate
GroupNorms since no group straddles the r/z boundary. With ``input_size=0`` the cell takes no input
and the ``W_i*x + b_i`` terms are absent. The element-wise part runs in ``convgru.gates`` with a
hand-written backward (second derivatives included).

Kernels may be non-square, ``(kh, kw)`` with both odd, and dilations per axis, ``(dh, dw)``, as
``nn.Conv2d`` takes them; the padding is 'same', ``(dh * (kh - 1) / 2, dw * (kw - 1) / 2)``.

Dtypes: the state keeps the dtype of ``h`` (of ``x`` when ``h`` is None). A cell cast to float64,
float32, bfloat16 or float16 keeps its state in that dtype (GroupNorm statistics are computed in
float32 for 16-bit inputs); under ``torch.autocast`` the convolutions run in the autocast dtype
while GroupNorm and a float32 state stay float32. Memory format: a channels_last ``x`` and ``h``
give a channels_last ``h'`` (with GroupNorm too, from torch 2.12).

Initialisation (``reset_parameters``): ``init="conv"`` (the default) is ``nn.Conv2d``'s, weights and
biases uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels * kh * kw;
``init="gru"`` is ``nn.GRU``'s, every weight and bias uniform(-1/sqrt(hidden_size),
1/sqrt(hidden_size)), drawn in nn.GRU's order (with kernel_size=1, the values nn.GRUCell draws from
the same seed). GroupNorm weights start at 1 and biases at 0 in both.

Porting a hand-written ConvGRU (convolutions over ``cat(x, h)``, RAFT's, MVSNet's, ...): see
``ConvGRUCell.from_concat``, ``convgru.porting`` and docs/porting.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    DILATION,
    EPS,
    KERNEL,
    NON_NEGATIVE,
    POSITIVE,
    OptionError,
    check,
    check_choice,
    check_like,
    check_module_dtype,
    check_tensor,
    pair,
)
from .gates import Candidate, UpdateResetGates

__all__ = ["ConvGRUCell", "check_choice", "check_tensor"]

NORMS = (None, "group")
RESETS = ("after", "before")
INITS = ("conv", "gru")
NORM_EPS = 1e-5  # nn.GroupNorm's


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell with nn.GRUCell's gates (r, z, n), optional GroupNorm (equations in the module
    docstring, convgru.cell).

    Args:
        input_size: channels of x; 0 makes a cell with no input (``x=None``).
        hidden_size: channels of the state h (>= 1).
        kernel_size: odd, as an int or a pair ``(kh, kw)``; 'same' padding.
        bias: whether the convolutions have biases ``b_i*`` and ``b_h*``.
        norm: None, or "group" for a GroupNorm on each gate's pre-activation.
        num_groups: groups of the GroupNorms (>= 1, dividing hidden_size when norm="group").
        reset: "after" (nn.GRU, cuDNN) or "before" (Cho et al. 2014), where r applies.
        dilation: dilation of both convolutions, an int >= 1 or a pair ``(dh, dw)``.
        init: "conv" (nn.Conv2d's initialisation, the default) or "gru" (nn.GRU's); see
            ``reset_parameters``.
        norm_eps: the GroupNorms' eps (> 0; 1e-5, nn.GroupNorm's, by default), added to the
            variance; state dicts carry no eps, so set it to the trained model's.
        device, dtype: where and in which dtype to create the parameters, as in nn.GRU.

    Shape:
        x: (B, input_size, H, W), or None when input_size=0; h: (B, hidden_size, H, W), or None for
        zeros (not allowed when input_size=0); context: None, or (B, 3 * hidden_size, H, W) with any
        of B, H, W possibly 1 (broadcast), such as (B, 3 * hidden_size, 1, 1). Returns h':
        (B, hidden_size, H, W) in h's dtype.

    Raises:
        ValueError: for arguments outside the above at construction; at forward for x, h or context
            of another shape, for x, h and context of different dtypes or devices, and for inputs on
            another device than the parameters or of another dtype (outside autocast).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        bias: bool = True,
        norm: str | None = None,
        num_groups: int = 1,
        reset: str = "after",
        dilation: int | tuple[int, int] = 1,
        init: str = "conv",
        norm_eps: float = NORM_EPS,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("reset", reset, RESETS)
        check_choice("init", init, INITS)
        input_size = check("input_size", input_size, NON_NEGATIVE)
        hidden_size = check("hidden_size", hidden_size, POSITIVE)
        kernel_size = check("kernel_size", kernel_size, KERNEL)
        dilation = check("dilation", dilation, DILATION)
        num_groups = check("num_groups", num_groups, POSITIVE)
        norm_eps = check("norm_eps", norm_eps, EPS)
        if norm == "group" and hidden_size % num_groups:
            raise OptionError("num_groups", f"expected a divisor of hidden_size={hidden_size} for "
                             f"norm='group', got {num_groups}")
        self.input_size, self.hidden_size, self.kernel_size = input_size, hidden_size, kernel_size
        self.bias, self.norm, self.num_groups, self.reset = bool(bias), norm, num_groups, reset
        self.dilation, self.init, self.norm_eps = dilation, init, norm_eps
        factory = dict(device=device, dtype=dtype)
        padding = tuple(d * (k - 1) // 2 for k, d in zip(pair(kernel_size), pair(dilation)))
        conv = dict(kernel_size=pair(kernel_size), padding=padding, dilation=pair(dilation), bias=bias, **factory)
        self.conv_x = nn.Conv2d(input_size, 3 * hidden_size, **conv) if input_size else None
        self.conv_h = nn.Conv2d(hidden_size, 3 * hidden_size, **conv)
        self.norm_rz = nn.GroupNorm(2 * num_groups, 2 * hidden_size, norm_eps, **factory) if norm else None
        self.norm_n = nn.GroupNorm(num_groups, hidden_size, norm_eps, **factory) if norm else None
        self.reset_parameters()

    @classmethod
    def from_concat(cls, *, order: str, z_keeps: str, conv_n, conv_r=None, conv_z=None, conv_gates=None,
                    gate_order: str | None = None, norm_r=None, norm_z=None, norm_gates=None, norm_n=None,
                    num_groups: int | None = None, norm_eps: float | None = None,
                    dilation: int | tuple[int, int] | None = None) -> ConvGRUCell:
        """A cell (``reset="before"``) that computes what a hand-written ConvGRU does, its weights
        copied from that cell's convolutions over the concatenation of x and h.

        The arguments, their forms and the errors raised are those of
        ``convgru.porting.load_concat_weights`` (docs/porting.md has a recipe per project); sizes,
        kernel, dilation, bias, norm, num_groups and norm_eps are read from the convolutions and
        GroupNorms given (``num_groups`` and ``norm_eps`` must be given with GroupNorms passed as
        (weight, bias) pairs, ``dilation`` may be given with convolutions passed as pairs).
        The parameters are created on the device and in the dtype of the given weights.
        """
        from .porting import concat_options, load_concat_weights

        weights = dict(conv_n=conv_n, conv_r=conv_r, conv_z=conv_z, conv_gates=conv_gates, gate_order=gate_order,
                       norm_r=norm_r, norm_z=norm_z, norm_gates=norm_gates, norm_n=norm_n)
        options = concat_options(**weights, num_groups=num_groups, norm_eps=norm_eps, dilation=dilation)
        cell = cls(**options)
        load_concat_weights(cell, order=order, z_keeps=z_keeps, **weights)
        return cell

    def reset_parameters(self) -> None:
        """Initialise the parameters as ``init`` says: "conv", nn.Conv2d's uniform(-1/sqrt(fan_in),
        1/sqrt(fan_in)) per convolution (fan_in = in_channels * kh * kw), or "gru",
        nn.GRU's uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every weight and bias.
        GroupNorm weights are set to 1 and biases to 0."""
        convs = [conv for conv in (self.conv_x, self.conv_h) if conv is not None]
        if self.init == "gru":  # nn.GRU's order: weight_ih, weight_hh, bias_ih, bias_hh
            bound = 1 / math.sqrt(self.hidden_size)
            for p in [conv.weight for conv in convs] + [conv.bias for conv in convs if conv.bias is not None]:
                nn.init.uniform_(p, -bound, bound)
        else:
            for conv in convs:
                conv.reset_parameters()
        for norm in (self.norm_rz, self.norm_n):
            if norm is not None:
                norm.reset_parameters()

    def extra_repr(self) -> str:
        """The sizes, then the options that differ from their defaults."""
        defaults = dict(kernel_size=3, bias=True, norm=None, num_groups=1, reset="after",
                        dilation=1, init="conv", norm_eps=NORM_EPS)
        options = [f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v]
        return ", ".join([f"{self.input_size}, {self.hidden_size}", *options])

    def forward(self, x: Tensor | None = None, h: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        """One step: x (B, input_size, H, W) or None when input_size=0, h (B, hidden_size, H, W) or
        None for zeros, context None or (B, 3 * hidden_size, H, W) (B, H, W may be 1, broadcast),
        added to the r, z, n pre-activations in that order where the input term enters (the
        class's equations) -> h' (B, hidden_size, H, W). Raises ValueError for wrong shapes, dtypes
        or devices (see the class)."""
        if (x is None) != (self.conv_x is None):
            raise ValueError(
                f"this cell has input_size={self.input_size}: x must be "
                + ("None" if self.conv_x is None else "a (B, input_size, H, W) tensor")
                + f", got {'None' if x is None else tuple(x.shape)}"
            )
        if x is not None:
            check_tensor("x", x, (None, self.input_size, None, None))
        if h is None:
            if x is None:
                raise ValueError("a cell with input_size=0 needs h: (B, hidden_size, H, W)")
            h = self.zero_state(x)
        elif x is not None:
            check_like("h", h, "x", x)
        check_module_dtype("h" if x is None else "x", h if x is None else x, self.conv_h.weight)
        expected = (None, self.hidden_size, None, None) if x is None else (
            x.shape[0], self.hidden_size, *x.shape[2:])
        check_tensor("h", h, expected)
        if context is not None:
            self._check_context(context, h)
        gx = None if x is None else self.conv_x(x)
        if context is not None:
            gx = context if gx is None else gx + context
        return self.step(gx, h)

    def _check_context(self, context, h: Tensor) -> None:
        """Raise ValueError unless context is a tensor like h that broadcasts to (B, 3C, H, W)."""
        b, c, height, width = h.shape
        full = (b, 3 * c, height, width)
        if not isinstance(context, Tensor) or context.dim() != 4 or context.shape[1] != 3 * c or any(
                n not in (1, m) for n, m in zip(context.shape, full)):
            found = tuple(context.shape) if isinstance(context, Tensor) else type(context).__name__
            raise ValueError(f"context must have shape (B, 3 * hidden_size, H, W) = {full}, gates r, z, n "
                             f"stacked, with any of B, H, W possibly 1 to broadcast; got {found}")
        check_like("context", context, "h", h)

    def zero_state(self, x: Tensor) -> Tensor:
        """Zeros (B, hidden_size, H, W) on x's device and dtype, in x's memory format, for x: ``(B, *, H, W)``."""
        return torch.empty(x.shape[0], self.hidden_size, *x.shape[-2:], dtype=x.dtype, device=x.device,
                           memory_format=_memory_format(x)).zero_()

    def step(self, gx: Tensor | None, h: Tensor) -> Tensor:
        """One update from precomputed input gates gx = conv_x(x) (+ context) (B, 3C, H, W) or
        None, no checks."""
        c = self.hidden_size
        xrz, xn = gx.split([2 * c, c], 1) if gx is not None else (None, None)
        if self.reset == "after":
            hrz, hn = self.conv_h(h).split([2 * c, c], 1)
            s, _ = UpdateResetGates.apply(xrz, hrz, *_norm_args(self.norm_rz))
            r, z = s.chunk(2, 1)
            return Candidate.apply(xn, hn, r, z, h, *_norm_args(self.norm_n))[0]
        s, _ = UpdateResetGates.apply(xrz, self._conv_h(h, 0, 2), *_norm_args(self.norm_rz))
        r, z = s.chunk(2, 1)
        hn = self._conv_h((r * h).to(h.dtype), 2, 3)
        return Candidate.apply(xn, hn, None, z, h, *_norm_args(self.norm_n))[0]

    def _conv_h(self, h: Tensor, first: int, last: int) -> Tensor:
        """conv_h restricted to the gates first..last-1 (0=r, 1=z, 2=n)."""
        c, conv = self.hidden_size, self.conv_h
        bias = None if conv.bias is None else conv.bias[first * c: last * c]
        return F.conv2d(h, conv.weight[first * c: last * c], bias, conv.stride, conv.padding,
                        conv.dilation)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Also load 0.1.0 state dicts, which held the r and z GroupNorms apart (norm_r, norm_z)."""
        for name in ("weight", "bias"):
            r, z = (state_dict.pop(f"{prefix}norm_{g}.{name}", None) for g in "rz")
            if r is not None and z is not None:
                state_dict[f"{prefix}norm_rz.{name}"] = torch.cat([r, z])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last for a 4-D x stored channels-last (and not also NCHW-contiguous), else NCHW."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _norm_args(norm: nn.GroupNorm | None) -> tuple:
    """(weight, bias, groups, eps) of a GroupNorm for convgru.gates; groups=0 means no norm."""
    if norm is None:
        return None, None, 0, 0.0
    return norm.weight, norm.bias, norm.num_groups, norm.eps
