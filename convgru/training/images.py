"""Pictures of forecasts: rows input / target / prediction for a few sequences, labelled; and the
labels' font, which the GIFs of `animation` use too (one home for text on pictures)."""

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


def sequence_grid(rows: list[torch.Tensor], labels: list[str] | None = None) -> torch.Tensor:
    """One row per sequence (T, C, H, W) in [0, 1] -> a (3, H', W') image; shows the first channel
    in grey unless C is 3; shorter rows are padded with blank frames; missing (NaN) pixels are black.
    With `labels` (one per row) each row is labelled on its left and the columns are numbered 1..T
    above (the frame index of inputs, the lead time of targets and predictions)."""
    width = max(row.shape[0] for row in rows)
    frames = [row if row.shape[1] == 3 else row[:, :1].expand(-1, 3, -1, -1) for row in rows]
    frames = [F.pad(row.float().nan_to_num(0.0), (0, 0, 0, 0, 0, 0, 0, width - row.shape[0])) for row in frames]
    grid = make_grid(torch.cat(frames), nrow=width, padding=PADDING, pad_value=0.5)
    if labels is None:
        return grid
    if len(labels) != len(rows):
        raise ValueError(f"sequence_grid expects one label per row, got {len(labels)} for {len(rows)} rows")
    return _labelled(grid, labels, [str(t + 1) for t in range(width)], tuple(rows[0].shape[-2:]))


def _labelled(grid: torch.Tensor, rows: list[str], columns: list[str], cell: tuple[int, int]) -> torch.Tensor:
    """`grid` (3, H, W) of make_grid cells of `cell` (h, w) pixels with `rows` written left of each row
    and `columns` above each column, white on black."""
    h, w = cell
    font = text_font(columns, w, minimum=6)
    size = min(TEXT_SIZE, max(8, h - 2))
    side = ImageFont.load_default(size=size)
    left = round(max(side.getlength(label) for label in rows)) + 2 * PADDING
    top = round(font.size * 1.3) + PADDING
    image = Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    canvas = Image.new("RGB", (image.width + left, image.height + top), 0)
    canvas.paste(image, (left, top))
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(columns):
        x = left + PADDING + j * (w + PADDING) + (w - font.getlength(label)) / 2
        draw.text((x, PADDING // 2), label, fill="white", font=font)
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


def rows_grid(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """sequence_grid of rows input, target, prediction for each sequence of (N, T, C, H, W) batches,
    labelled."""
    return sequence_grid([seq for i in range(len(x)) for seq in (x[i], y[i], pred[i])],
                         ["input", "target", "prediction"] * len(x))


def forecast_grid(module, dataset, num_sequences: int = 4) -> torch.Tensor:
    """rows_grid of the first `num_sequences` items of `dataset` and the module's forecasts."""
    return rows_grid(*first_forecasts(module, dataset, num_sequences))
