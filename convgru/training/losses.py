"""Training losses on [0, 1]-scaled frames: MSE, L1 and Shi et al.'s (2017) balanced B-MSE / B-MAE.

Every loss leaves out pixels whose target is NaN (missing data) and averages over the others.
"""

import torch
from torch import nn

from convgru._checks import OptionError
from convgru.domain.scores import balanced_weights, pixel_weights
from convgru.domain.units import to_scaled

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
    """``mean(w * (p - t)^2)`` and/or ``mean(w * |p - t|)`` (summed when both) over the pixels whose target is not NaN.

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
        """Weights of the target's pixels (same shape; `convgru.domain.scores.pixel_weights`); 1 everywhere
        without thresholds."""
        return pixel_weights(target, self.scaled_thresholds, self.weights)

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


def build_loss(name: str = "mse", value_range=None, thresholds=None, weights=None,
               units: str = "mm/h") -> WeightedLoss:
    """The loss `name`: mse | l1 | mse+l1 | bmse | bmae | bmse+bmae.

    The balanced losses need `value_range` = (low, high), the physical values that the data
    modules map to 0 and 1. `thresholds` and `weights` (None: HKO-7's) are the intensities from
    which each weight applies, in `units`, the unit of the data (`balanced_weights`, which the
    B-MSE / B-MAE scores share: "dBZ" takes the thresholds as rain rates in mm/h and converts them
    with HKO-7's Z-R relation; HKO-7's rain-rate defaults are only taken for "mm/h" and "dBZ").
    """
    if name not in LOSSES:
        raise ValueError(f"model.loss must be one of {list(LOSSES)}, got {name!r}")
    squared, absolute, balanced = LOSSES[name]
    if not balanced:
        return WeightedLoss(squared, absolute)
    thresholds, weights = balanced_weights(value_range, thresholds, weights, units, name)
    return WeightedLoss(squared, absolute, thresholds, weights, value_range)
