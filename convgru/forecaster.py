"""The encoder-forecaster network of Shi et al. (2015, 2017) built from ConvGRU cells."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._checks import (
    EPS,
    KERNEL,
    POSITIVE,
    OptionError,
    check,
    check_like,
    check_list,
    check_module_dtype,
    check_tensor,
)
from .cell import NORM_EPS, NORMS, RESETS, ConvGRUCell, check_choice
from .rnn import checkpointing, scan, through_time, time_chunks


def frames(module: nn.Module, seq: Tensor) -> Tensor:
    """Apply a per-image module to every frame of seq: (T, B, C, H, W)."""
    return module(seq.flatten(0, 1)).unflatten(0, seq.shape[:2])


def conv_act(conv: nn.Module) -> nn.Sequential:
    """A convolution followed by the LeakyReLU(0.2) of the HKO-7 code."""
    return nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True))


class EncoderForecaster(nn.Module):
    """Encoder-forecaster (Shi et al.): (B, T_in, C_in, H, W) -> (B, future, C_out, H, W).

    Level i runs at resolution H / 2**i. The encoder runs stem -> (downsample_i -> encoder_i) for
    each level; the forecaster runs the levels top-down, forecaster_i starting from encoder_i's last
    state, the top one with no input and each lower one on the upsampled states of the level above;
    the head maps level 0's states to frames. The output is linear (no final activation).

    For online use the encoder state can be carried across calls: ``state = net.init_state(B, H, W)``,
    ``state = net.observe(frame, state)`` for each new frame (B, C_in, H, W), and
    ``net.forecast_from(state, future)``; observing T frames one by one then forecasting equals
    ``net(x, future)`` on those T frames.

    Args:
        in_channels, out_channels: channels of the input and predicted frames (>= 1).
        hidden_sizes: state channels per level (a non-empty list of ints >= 1).
        kernel_size: of every ConvGRU cell: odd, an int or a pair ``(kh, kw)``.
        stem_channels: channels of the 3x3 stem and of the head's hidden layer (>= 1).
        norm, reset, num_groups, norm_eps: as in ``ConvGRUCell``; with norm="group" num_groups divides
            every hidden size.
        checkpoint_every: None (the default), or an int k >= 1 for activation checkpointing through
            time in training: the encoder runs over chunks of k input frames and the forecaster over
            chunks of k output frames, each chunk through every level under ``torch.utils.checkpoint``,
            carrying the states from chunk to chunk; backward recomputes one chunk at a time. Autograd
            then keeps the encoder-forecaster's states every k frames (about (T_in + future) / k
            states per level), the output frames and one chunk's intermediates, instead of every
            frame's intermediates at every level; the activation memory grows only by one state per
            level every k frames, for about one more forward pass of compute. Results and gradients
            are those without it (to float32 rounding); it does nothing when autograd does not
            record (``torch.no_grad``, inference, export).

    Shape:
        x: (B, T_in, C_in, H, W) with T_in >= 1 and H, W divisible by 2**(len(hidden_sizes) - 1);
        returns (B, future, C_out, H, W). A network cast to a dtype (``.to(torch.bfloat16)``) keeps
        its states and output in that dtype; under autocast the states stay float32.

    Raises:
        ValueError: for arguments outside the above, naming the argument; at forward for inputs or
            states of another shape, dtype or device (see ``forward``, ``observe``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        hidden_sizes: Sequence[int] = (64, 96, 96),
        kernel_size: int | tuple[int, int] = 5,
        stem_channels: int = 16,
        norm: str | None = "group",
        reset: str = "after",
        num_groups: int = 1,
        checkpoint_every: int | None = None,
        norm_eps: float = NORM_EPS,
    ):
        super().__init__()
        self.checkpoint_every = None if checkpoint_every is None else check("checkpoint_every", checkpoint_every)
        if isinstance(hidden_sizes, (list, tuple)) and not hidden_sizes:
            raise OptionError("hidden_sizes", "must name at least one level, got []", sep=" ")
        hidden = check_list("hidden_sizes", hidden_sizes, POSITIVE)
        in_channels, out_channels, stem_channels = (
            check(name, value, POSITIVE) for name, value in
            (("in_channels", in_channels), ("out_channels", out_channels), ("stem_channels", stem_channels)))
        kernel_size = check("kernel_size", kernel_size, KERNEL)
        num_groups = check("num_groups", num_groups, POSITIVE)
        norm_eps = check("norm_eps", norm_eps, EPS)
        check_choice("norm", norm, NORMS)
        check_choice("reset", reset, RESETS)
        if norm == "group" and any(c % num_groups for c in hidden):
            raise OptionError("num_groups", f"expected a divisor of every entry of hidden_sizes={hidden} for "
                             f"norm='group', got {num_groups}")
        self.in_channels, self.out_channels, self.hidden_sizes = in_channels, out_channels, hidden
        widths = [stem_channels] + hidden[:-1]
        cell = dict(kernel_size=kernel_size, norm=norm, num_groups=num_groups, reset=reset, norm_eps=norm_eps)
        self.stem = conv_act(nn.Conv2d(in_channels, stem_channels, 3, padding=1))
        self.downsample = nn.ModuleList(
            conv_act(nn.Conv2d(c, c, 3, stride=1 if i == 0 else 2, padding=1))
            for i, c in enumerate(widths)
        )
        self.encoder = nn.ModuleList(ConvGRUCell(w, c, **cell) for w, c in zip(widths, hidden))
        self.forecaster = nn.ModuleList(
            ConvGRUCell(0 if i == len(hidden) - 1 else c, c, **cell) for i, c in enumerate(hidden)
        )
        self.upsample = nn.ModuleList(
            conv_act(nn.ConvTranspose2d(hidden[i + 1], hidden[i], 4, stride=2, padding=1))
            for i in range(len(hidden) - 1)
        )
        self.head = nn.Sequential(conv_act(nn.Conv2d(hidden[0], stem_channels, 3, padding=1)),
                                  nn.Conv2d(stem_channels, out_channels, 1))

    def extra_repr(self) -> str:
        """checkpoint_every when set (the layers show every other option)."""
        return "" if self.checkpoint_every is None else f"checkpoint_every={self.checkpoint_every}"

    def forward(self, x: Tensor, future: int) -> Tensor:
        """x: (B, T_in, C_in, H, W), future >= 1 -> (B, future, C_out, H, W).

        Raises ValueError for x of another shape (T_in = 0, H or W not divisible by
        2**(levels - 1)), of another dtype than the parameters outside autocast or on another
        device, and for future < 1."""
        _check_future(future)
        return self.forecast_from(self.encode(x), future)

    def encode(self, x: Tensor, state: list[Tensor] | None = None) -> list[Tensor]:
        """Run the encoder over x: (B, T_in, C_in, H, W) from ``state`` (None: zeros like x) and
        return its state after the last frame, as ``observe`` does frame by frame."""
        self._check(x)
        if state is None:
            state = self.init_state(x.shape[0], *x.shape[-2:], device=x.device, dtype=x.dtype)
        self._check_state(state, x.shape[0], *x.shape[-2:], like=("x", x))
        chunks = x.split(self.checkpoint_every or x.shape[1], 1)
        _, state = through_time(self._encode_chunk, chunks, list(state), checkpointing(self.checkpoint_every))
        return state

    def _encode_chunk(self, x: Tensor, state: list[Tensor]) -> tuple[None, list[Tensor]]:
        """Every level over the frames x (B, t, C_in, H, W) from ``state``, no checks -> (None, state)."""
        seq, last = frames(self.stem, x.transpose(0, 1)), []
        for down, cell, h in zip(self.downsample, self.encoder, state):
            seq = scan(cell, frames(down, seq), h)
            last.append(seq[-1].clone())  # not a view: a view would keep the whole chunk's states alive
        return None, last

    def init_state(self, batch: int, height: int, width: int, device=None, dtype=None) -> list[Tensor]:
        """Zero encoder state: one (batch, C_l, H / 2**l, W / 2**l) tensor per level l, on the
        parameters' device and dtype unless given."""
        self._check_size(height, width)
        weight = self.stem[0].weight
        device, dtype = device or weight.device, dtype or weight.dtype
        frame = torch.empty(batch, 0, height, width, device=device, dtype=dtype)
        return [cell.zero_state(frame[..., ::2**i, ::2**i]) for i, cell in enumerate(self.encoder)]

    def observe(self, frame: Tensor, state: list[Tensor]) -> list[Tensor]:
        """Advance the encoder state by one frame (B, C_in, H, W); returns the new state."""
        check_tensor("frame (B, C_in, H, W)", frame, (None, self.in_channels, None, None))
        self._check_size(*frame.shape[-2:])
        check_module_dtype("frame", frame, self.stem[0].weight)
        self._check_state(state, frame.shape[0], *frame.shape[-2:], like=("frame", frame))
        inp, new = self.stem(frame), []
        for down, cell, h in zip(self.downsample, self.encoder, state):
            inp = down(inp)
            inp = cell.step(cell.conv_x(inp), h)
            new.append(inp)
        return new

    def forecast_from(self, state: list[Tensor], future: int) -> Tensor:
        """Forecast (B, future, C_out, H, W) from an encoder state (``encode`` or ``observe``)."""
        _check_future(future)
        self._check_state(state)
        check_module_dtype("state[0]", state[0], self.stem[0].weight)
        chunks = time_chunks(future, self.checkpoint_every)
        outs, _ = through_time(self._forecast_chunk, chunks, list(state), checkpointing(self.checkpoint_every))
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0]

    def _forecast_chunk(self, steps: int, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """``steps`` frames (B, steps, C_out, H, W) forecast from ``state``, and the state after them."""
        seq = scan(self.forecaster[-1], None, state[-1], steps=steps)
        last = [seq[-1].clone()]  # clones, not views of the chunk's states (see _encode_chunk)
        for i in reversed(range(len(self.upsample))):
            seq = scan(self.forecaster[i], frames(self.upsample[i], seq), state[i])
            last.insert(0, seq[-1].clone())
        return frames(self.head, seq).transpose(0, 1), last

    def _check(self, x: Tensor) -> None:
        """Raise ValueError for inputs the network cannot take."""
        check_tensor("x (B, T_in, C_in, H, W)", x, (None, None, self.in_channels, None, None))
        if x.shape[1] < 1:
            raise ValueError(f"x needs T_in >= 1 frames, got T_in={x.shape[1]}")
        self._check_size(*x.shape[-2:])
        check_module_dtype("x", x, self.stem[0].weight)

    def _check_size(self, height: int, width: int) -> None:
        factor = 2 ** (len(self.hidden_sizes) - 1)
        if height % factor or width % factor:
            raise ValueError(f"H and W must be divisible by {factor} for {len(self.hidden_sizes)} levels, "
                             f"got H={height}, W={width}")

    def _check_state(self, state, batch: int | None = None, height: int | None = None,
                     width: int | None = None, like: tuple[str, Tensor] | None = None) -> None:
        """Raise ValueError unless state holds one (B, C_l, H / 2**l, W / 2**l) tensor per level
        (B, H, W as given, else those of state[0]), each of the dtype and device of the (name,
        tensor) pair `like` if given."""
        levels = len(self.hidden_sizes)
        if not isinstance(state, (list, tuple)) or len(state) != levels or not all(
                isinstance(h, Tensor) and h.dim() == 4 for h in state):
            raise ValueError(f"state must be a list of {levels} (B, C, H, W) tensors, one per level, as "
                             f"init_state, observe and encode return; got {_describe(state)}")
        if batch is None:
            batch, _, height, width = state[0].shape
        for i, (h, c) in enumerate(zip(state, self.hidden_sizes)):
            check_tensor(f"state[{i}]", h, (batch, c, height // 2**i, width // 2**i))
            if like is not None:
                check_like(f"state[{i}]", h, *like)


def _check_future(future) -> None:
    if not isinstance(future, int) or isinstance(future, bool) or future < 1:
        raise ValueError(f"future must be an int >= 1, got {future!r}")


def _describe(state) -> str:
    if isinstance(state, (list, tuple)):
        shapes = [tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__ for h in state]
        return f"a {type(state).__name__} of {shapes}"
    return type(state).__name__
