"""The convolutional GRU cell.

With ``*`` a 2-D convolution (``conv_x`` on the input, ``conv_h`` on the state, both with 'same'
padding and output channels stacked in gate order r, z, n), ``σ`` the sigmoid and ``⊙`` the
element-wise product, one step is::

    r  = σ(N_r(W_ir*x + b_ir + W_hr*h + b_hr))
    z  = σ(N_z(W_iz*x + b_iz + W_hz*h + b_hz))
    n  = tanh(N_n(W_in*x + b_in + r ⊙ (W_hn*h + b_hn)))     reset="after"  (PyTorch, cuDNN,
                                                               ONNX linear_before_reset=1)
    n  = tanh(N_n(W_in*x + b_in + W_hn*(r ⊙ h) + b_hn))     reset="before" (Cho et al. 2014,
                                                               ONNX linear_before_reset=0)
    h' = (1 - z) ⊙ n + z ⊙ h

``N_r``, ``N_z`` and ``N_n`` are the identity when ``norm=None``. With ``norm="group"`` each
normalises the full pre-activation of its gate (input and hidden terms summed) just before the
sigmoid or tanh, as the MVSNet ConvGRU does: ``N_n`` is ``GroupNorm(num_groups, hidden_size)``, and
``N_r`` and ``N_z`` are one ``GroupNorm(2 * num_groups, 2 * hidden_size)`` over the stacked r and z
pre-activations (``norm_rz``), the same as two separate GroupNorms since no group straddles the r/z
boundary. With ``input_size=0`` the cell takes no input and the ``W_i*x + b_i`` terms are absent.
The element-wise part runs in ``convgru.gates`` with a hand-written backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gates import Candidate, UpdateResetGates

NORMS = (None, "group")
RESETS = ("after", "before")


def check_choice(name: str, value, choices) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_tensor(name: str, t: Tensor, expected: tuple) -> None:
    """Raise ValueError unless ``t.shape`` matches ``expected`` (``None`` matches any size)."""
    ok = t.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, t.shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell with nn.GRUCell's gates (r, z, n), optional GroupNorm."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int = 3,
        bias: bool = True,
        norm: str | None = None,
        num_groups: int = 1,
        reset: str = "after",
        dilation: int = 1,
    ):
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("reset", reset, RESETS)
        if input_size < 0 or hidden_size < 1:
            raise ValueError(
                f"input_size must be >= 0 and hidden_size >= 1, got {input_size} and {hidden_size}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0 or dilation < 1:
            raise ValueError(
                "kernel_size must be odd and dilation >= 1 for 'same' padding, "
                f"got kernel_size={kernel_size}, dilation={dilation}"
            )
        if norm == "group" and hidden_size % num_groups:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_groups ({num_groups})"
            )
        self.input_size, self.hidden_size, self.reset = input_size, hidden_size, reset
        conv = dict(kernel_size=kernel_size, padding=dilation * (kernel_size - 1) // 2,
                    dilation=dilation, bias=bias)
        self.conv_x = nn.Conv2d(input_size, 3 * hidden_size, **conv) if input_size else None
        self.conv_h = nn.Conv2d(hidden_size, 3 * hidden_size, **conv)
        self.norm_rz = nn.GroupNorm(2 * num_groups, 2 * hidden_size) if norm else None
        self.norm_n = nn.GroupNorm(num_groups, hidden_size) if norm else None

    def forward(self, x: Tensor | None = None, h: Tensor | None = None) -> Tensor:
        """x: (B, input_size, H, W) or None when input_size=0; h: (B, hidden_size, H, W) or None."""
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
        gx = None if x is None else self.conv_x(x)
        expected = (None, self.hidden_size, None, None) if x is None else (
            x.shape[0], self.hidden_size, *x.shape[2:])
        check_tensor("h", h, expected)
        return self.step(gx, h)

    def zero_state(self, x: Tensor) -> Tensor:
        """Zeros (B, hidden_size, H, W) on x's device and dtype, for x: (B, *, H, W)."""
        return x.new_zeros(x.shape[0], self.hidden_size, *x.shape[-2:])

    def step(self, gx: Tensor | None, h: Tensor) -> Tensor:
        """One update from precomputed input gates gx = conv_x(x) (B, 3C, H, W) or None."""
        c = self.hidden_size
        xrz, xn = gx.split([2 * c, c], 1) if gx is not None else (None, None)
        if self.reset == "after":
            hrz, hn = self.conv_h(h).split([2 * c, c], 1)
            r, z = UpdateResetGates.apply(xrz, hrz, *_norm_args(self.norm_rz)).chunk(2, 1)
            return Candidate.apply(xn, hn, r, z, h, *_norm_args(self.norm_n))
        r, z = UpdateResetGates.apply(xrz, self._conv_h(h, 0, 2), *_norm_args(self.norm_rz)).chunk(2, 1)
        return Candidate.apply(xn, self._conv_h(r * h, 2, 3), None, z, h, *_norm_args(self.norm_n))

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


def _norm_args(norm: nn.GroupNorm | None) -> tuple:
    """(weight, bias, groups, eps) of a GroupNorm for convgru.gates; groups=0 means no norm."""
    if norm is None:
        return None, None, 0, 0.0
    return norm.weight, norm.bias, norm.num_groups, norm.eps
