"""ConvGRU: a multi-layer convolutional GRU with the API of torch.nn.GRU, on image sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cell import ConvGRUCell, check_tensor

State = Tensor | list[Tensor]


def scan(cell: ConvGRUCell, x: Tensor | None, h: Tensor | None, steps: int = 0,
         reverse: bool = False) -> Tensor:
    """Run ``cell`` over x: (T, B, C, H, W), or ``steps`` times with no input; -> (T, B, C_h, H, W).

    The input convolution runs once for all steps; only the hidden path runs step by step.
    ``h``: (B, C_h, H, W), or None for zeros like ``x``.
    """
    if x is None:
        inputs = [None] * steps
    else:
        inputs = cell.conv_x(x.flatten(0, 1)).unflatten(0, x.shape[:2]).unbind(0)
        if h is None:
            h = x.new_zeros(x.shape[1], cell.hidden_size, *x.shape[-2:])
    states = []
    for gx in reversed(inputs) if reverse else inputs:
        h = cell.step(gx, h)
        states.append(h)
    return torch.stack(states[::-1] if reverse else states)


def per_layer(name: str, value: int | Sequence[int], num_layers: int) -> list[int]:
    """Expand an int to ``num_layers`` copies, or check a per-layer list's length."""
    if isinstance(value, int):
        return [value] * num_layers
    if len(value) != num_layers:
        raise ValueError(f"{name} must be an int or a list of num_layers={num_layers} ints, "
                         f"got {list(value)}")
    return [int(v) for v in value]


class ConvGRU(nn.Module):
    """Multi-layer ConvGRU with nn.GRU's arguments, inputs, outputs and state layout."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int | Sequence[int],
        kernel_size: int | Sequence[int] = 3,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        norm: str | None = None,
        reset: str = "after",
        num_groups: int = 1,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout, self.bidirectional = batch_first, dropout, bidirectional
        self.hidden_sizes = per_layer("hidden_size", hidden_size, num_layers)
        self.kernel_sizes = per_layer("kernel_size", kernel_size, num_layers)
        self.num_directions = 2 if bidirectional else 1
        inputs = [input_size] + [self.num_directions * c for c in self.hidden_sizes[:-1]]
        self.cells = nn.ModuleList(
            ConvGRUCell(inputs[i], self.hidden_sizes[i], self.kernel_sizes[i], bias, norm,
                        num_groups, reset)
            for i in range(num_layers) for _ in range(self.num_directions)
        )

    def forward(self, x: Tensor, h0: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, C, H, W), or (B, T, C, H, W) if batch_first -> (output, h_n).

        output: (T, B, D*C_last, H, W) (batch first likewise); h_n: (D*num_layers, B, C, H, W)
        when all layers have one hidden size, else a list of (D, B, C_l, H, W) per layer.
        """
        layout = "(B, T, C, H, W)" if self.batch_first else "(T, B, C, H, W)"
        if x.dim() != 5:
            raise ValueError(f"x must be 5-D {layout}, got shape {tuple(x.shape)}")
        seq = x.transpose(0, 1) if self.batch_first else x
        check_tensor(f"x {layout}", x, (None, None, self.input_size, None, None))
        states = self._initial_states(h0, seq)
        last = []
        for layer in range(self.num_layers):
            first = layer * self.num_directions
            outs = [scan(self.cells[first + d], seq, states[first + d], reverse=d == 1)
                    for d in range(self.num_directions)]
            last += [out[0] if d == 1 else out[-1] for d, out in enumerate(outs)]
            seq = torch.cat(outs, 2) if len(outs) > 1 else outs[0]
            if layer < self.num_layers - 1:
                seq = F.dropout(seq, self.dropout, self.training)
        output = seq.transpose(0, 1) if self.batch_first else seq
        return output, self._pack(last)

    def _pack(self, states: list[Tensor]) -> State:
        """Per-cell states -> nn.GRU's h_n layout (a tensor, or a list per layer)."""
        if len(set(self.hidden_sizes)) == 1:
            return torch.stack(states)
        d = self.num_directions
        return [torch.stack(states[i: i + d]) for i in range(0, len(states), d)]

    def _initial_states(self, h0: State | None, seq: Tensor) -> list[Tensor | None]:
        """h0 in h_n's layout -> one (B, C_l, H, W) state (or None) per cell."""
        if h0 is None:
            return [None] * len(self.cells)
        d, (b, h, w) = self.num_directions, (seq.shape[1], *seq.shape[-2:])
        if isinstance(h0, Tensor):
            if len(set(self.hidden_sizes)) != 1:
                raise ValueError("h0 must be a list of per-layer (D, B, C_l, H, W) tensors when "
                                 f"layers differ in hidden size ({self.hidden_sizes})")
            check_tensor("h0", h0, (d * self.num_layers, b, self.hidden_sizes[0], h, w))
            return list(h0.unbind(0))
        if len(h0) != self.num_layers:
            raise ValueError(f"h0 must hold num_layers={self.num_layers} tensors, got {len(h0)}")
        for layer, (t, c) in enumerate(zip(h0, self.hidden_sizes)):
            check_tensor(f"h0[{layer}]", t, (d, b, c, h, w))
        return [s for t in h0 for s in t.unbind(0)]
