"""Pictures of forecasts: rows input / target / prediction for a few sequences."""

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid


def sequence_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """One row per sequence (T, C, H, W) in [0, 1] -> a (3, H', W') image; shows the first channel
    in grey unless C is 3; shorter rows are padded with blank frames; missing (NaN) pixels are black."""
    width = max(row.shape[0] for row in rows)
    frames = [row if row.shape[1] == 3 else row[:, :1].expand(-1, 3, -1, -1) for row in rows]
    frames = [F.pad(row.float().nan_to_num(0.0), (0, 0, 0, 0, 0, 0, 0, width - row.shape[0])) for row in frames]
    return make_grid(torch.cat(frames), nrow=width, padding=2, pad_value=0.5)


def first_forecasts(module, dataset, num_sequences: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and the module's forecasts (clamped to [0, 1]) of the first `num_sequences`
    items (x, y) of `dataset`, on the CPU: (N, T_in, C, H, W), (N, T_out, C, H, W) twice."""
    count = min(num_sequences, len(dataset))
    if count == 0:
        raise ValueError("forecast pictures need a dataset with at least one sequence, got an empty one")
    x, y = (torch.stack(items) for items in zip(*(dataset[i][:2] for i in range(count))))
    return x, y, module.forecast(x).float().cpu()


def rows_grid(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """sequence_grid of rows input, target, prediction for each sequence of (N, T, C, H, W) batches."""
    return sequence_grid([seq for i in range(len(x)) for seq in (x[i], y[i], pred[i])])


def forecast_grid(module, dataset, num_sequences: int = 4) -> torch.Tensor:
    """rows_grid of the first `num_sequences` items of `dataset` and the module's forecasts."""
    return rows_grid(*first_forecasts(module, dataset, num_sequences))
