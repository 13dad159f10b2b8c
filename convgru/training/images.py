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


@torch.no_grad()
def forecast_grid(module, dataset, num_sequences: int = 4) -> torch.Tensor:
    """Predict the first `num_sequences` items (x, y) of `dataset`; return sequence_grid of rows
    input, target, prediction for each."""
    count = min(num_sequences, len(dataset))
    if count == 0:
        raise ValueError("forecast_grid needs a dataset with at least one sequence, got an empty one")
    x, y = (torch.stack(items) for items in zip(*(dataset[i][:2] for i in range(count))))
    was_training = module.training
    module.eval()
    pred = module(x.to(module.device)).float().clamp(0, 1).cpu()
    module.train(was_training)
    return sequence_grid([seq for i in range(count) for seq in (x[i], y[i], pred[i])])
