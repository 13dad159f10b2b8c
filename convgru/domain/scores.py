"""Categorical skill scores of precipitation nowcasts per intensity threshold: CSI, POD, FAR, HSS, frequency bias.

A pixel is an event at threshold `thr` when its value is >= thr (in the data's physical units).
Over the valid pixels (neither prediction nor target NaN) the contingency table counts hits
(both events), misses (target only), false alarms (prediction only) and correct negatives:

    CSI  = H / (H + M + F)                      critical success index (threat score)
    POD  = H / (H + M)                          probability of detection
    FAR  = F / (H + F)                          false alarm ratio
    HSS  = 2 (H CN - M F) / ((H + M)(M + CN) + (H + F)(F + CN))   Heidke skill score
    bias = (H + F) / (H + M)                    frequency bias

A score whose denominator is 0 (no event to score) is NaN, never 0.

Scaled data (`value_range` given) are compared in the scaled space, with each threshold scaled
exactly as the data modules scale values (`convgru.domain.units.to_scaled`), so that every
value at or above a threshold in the files' units counts as an event, whatever the value_range
(mapping the scaled data back to physical units instead loses values at the threshold: 53 mm/h
of [0, 100] comes back as 52.999996). Every comparison is made in the dtype of the tensor
compared, with the threshold rounded to that dtype: rounding is monotone, so a value that was
>= thr before it was rounded to bfloat16 or float16 still is after.
"""

import torch
from torchmetrics import Metric

from convgru._checks import OptionError
from convgru.domain.units import check_value_range, to_scaled

SCORES = ("csi", "pod", "far", "hss", "bias")


def check_thresholds(thresholds, value_range=None, option: str = "thresholds",
                     range_option: str = "value_range") -> list[float]:
    """Thresholds as a list of floats; ValueError naming `option` unless a non-empty, strictly increasing
    list of numbers, each above low and at most high when `value_range` = (low, high) is given."""
    try:
        values = [float(t) for t in thresholds] if not isinstance(thresholds, (str, bytes)) else None
    except (TypeError, ValueError):
        values = None
    if not values or any(b <= a for a, b in zip(values, values[1:])) or any(v != v for v in values):
        raise OptionError(option, f"expected a non-empty, increasing list of numbers, found {thresholds!r}")
    if value_range is not None:
        low, high = (float(v) for v in value_range)
        outside = [f"{v:g}" for v in values if not low < v <= high]
        if outside:
            raise OptionError(option, f"expected thresholds above {low:g} and at most {high:g} ({range_option} "
                             f"[{low:g}, {high:g}], the physical values that map to 0 and 1), found "
                             f"{', '.join(outside)} in {values}")
    return values


def at_least(x: torch.Tensor, thr: float) -> torch.Tensor:
    """x >= thr, with thr rounded to x's floating dtype (integers are compared in float64)."""
    if not x.is_floating_point():
        x = x.double()
    return x >= float(torch.tensor(thr, dtype=torch.float64).to(x.dtype))


def contingency(pred: torch.Tensor, target: torch.Tensor, thresholds) -> torch.Tensor:
    """Counts (..., K, 4) int64 of hits, misses, false alarms, correct negatives over the last dim of (..., N).

    An event is a value >= threshold (`at_least`: in each tensor's own dtype). Pixels where pred or
    target is NaN are left out of every count.
    """
    valid = ~(pred.isnan() | target.isnan())
    total = valid.sum(-1)
    counts = []
    for thr in thresholds:
        pred_event, target_event = at_least(pred, thr) & valid, at_least(target, thr) & valid
        hits = (pred_event & target_event).sum(-1)
        n_pred, n_target = pred_event.sum(-1), target_event.sum(-1)
        counts.append(torch.stack([hits, n_target - hits, n_pred - hits, total - n_pred - n_target + hits], -1))
    return torch.stack(counts, -2)


def scaled_thresholds(thresholds: list[float], value_range) -> list[float]:
    """The thresholds to compare data with: as they are without `value_range`, else scaled as the data
    modules scale values (`to_scaled`, float32 values as Python floats)."""
    return list(thresholds) if value_range is None else to_scaled(thresholds, value_range).tolist()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den, torch.nan)


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores {csi, pod, far, hss, bias: (...) float64} from contingency counts (..., 4) (H, M, F, CN)."""
    h, m, f, cn = counts.double().unbind(-1)
    return {
        "csi": _ratio(h, h + m + f),
        "pod": _ratio(h, h + m),
        "far": _ratio(f, h + f),
        "hss": _ratio(2 * (h * cn - m * f), (h + m) * (m + cn) + (h + f) * (f + cn)),
        "bias": _ratio(h + f, h + m),
    }


def _by_threshold(scores: dict[str, torch.Tensor], thresholds: list[float]) -> dict[str, torch.Tensor]:
    """{score_<thr>: (...), score_mean: (...)} from scores (K, ...); the mean skips thresholds where it is NaN."""
    out = {}
    for name, values in scores.items():
        out.update({f"{name}_{thr:g}": v for thr, v in zip(thresholds, values)})
        out[f"{name}_mean"] = values.nanmean(0)
    return out


def skill_scores(pred: torch.Tensor, target: torch.Tensor, thresholds, value_range=None) -> dict[str, float]:
    """Scores over all pixels of pred and target (any equal shape) at each threshold.

    pred and target are in physical units, or scaled to [0, 1] by the data modules when
    `value_range` = (low, high) is given (the thresholds are then scaled the same way; see the
    module's docstring). Returns floats keyed `csi_<thr>`, `pod_<thr>`, `far_<thr>`, `hss_<thr>`,
    `bias_<thr>` with <thr> as f"{thr:g}" (e.g. `csi_20`, `csi_0.5`), and `csi_mean` etc., the
    means over the thresholds where the score is defined (NaN where it is defined at none).
    """
    thresholds = check_thresholds(thresholds)
    if pred.shape != target.shape:
        raise OptionError("skill_scores", f"expected pred and target of equal shape, found {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    compared = scaled_thresholds(thresholds, check_value_range(value_range))
    counts = contingency(pred.reshape(-1), target.reshape(-1), compared)  # (K, 4)
    return {k: v.item() for k, v in _by_threshold(scores_from_counts(counts), thresholds).items()}


class SkillScores(Metric):
    """Accumulate contingency counts per threshold and lead time over batches (and DDP ranks).

    `update(pred, target)` takes (B, T, C, H, W) with T == `frames` (any dtype; bfloat16 and
    float16 too), in physical units, or scaled to [0, 1] by the data modules when
    `value_range=(low, high)` is given: the thresholds are then scaled as the data were
    (`to_scaled`), so every value at or above a threshold in the files' units is an event.
    `compute()` returns {`csi_<thr>`, ..., `csi_mean`, ...: scalar} from the counts pooled over lead times, and
    {`csi_<thr>_per_lead`, ..., `csi_mean_per_lead`, ...: (T,)} per lead time (float32). Log the
    scalars with `{k: v for k, v in out.items() if v.ndim == 0}`.
    """

    full_state_update = False

    def __init__(self, thresholds, frames: int, value_range=None):
        super().__init__()
        if not isinstance(frames, int) or frames < 1:
            raise OptionError("frames", f"expected an integer >= 1, found {frames!r}")
        self.thresholds, self.frames = check_thresholds(thresholds), frames
        self.value_range = check_value_range(value_range)
        self.compared = scaled_thresholds(self.thresholds, self.value_range)  # what the data are compared with
        self.add_state("counts", default=torch.zeros(frames, len(self.thresholds), 4, dtype=torch.int64),
                       dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W) with T == frames."""
        if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] != self.frames:
            raise ValueError(f"SkillScores expects pred and target of shape (B, {self.frames}, C, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        per_lead = (x.transpose(0, 1).reshape(self.frames, -1) for x in (pred, target))
        self.counts += contingency(*per_lead, self.compared)  # (T, K, 4)

    def compute(self) -> dict[str, torch.Tensor]:
        pooled = _by_threshold(scores_from_counts(self.counts.sum(0)), self.thresholds)
        per_lead = _by_threshold(scores_from_counts(self.counts.transpose(0, 1)), self.thresholds)
        return {**{k: v.float() for k, v in pooled.items()},
                **{f"{k}_per_lead": v.float() for k, v in per_lead.items()}}
