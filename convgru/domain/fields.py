"""Gridded weather and climate fields: the normalization of each variable into [0, 1] and back, and
the scores of the field (Rasp et al. 2020, "WeatherBench: a benchmark data set for data-driven weather
forecasting", JAMES 12, e2020MS002203): latitude-weighted RMSE and the anomaly correlation
coefficient (ACC) per variable and lead time, in physical units.

Domain layer: pure torch (and numpy for the normalization of arrays read from files).
"""

import math

import numpy as np
import torch
from torchmetrics import Metric

from convgru._checks import OptionError

SIGMAS = 5.0  # z-scores in [-SIGMAS, SIGMAS] map to [0, 1]: the range of every convgru forecast


def normalize(values, mean, std):
    """Physical values -> the network's space: z = (v - mean) / std per channel, then (z + SIGMAS) / (2 SIGMAS),
    so that the mean maps to 0.5 and mean +- 5 std to 0 and 1 (not clipped: inputs and targets may lie outside).

    values: (..., C, H, W) numpy array or tensor; mean, std: (C,) in the values' units. Returns float32
    (a tensor for a tensor, else a numpy array). Inverse: `denormalize`."""
    mean, std, shape = _stats(values, mean, std)
    return ((values - mean.reshape(shape)) / (std.reshape(shape) * 2 * SIGMAS) + 0.5)


def denormalize(values, mean, std):
    """The network's space -> physical values, the inverse of `normalize`: mean + std (2 SIGMAS v - SIGMAS).

    values: (..., C, H, W) numpy array or tensor (forecasts in [0, 1] give mean +- 5 std); mean, std: (C,)."""
    mean, std, shape = _stats(values, mean, std)
    return mean.reshape(shape) + (values - 0.5) * (std.reshape(shape) * 2 * SIGMAS)


def _stats(values, mean, std):
    """mean and std as float32 arrays or tensors matching `values`, and their broadcast shape (C, 1, 1)."""
    if torch.is_tensor(values):
        mean, std = (torch.as_tensor(np.asarray(s, dtype=np.float32), device=values.device) for s in (mean, std))
    else:
        mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return mean, std, (-1, 1, 1)


def latitude_weights(latitudes) -> torch.Tensor:
    """L(j) = cos(lat_j) / mean_j cos(lat_j) (Rasp et al. 2020, eq. 1): (H,) float64 tensor, mean 1.

    latitudes: (H,) in degrees (either order). OptionError (a ValueError, option "latitudes") unless within
    [-90, 90] and not all at a pole."""
    lat = torch.from_numpy(np.array(latitudes, dtype=np.float64))
    if lat.ndim != 1 or not bool(((lat >= -90) & (lat <= 90)).all()):
        raise OptionError("latitudes", f"expected a 1-d axis in degrees within [-90, 90], found {lat.tolist()[:8]}")
    weights = torch.cos(torch.deg2rad(lat)).clamp(min=0)
    if float(weights.sum()) <= 0:
        raise OptionError("latitudes", "every latitude is a pole (cos(lat) = 0): nothing to weight")
    return weights / weights.mean()


def weighted_rmse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Latitude-weighted RMSE of each field: sqrt(sum_jk L(j) (f - t)^2 / sum_jk L(j)) over the valid
    points (target not NaN); (..., H, W) -> (...), NaN where no point is valid.

    With every point valid this is Rasp et al.'s (2020) eq. 1 for one forecast, sqrt(1 / (N_lat N_lon)
    sum_j sum_k L(j) (f_jk - t_jk)^2), as sum_jk L(j) = N_lat N_lon; the score of a set is the mean
    over its forecasts. weights: (H,) `latitude_weights`."""
    valid = ~target.isnan()
    w = weights.to(pred.device, torch.float64)[:, None] * valid
    error = torch.where(valid, pred.double() - target.double(), 0.0).square()
    return ((w * error).sum((-2, -1)) / w.sum((-2, -1))).sqrt()


def anomaly_sums(pred: torch.Tensor, target: torch.Tensor, climatology: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
    """The three sums of the ACC of Rasp et al. (2020, eq. 2) over the valid points (target not NaN) of
    each field: (..., H, W) -> (..., 3) float64 of sum L f' t', sum L f'^2, sum L t'^2, with
    f' = f - C and t' = t - C the anomalies from the climatology C at each field's valid time (broadcast
    to the fields; WeatherBench's C is the climatology by day of year and hour of day)."""
    valid = ~target.isnan()
    w = weights.to(pred.device, torch.float64)[:, None] * valid
    clim = climatology.double()
    f = torch.where(valid, pred.double() - clim, 0.0)
    t = torch.where(valid, target.double() - clim, 0.0)
    return torch.stack([(w * f * t).sum((-2, -1)), (w * f * f).sum((-2, -1)), (w * t * t).sum((-2, -1))], -1)


def acc_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """ACC = sum L f' t' / sqrt(sum L f'^2 sum L t'^2) from `anomaly_sums` (..., 3); NaN where a sum of
    squares is 0 (a forecast equal to the climatology has no anomaly to correlate)."""
    cross, ff, tt = sums.unbind(-1)
    denominator = (ff * tt).sqrt()
    return torch.where(denominator > 0, cross / denominator, math.nan)


class FieldScores(Metric):
    """Latitude-weighted RMSE and ACC per lead time and channel, accumulated over batches (and DDP ranks).

    RMSE (Rasp et al. 2020, eq. 1): the mean over forecasts of each forecast's latitude-weighted RMSE
    (`weighted_rmse`). ACC (eq. 2): sum over forecasts and grid points of L f' t' over the square root of
    the sums of L f'^2 and L t'^2 (`anomaly_sums`), anomalies from `climatology`. Both in the units of the
    fields given to `update`; NaN targets are missing points, left out (a field with none valid is left
    out of the RMSE's mean).

    Args: frames (lead times T), channels C, weights (H,) of each row of the grid (`latitude_weights`;
    ones on a grid that is not a latitude-longitude one), acc: whether to score ACC (`update` then takes
    the climatology at each target's valid time). `compute()` -> {"rmse": (T, C), "acc": (T, C)} (acc only
    with `acc`; torchmetrics squeezes (1, 1) to a scalar).
    """

    full_state_update = False

    def __init__(self, frames: int, channels: int, weights: torch.Tensor, acc: bool = False):
        super().__init__()
        self.add_state("rmse_sum", default=torch.zeros(frames, channels, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(frames, channels, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sums", default=torch.zeros(frames, channels, 3, dtype=torch.float64), dist_reduce_fx="sum")
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float64), persistent=False)
        self.acc, self.shape = acc, (frames, channels, len(self.weights))

    def update(self, pred: torch.Tensor, target: torch.Tensor, climatology: torch.Tensor | None = None) -> None:
        """pred, target: (B, T, C, H, W) in physical units; target NaN where missing; climatology
        (broadcastable to them: (B, T, C, H, W), the climatology at each target's valid time) with `acc`."""
        frames, channels, height = self.shape
        if pred.shape != target.shape or pred.ndim != 5 or tuple(pred.shape[1:4]) != (frames, channels, height):
            raise ValueError(f"FieldScores expects pred and target of shape (B, {frames}, {channels}, {height}, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        if self.acc and climatology is None:
            raise ValueError("FieldScores(acc=True).update needs the climatology at the targets' valid times")
        rmse = weighted_rmse(pred, target, self.weights)  # (B, T, C)
        scored = ~rmse.isnan()
        self.rmse_sum += torch.where(scored, rmse, 0.0).sum(0)
        self.count += scored.sum(0)
        if self.acc:
            self.sums += anomaly_sums(pred, target, climatology, self.weights).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        scores = {"rmse": self.rmse_sum / self.count}
        if self.acc:
            scores["acc"] = acc_from_sums(self.sums)
        return scores
