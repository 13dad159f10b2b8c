"""Forecast new sequences from arrays with a trained ForecastModule."""

import numpy as np
import torch


def as_batch(frames: np.ndarray, channels: int) -> tuple[torch.Tensor, bool]:
    """(T, C, H, W) or (N, T, C, H, W) array, uint8 (scaled by 1/255) or float in [0, 1]
    -> float32 (N, T, C, H, W) tensor and whether the input was a single sequence."""
    if frames.ndim not in (4, 5):
        raise ValueError(
            f"input frames must be (T, C, H, W) or (N, T, C, H, W), got shape {frames.shape}"
        )
    single = frames.ndim == 4
    batch = torch.from_numpy(np.array(frames[None] if single else frames))  # a copy: frames may be read-only
    batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
    if batch.shape[2] != channels:
        raise ValueError(f"the model takes {channels} channel(s) per frame, the input has {batch.shape[2]} "
                         f"(shape {frames.shape}, expected (N, T, {channels}, H, W) or (T, {channels}, H, W))")
    return batch, single


def forecast(module, frames: np.ndarray, batch_size: int = 16, future: int | None = None) -> np.ndarray:
    """Predict `future` frames (default `module.hparams.future`) after each input sequence; float32
    in [0, 1], (future, C, H, W) for one input sequence or (N, future, C, H, W) for a batch."""
    batch, single = as_batch(frames, module.net.in_channels)
    preds = [module.forecast(chunk, future).cpu() for chunk in batch.split(batch_size)]
    out = torch.cat(preds).numpy()
    return out[0] if single else out
