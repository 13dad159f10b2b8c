"""Training losses on [0, 1]-scaled frames: MSE, L1 and Shi et al.'s (2017) balanced B-MSE / B-MAE.

Every loss leaves out pixels whose target is NaN (missing data) and averages over the others.
"""

import torch
from torch import nn

from convgru._checks import OptionError
from convgru.domain.scores import at_least, check_thresholds
from convgru.domain.units import UNITS, check_value_range, rain_rate_to_dbz, to_scaled

# HKO-7 (Shi et al. 2017): rain-rate thresholds in mm/h and the weight from each threshold up (1 below the first).
HKO7_THRESHOLDS = (0.5, 2.0, 5.0, 10.0, 30.0)
HKO7_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 30.0)
# name: (squared-error term, absolute-error term, intensity weights)
LOSSES = {
    "mse": (True, False, False),
    "l1": (False, True, False),
    "mse+l1": (True, True, False),
    "bmse": (True, False, True),
    "bmae": (False, True, True),
    "bmse+bmae": (True, True, True),
}


class WeightedLoss(nn.Module):
    """mean(w * (p - t)^2) and/or mean(w * |p - t|) (summed when both) over the pixels whose target is not NaN.

    pred, target: any equal shape, scaled to [0, 1]. Without `thresholds` w = 1 (plain MSE / L1).
    With them, w = weights[i] for the last threshold i the target reaches (>= thresholds[i] in
    physical units), 1 below the first: Shi et al.'s (2017) B-MSE / B-MAE. `thresholds` must be
    in the data's units; they are scaled by `value_range` = (low, high) exactly as the data
    modules scale values (`to_scaled`) and compared with the scaled target in its own dtype, so
    a target value that was at or above a threshold in the files always gets its weight.
    """

    def __init__(self, squared: bool = True, absolute: bool = False, thresholds=(), weights=(),
                 value_range=(0.0, 1.0)):
        super().__init__()
        self.squared, self.absolute, self.value_range = squared, absolute, tuple(value_range)
        self.thresholds = tuple(float(t) for t in thresholds)  # physical units
        # float32 values as Python floats, not a buffer: a module cast to bfloat16 must not round them
        self.scaled_thresholds = tuple(to_scaled(self.thresholds, self.value_range).tolist()) if thresholds else ()
        self.register_buffer("weights", torch.tensor([1.0, *weights], dtype=torch.float32), persistent=False)

    def pixel_weights(self, target: torch.Tensor) -> torch.Tensor:
        """Weights of the target's pixels (same shape); 1 everywhere without thresholds."""
        reached = torch.zeros(target.shape, dtype=torch.long, device=target.device)
        for thr in self.scaled_thresholds:  # increasing: the number reached is the index of the weight
            reached += at_least(target, thr)
        return self.weights[reached]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: (B, T, C, H, W) or any equal shape -> scalar loss."""
        if pred.shape != target.shape:
            raise OptionError("loss", f"expected pred and target of equal shape, found {tuple(pred.shape)} "
                             f"and {tuple(target.shape)}")
        valid = ~target.isnan()
        diff = torch.where(valid, pred - target, 0.0)
        error = (diff.square() if self.squared else 0) + (diff.abs() if self.absolute else 0)
        if len(self.thresholds):
            error = error * self.pixel_weights(target)
        return error.sum() / valid.sum().clamp(min=1)


def _numbers(option: str, values) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise OptionError(option, f"expected a list of numbers, found {values!r}") from None


def build_loss(name: str = "mse", value_range=None, thresholds=None, weights=None,
               units: str = "mm/h") -> WeightedLoss:
    """The loss `name`: mse | l1 | mse+l1 | bmse | bmae | bmse+bmae.

    The balanced losses need `value_range` = (low, high), the physical values that the data
    modules map to 0 and 1. `thresholds` and `weights` (None: HKO-7's) are the intensities from
    which each weight applies. `units` is the unit of the data (`UNITS`): "dBZ" takes the
    thresholds as rain rates in mm/h and converts them to dBZ with HKO-7's Z-R relation
    (`rain_rate_to_dbz`) first; any other unit compares them with the data as they are, and
    HKO-7's rain-rate defaults are only taken for "mm/h" (give thresholds in kg/m^2 or pixel
    values for those units).
    """
    if name not in LOSSES:
        raise ValueError(f"model.loss must be one of {list(LOSSES)}, got {name!r}")
    squared, absolute, balanced = LOSSES[name]
    if not balanced:
        return WeightedLoss(squared, absolute)
    if value_range is None:
        raise ValueError(f"model.loss={name} weighs pixels by their physical value and needs model.value_range: "
                         "expected [low, high] (the values that map to 0 and 1, as data.value_range), found None")
    check_value_range(value_range, "model.value_range")
    if units not in UNITS:
        raise ValueError(f"model.loss_units must be one of {list(UNITS)}, got {units!r}")
    if thresholds is None and units not in ("mm/h", "dBZ"):
        raise ValueError(f"model.loss={name} with model.loss_units={units}: give model.loss_thresholds in {units} "
                         "(and model.loss_weights); the default thresholds are HKO-7's rain rates in mm/h")
    thresholds = HKO7_THRESHOLDS if thresholds is None else thresholds
    weights = HKO7_WEIGHTS if weights is None else weights
    thresholds = check_thresholds(thresholds, option="model.loss_thresholds")
    weights = _numbers("model.loss_weights", weights)
    if len(weights) != len(thresholds):
        raise ValueError(f"model.loss_weights: expected one weight per threshold ({len(thresholds)}), "
                         f"found {len(weights)}: {weights}")
    if min(weights) < 0:
        raise ValueError(f"model.loss_weights: expected weights >= 0, found {weights}")
    if units == "dBZ":
        if thresholds[0] <= 0:
            raise ValueError("model.loss_thresholds: with model.loss_units=dBZ expected rain rates > 0 mm/h, "
                             f"found {thresholds}")
        thresholds = [float(rain_rate_to_dbz(t)) for t in thresholds]
    return WeightedLoss(squared, absolute, thresholds, weights, value_range)
