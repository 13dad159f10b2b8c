"""ConvGRU: a multi-layer convolutional GRU with the API of torch.nn.GRU, on image sequences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ._checks import (
    DILATION,
    EPS,
    KERNEL,
    POSITIVE,
    OptionError,
    check,
    check_like,
    check_module_dtype,
    check_per_layer,
    check_tensor,
)
from .cell import NORM_EPS, ConvGRUCell

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
            h = cell.zero_state(x[0])
    states = []
    for gx in reversed(inputs) if reverse else inputs:
        h = cell.step(gx, h)
        states.append(h)
    return torch.stack(states[::-1] if reverse else states)


def through_time(fn: Callable, chunks, state, checkpointed: bool) -> tuple[list, object]:
    """Run ``out, state = fn(chunk, state)`` over ``chunks`` in order; -> (outs, last state).

    With ``checkpointed`` each call runs under ``torch.utils.checkpoint`` (non-reentrant, the RNG
    state preserved, so dropout draws the same masks when recomputed): autograd keeps only each
    chunk's inputs and outputs, and recomputes the chunk's intermediates in the backward pass, one
    chunk at a time (Chen et al. 2016, "Training deep nets with sublinear memory cost"). With
    chunks of k time steps, a sequence of T steps keeps about T/k states plus one chunk's
    intermediates instead of every step's, for one more forward pass of compute.
    """
    outs = []
    for chunk in chunks:
        out, state = checkpoint(fn, chunk, state, use_reentrant=False) if checkpointed else fn(chunk, state)
        outs.append(out)
    return outs, state


def time_chunks(length: int, every: int | None) -> list[int]:
    """Lengths of the chunks of ``every`` steps (the last one shorter) that cover ``length`` steps
    (one chunk when ``every`` is None)."""
    every = every or length
    return [min(every, length - start) for start in range(0, length, every)]


def checkpointing(every: int | None) -> bool:
    """Whether to checkpoint through time now: ``every`` is set and autograd records."""
    return bool(every) and torch.is_grad_enabled()


def scan_checkpointed(cell: ConvGRUCell, x: Tensor, h: Tensor | None, reverse: bool,
                      every: int | None) -> Tensor:
    """``scan(cell, x, h, reverse=reverse)`` in chunks of ``every`` steps, each checkpointed
    (``through_time``); the same as ``scan`` when ``every`` is None or autograd does not record."""
    if not checkpointing(every):
        return scan(cell, x, h, reverse=reverse)
    chunks = list(x.split(every))

    def run(chunk: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        out = scan(cell, chunk, h, reverse=reverse)
        return out, (out[0] if reverse else out[-1]).clone()  # a view would keep the chunk alive

    outs, _ = through_time(run, chunks[::-1] if reverse else chunks, h, checkpointed=True)
    return torch.cat(outs[::-1] if reverse else outs)


class ConvGRU(nn.Module):
    """Multi-layer ConvGRU with nn.GRU's arguments, inputs, outputs and state layout.

    Each layer is a ``ConvGRUCell`` per direction (equations in ``convgru.cell``); each layer's input
    convolution runs once for the whole sequence, only the hidden path step by step.

    Args:
        input_size: channels of x (>= 1).
        hidden_size: channels of each layer's state: an int, or a list of num_layers ints.
        kernel_size: odd, as an int or a pair ``(kh, kw)``, or a list of num_layers of them (a list
            of num_layers entries is read per layer: with num_layers=2, ``[3, 5]`` is 3 then 5, and
            ``(3, 5)`` or ``[(3, 5), (3, 5)]`` a (3, 5) kernel in both).
        num_layers: stacked layers (>= 1).
        bias: whether the convolutions have biases.
        batch_first: x and output as (B, T, C, H, W) instead of (T, B, C, H, W).
        dropout: dropout on the outputs of each layer but the last, in training (0 <= p <= 1).
        bidirectional: a reverse direction per layer, its output concatenated on channels.
        norm, reset, num_groups, init, norm_eps: as in ``ConvGRUCell``, for every cell.
        dilation: of each layer's convolutions: an int or a pair ``(dh, dw)``, or a list of
            num_layers of them (read as kernel_size is).
        checkpoint_every: None (the default), or an int k >= 1 for activation checkpointing through
            time in training: the sequence runs in chunks of k steps under ``torch.utils.checkpoint``
            (every layer over one chunk, then the next; with bidirectional, layer by layer and each
            direction in chunks), and backward recomputes one chunk at a time. Autograd then keeps
            about T/k states per cell plus the output sequence and one chunk's intermediates instead
            of every step's (a few states' worth per step per cell), for about one more forward pass
            of compute. The results and gradients are those without it (to float32 rounding); it
            does nothing when autograd does not record (``torch.no_grad``, inference).
        device, dtype: where and in which dtype to create the parameters, as in nn.GRU.

    Shape:
        x: (T, B, input_size, H, W) (batch_first: (B, T, ...)), T >= 1; h0: None (zeros), or as h_n.
        Returns (output, h_n): output (T, B, D * C_last, H, W) (batch_first: (B, T, ...)) with D = 2
        if bidirectional else 1; h_n (D * num_layers, B, C, H, W) when all layers have one hidden
        size, else a list of per-layer (D, B, C_l, H, W) tensors, cells in ``cells``'s order (layer 0
        forward, layer 0 reverse, layer 1 forward, ...). The state keeps x's dtype.

    Raises:
        ValueError: for arguments outside the above at construction; at forward for x or h0 of
            another shape, x with no time step, x and h0 of different dtypes or devices, and x on
            another device than the parameters or of another dtype (outside autocast).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int | Sequence[int],
        kernel_size: int | tuple[int, int] | Sequence[int | tuple[int, int]] = 3,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        norm: str | None = None,
        reset: str = "after",
        num_groups: int = 1,
        init: str = "conv",
        dilation: int | tuple[int, int] | Sequence[int | tuple[int, int]] = 1,
        norm_eps: float = NORM_EPS,
        checkpoint_every: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        input_size = check("input_size", input_size, POSITIVE)
        self.checkpoint_every = None if checkpoint_every is None else check("checkpoint_every", checkpoint_every)
        num_layers = check("num_layers", num_layers, POSITIVE)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise OptionError("dropout", f"expected a number in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout, self.bidirectional = batch_first, dropout, bidirectional
        self.hidden_sizes = check_per_layer("hidden_size", hidden_size, num_layers, POSITIVE)
        self.kernel_sizes = check_per_layer("kernel_size", kernel_size, num_layers, KERNEL)
        self.dilations = check_per_layer("dilation", dilation, num_layers, DILATION)
        self.norm_eps = check("norm_eps", norm_eps, EPS)
        self.num_directions = 2 if bidirectional else 1
        self.bias, self.norm, self.reset, self.num_groups, self.init = bias, norm, reset, num_groups, init
        inputs = [input_size] + [self.num_directions * c for c in self.hidden_sizes[:-1]]
        self.cells = nn.ModuleList(
            ConvGRUCell(inputs[i], self.hidden_sizes[i], self.kernel_sizes[i], bias, norm, num_groups, reset,
                        self.dilations[i], init, self.norm_eps, device=device, dtype=dtype)
            for i in range(num_layers) for _ in range(self.num_directions)
        )

    def reset_parameters(self) -> None:
        """Re-initialise every cell (``ConvGRUCell.reset_parameters``: ``init`` "conv" or "gru")."""
        for cell in self.cells:
            cell.reset_parameters()

    def extra_repr(self) -> str:
        """The sizes, then the options that differ from their defaults (nn.GRU's style)."""
        kernel, dilation = (values if len(set(values)) > 1 else values[0]
                            for values in (self.kernel_sizes, self.dilations))
        values = dict(kernel_size=kernel, num_layers=self.num_layers, bias=self.bias,
                      batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
                      norm=self.norm, reset=self.reset, num_groups=self.num_groups, init=self.init,
                      dilation=dilation, norm_eps=self.norm_eps, checkpoint_every=self.checkpoint_every)
        defaults = dict(kernel_size=3, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, norm=None, reset="after", num_groups=1, init="conv",
                        dilation=1, norm_eps=NORM_EPS, checkpoint_every=None)
        options = [f"{k}={v!r}" for k, v in values.items() if v != defaults[k]]
        return ", ".join([f"{self.input_size}, {self.hidden_size}", *options])

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
        if seq.shape[0] == 0:
            raise ValueError(f"x {layout}: expected at least one time step, got T=0 (shape {tuple(x.shape)})")
        check_module_dtype("x", x, self.cells[0].conv_h.weight)
        states = self._initial_states(h0, seq)
        if checkpointing(self.checkpoint_every) and self.num_directions == 1:  # every layer over a chunk
            outs, last = through_time(self._layers, seq.split(self.checkpoint_every), states, checkpointed=True)
            seq = torch.cat(outs)
        else:
            seq, last = self._layers(seq, states, self.checkpoint_every)
        output = seq.transpose(0, 1) if self.batch_first else seq
        return output, self._pack(last)

    def _layers(self, seq: Tensor, states: list[Tensor | None],
                every: int | None = None) -> tuple[Tensor, list[Tensor]]:
        """Every layer over seq (T, B, C, H, W) from per-cell states -> (last layer's output, per-cell
        last states); each direction's scan checkpointed in chunks of ``every`` steps if set."""
        last = []
        for layer in range(self.num_layers):
            first = layer * self.num_directions
            outs = [scan_checkpointed(self.cells[first + d], seq, states[first + d], d == 1, every)
                    for d in range(self.num_directions)]
            last += [(out[0] if d == 1 else out[-1]).clone() for d, out in enumerate(outs)]  # not views: a
            # checkpointed chunk's state would keep the chunk's intermediate layers alive
            seq = torch.cat(outs, 2) if len(outs) > 1 else outs[0]
            if layer < self.num_layers - 1:
                seq = F.dropout(seq, self.dropout, self.training)
        return seq, last

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
            check_like("h0", h0, "x", seq)
            return list(h0.unbind(0))
        if len(h0) != self.num_layers:
            raise ValueError(f"h0 must hold num_layers={self.num_layers} tensors, got {len(h0)}")
        for layer, (t, c) in enumerate(zip(h0, self.hidden_sizes)):
            check_tensor(f"h0[{layer}]", t, (d, b, c, h, w))
            check_like(f"h0[{layer}]", t, "x", seq)
        return [s for t in h0 for s in t.unbind(0)]
