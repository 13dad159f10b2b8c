"""The encoder-forecaster network of Shi et al. (2015, 2017) built from ConvGRU cells."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .cell import ConvGRUCell, check_tensor
from .rnn import scan


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
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        hidden_sizes: Sequence[int] = (64, 96, 96),
        kernel_size: int = 5,
        stem_channels: int = 16,
        norm: str | None = "group",
        reset: str = "after",
        num_groups: int = 1,
    ):
        super().__init__()
        hidden = [int(c) for c in hidden_sizes]
        if not hidden:
            raise ValueError("hidden_sizes must name at least one level, got []")
        self.in_channels, self.hidden_sizes = in_channels, hidden
        widths = [stem_channels] + hidden[:-1]
        cell = dict(kernel_size=kernel_size, norm=norm, num_groups=num_groups, reset=reset)
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

    def forward(self, x: Tensor, future: int) -> Tensor:
        """x: (B, T_in, C_in, H, W), future >= 1 -> (B, future, C_out, H, W)."""
        self._check(x, future)
        seq = frames(self.stem, x.transpose(0, 1))
        states = []
        for down, cell in zip(self.downsample, self.encoder):
            seq = scan(cell, frames(down, seq), None)
            states.append(seq[-1])
        seq = scan(self.forecaster[-1], None, states[-1], steps=future)
        for i in reversed(range(len(self.upsample))):
            seq = scan(self.forecaster[i], frames(self.upsample[i], seq), states[i])
        return frames(self.head, seq).transpose(0, 1)

    def _check(self, x: Tensor, future: int) -> None:
        """Raise ValueError for inputs the network cannot take."""
        check_tensor("x (B, T_in, C_in, H, W)", x, (None, None, self.in_channels, None, None))
        factor = 2 ** (len(self.hidden_sizes) - 1)
        if x.shape[1] < 1 or x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"x needs T_in >= 1 and H, W divisible by {factor} for {len(self.hidden_sizes)} "
                f"levels, got T_in={x.shape[1]}, H={x.shape[-2]}, W={x.shape[-1]}"
            )
        if not isinstance(future, int) or future < 1:
            raise ValueError(f"future must be an int >= 1, got {future!r}")
