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

``N_r``, ``N_z`` and ``N_n`` are the identity when ``norm=None``, and three separate
``GroupNorm(num_groups, hidden_size)`` when ``norm="group"``: each normalises the full
pre-activation of its gate (input and hidden terms summed) just before the sigmoid or tanh, as the
MVSNet ConvGRU does. With ``input_size=0`` the cell takes no input and the ``W_i*x + b_i`` terms
are absent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        make_norm = (lambda: nn.GroupNorm(num_groups, hidden_size)) if norm else nn.Identity
        self.norm_r, self.norm_z, self.norm_n = make_norm(), make_norm(), make_norm()

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
        xr, xz, xn = gx.chunk(3, 1) if gx is not None else (0, 0, 0)
        if self.reset == "after":
            hr, hz, hn = self.conv_h(h).chunk(3, 1)
            r, z = self._gates(xr + hr, xz + hz)
            n = torch.tanh(self.norm_n(xn + r * hn))
        else:
            hr, hz = self._conv_h(h, 0, 2).chunk(2, 1)
            r, z = self._gates(xr + hr, xz + hz)
            n = torch.tanh(self.norm_n(xn + self._conv_h(r * h, 2, 3)))
        return n + z * (h - n)

    def _gates(self, r: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Reset and update gates from their pre-activations."""
        return torch.sigmoid(self.norm_r(r)), torch.sigmoid(self.norm_z(z))

    def _conv_h(self, h: Tensor, first: int, last: int) -> Tensor:
        """conv_h restricted to the gates first..last-1 (0=r, 1=z, 2=n)."""
        c, conv = self.hidden_size, self.conv_h
        bias = None if conv.bias is None else conv.bias[first * c: last * c]
        return F.conv2d(h, conv.weight[first * c: last * c], bias, conv.stride, conv.padding,
                        conv.dilation)
