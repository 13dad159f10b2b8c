"""Pictures of forecasts: rows input / target / prediction for a few sequences, labelled; and the
labels' font, which the GIFs of `animation` use too (one home for text on pictures)."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

TEXT_SIZE = 16  # pixels
PADDING = 2  # pixels between frames


def text_font(labels: list[str], room: float, minimum: int = 8) -> ImageFont.FreeTypeFont:
    """Pillow's default font at TEXT_SIZE pixels, smaller (down to `minimum`) where the widest of
    `labels` would not fit in `room` pixels."""
    font = ImageFont.load_default(size=TEXT_SIZE)
    widest = max(font.getlength(label) for label in labels)
    if widest < room:
        return font
    return ImageFont.load_default(size=max(minimum, int(TEXT_SIZE * (room - 2) / widest)))


@dataclass
class LeadTime:
    """Lead times of the forecast frames (1 .. T) in `unit` (frames, min, h, or mo: calendar months). The
    field's convention for every picture: input frames at t = -4 .. 0 (the last input at 0), forecasts at
    +1 .. +T, in the data's time step where known (-20 min .. 0, +5 min .. +50 min; -2 mo .. 0, +1 mo .. +3 mo)."""
    values: list[float]
    unit: str = "frames"

    @property
    def label(self) -> str:
        return f"lead time ({self.unit})"

    @property
    def step(self) -> float:
        """The time between frames (the first lead time; 1 frame when none is known)."""
        return self.values[0] if self.values else 1.0

    def text(self, value: float, sign: str = "+") -> str:
        """`value` as a panel title: +30 min, +6 h, +1 mo, +3 (frames)."""
        if value == 0:
            return "0" if self.unit == "frames" else f"0 {self.unit}"
        shown = f"{sign if value > 0 else '-'}{abs(value):g}"
        return shown if self.unit == "frames" else f"{shown} {self.unit}"

    def inputs(self, frames: int) -> list[str]:
        """The times of `frames` input frames, the last at 0: ["-4", ..., "0"] or ["-20 min", ..., "0 min"]."""
        return [self.text((i - frames + 1) * self.step) for i in range(frames)]

    def leads(self, frames: int) -> list[str]:
        """The lead times of `frames` forecast frames: `values`, continued in steps past their end
        (a forecast longer than the one trained): ["+1", ..., "+10"] or ["+5 min", ...]."""
        return [self.text(self.values[k] if k < len(self.values) else (k + 1) * self.step) for k in range(frames)]


def lead_times(data: Mapping | None, frames: int) -> LeadTime:
    """Lead times of `frames` forecast frames: minutes from the data config's `time_step_minutes` (radar), else
    frames 1 .. `frames` (fields: `LeadTime(*source.step.leads(frames))`, hours or calendar months)."""
    step = data.get("time_step_minutes") if isinstance(data, Mapping) else None
    if isinstance(step, (int, float)) and step > 0:
        return LeadTime([float(step) * (k + 1) for k in range(frames)], "min")
    return LeadTime([float(k + 1) for k in range(frames)])


def sequence_grid(rows: list[torch.Tensor], labels: list[str] | None = None,
                  times: list[tuple[str, list[str]]] | None = None) -> torch.Tensor:
    """One row per sequence (T, C, H, W) in [0, 1] -> a (3, H', W') image; shows the first channel
    in grey unless C is 3; shorter rows are padded with blank frames; missing (NaN) pixels are black.
    With `labels` (one per row) each row is labelled on its left, and each line (name, column labels)
    of `times` is written above the columns (`time_lines`: the inputs' times -4 .. 0 on one line, the
    lead times +1 .. +T of targets and predictions on the next). ValueError for a label count other
    than the rows'."""
    width = max(row.shape[0] for row in rows)
    frames = [row if row.shape[1] == 3 else row[:, :1].expand(-1, 3, -1, -1) for row in rows]
    frames = [F.pad(row.float().nan_to_num(0.0), (0, 0, 0, 0, 0, 0, 0, width - row.shape[0])) for row in frames]
    grid = make_grid(torch.cat(frames), nrow=width, padding=PADDING, pad_value=0.5)
    if labels is None:
        return grid
    if len(labels) != len(rows):
        raise ValueError(f"sequence_grid expects one label per row, got {len(labels)} for {len(rows)} rows")
    return _labelled(grid, labels, times or [], tuple(rows[0].shape[-2:]))


def time_lines(frames_in: int, frames_out: int, later: str, lead: LeadTime | None = None
               ) -> list[tuple[str, list[str]]]:
    """The header lines of a `sequence_grid` of input rows and `later` rows (e.g. "target, prediction"):
    ("input t", -4 .. 0) and (`later` t, +1 .. +T) in `lead`'s unit (default: frames)."""
    lead = lead or LeadTime([])
    return [("input t", lead.inputs(frames_in)), (f"{later} t", lead.leads(frames_out))]


def _labelled(grid: torch.Tensor, rows: list[str], lines: list[tuple[str, list[str]]], cell: tuple[int, int]
              ) -> torch.Tensor:
    """`grid` (3, H, W) of make_grid cells of `cell` (h, w) pixels with `rows` written left of each row
    and each of `lines` (name, column labels) above the columns, its name on the left, white on black."""
    h, w = cell
    font = text_font([label for _, columns in lines for label in columns] or [""], w, minimum=6)
    size = min(TEXT_SIZE, max(8, h - 2))
    side = ImageFont.load_default(size=size)
    left = round(max(side.getlength(label) for label in [*rows, *(name for name, _ in lines)])) + 2 * PADDING
    line = round(font.size * 1.3)
    top = line * len(lines) + PADDING
    image = Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    canvas = Image.new("RGB", (image.width + left, image.height + top), 0)
    canvas.paste(image, (left, top))
    draw = ImageDraw.Draw(canvas)
    for k, (name, columns) in enumerate(lines):
        y = PADDING // 2 + k * line
        draw.text((PADDING, y), name, fill="white", font=font)
        for j, label in enumerate(columns):
            x = left + PADDING + j * (w + PADDING) + (w - font.getlength(label)) / 2
            draw.text((x, y), label, fill="white", font=font)
    for i, label in enumerate(rows):
        y = top + PADDING + i * (h + PADDING) + (h - size) / 2
        draw.text((PADDING, y), label, fill="white", font=side)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def first_forecasts(module, dataset, num_sequences: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and the module's forecasts (clamped to [0, 1]) of the first `num_sequences`
    items (x, y) of `dataset`, on the CPU: (N, T_in, C, H, W), (N, T_out, C, H, W) twice."""
    count = min(num_sequences, len(dataset))
    if count == 0:
        raise ValueError("forecast pictures need a dataset with at least one sequence, got an empty one")
    x, y = (torch.stack(items) for items in zip(*(dataset[i][:2] for i in range(count))))
    return x, y, module.forecast(x).float().cpu()


def rows_grid(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, lead: LeadTime | None = None) -> torch.Tensor:
    """sequence_grid of rows input, target, prediction for each sequence of (N, T, C, H, W) batches,
    labelled, with the inputs' times and the lead times above (`time_lines`; `lead`: the data's)."""
    return sequence_grid([seq for i in range(len(x)) for seq in (x[i], y[i], pred[i])],
                         ["input", "target", "prediction"] * len(x),
                         time_lines(x.shape[1], pred.shape[1], "target, prediction", lead))


def forecast_grid(module, dataset, num_sequences: int = 4) -> torch.Tensor:
    """rows_grid of the first `num_sequences` items of `dataset` and the module's forecasts."""
    data = module.hparams.get("data")
    return rows_grid(*first_forecasts(module, dataset, num_sequences), lead_times(data, int(module.hparams.future)))
