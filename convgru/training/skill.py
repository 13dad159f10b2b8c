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
"""

import torch
from torchmetrics import Metric

from convgru.training.units import to_physical

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
        raise ValueError(f"{option}: expected a non-empty, increasing list of numbers, found {thresholds!r}")
    if value_range is not None:
        low, high = (float(v) for v in value_range)
        outside = [f"{v:g}" for v in values if not low < v <= high]
        if outside:
            raise ValueError(f"{option}: expected thresholds above {low:g} and at most {high:g} ({range_option} "
                             f"[{low:g}, {high:g}], the physical values that map to 0 and 1), found "
                             f"{', '.join(outside)} in {values}")
    return values


def contingency(pred: torch.Tensor, target: torch.Tensor, thresholds) -> torch.Tensor:
    """Counts (..., K, 4) int64 of hits, misses, false alarms, correct negatives over the last dim of (..., N).

    Pixels where pred or target is NaN are left out of every count.
    """
    valid = ~(pred.isnan() | target.isnan())
    total = valid.sum(-1)
    counts = []
    for thr in thresholds:
        pred_event, target_event = (pred >= thr) & valid, (target >= thr) & valid
        hits = (pred_event & target_event).sum(-1)
        n_pred, n_target = pred_event.sum(-1), target_event.sum(-1)
        counts.append(torch.stack([hits, n_target - hits, n_pred - hits, total - n_pred - n_target + hits], -1))
    return torch.stack(counts, -2)


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


def skill_scores(pred: torch.Tensor, target: torch.Tensor, thresholds) -> dict[str, float]:
    """Scores over all pixels of pred and target (any equal shape, physical units) at each threshold.

    Returns floats keyed `csi_<thr>`, `pod_<thr>`, `far_<thr>`, `hss_<thr>`, `bias_<thr>` with
    <thr> as f"{thr:g}" (e.g. `csi_20`, `csi_0.5`), and `csi_mean` etc., the means over the
    thresholds where the score is defined (NaN where it is defined at none).
    """
    thresholds = check_thresholds(thresholds)
    if pred.shape != target.shape:
        raise ValueError(f"skill_scores: expected pred and target of equal shape, found {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    counts = contingency(pred.reshape(-1), target.reshape(-1), thresholds)  # (K, 4)
    return {k: v.item() for k, v in _by_threshold(scores_from_counts(counts), thresholds).items()}


class SkillScores(Metric):
    """Accumulate contingency counts per threshold and lead time over batches (and DDP ranks).

    `update(pred, target)` takes (B, T, C, H, W) with T == `frames`, in physical units, or in
    [0, 1] when `value_range=(low, high)` is given (mapped to low..high first). `compute()` returns
    {`csi_<thr>`, ..., `csi_mean`, ...: scalar} from the counts pooled over lead times, and
    {`csi_<thr>_per_lead`, ..., `csi_mean_per_lead`, ...: (T,)} per lead time (float32). Log the
    scalars with `{k: v for k, v in out.items() if v.ndim == 0}`.
    """

    full_state_update = False

    def __init__(self, thresholds, frames: int, value_range=None):
        super().__init__()
        if not isinstance(frames, int) or frames < 1:
            raise ValueError(f"frames: expected an integer >= 1, found {frames!r}")
        if value_range is not None and (len(value_range) != 2 or value_range[1] <= value_range[0]):
            raise ValueError(f"value_range: expected [low, high] with high > low, found {value_range!r}")
        self.thresholds, self.frames = check_thresholds(thresholds), frames
        self.value_range = tuple(float(v) for v in value_range) if value_range is not None else None
        self.add_state("counts", default=torch.zeros(frames, len(self.thresholds), 4, dtype=torch.int64),
                       dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W) with T == frames."""
        if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] != self.frames:
            raise ValueError(f"SkillScores expects pred and target of shape (B, {self.frames}, C, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        if self.value_range is not None:
            pred, target = to_physical(pred.float(), self.value_range), to_physical(target.float(), self.value_range)
        per_lead = (x.transpose(0, 1).reshape(self.frames, -1) for x in (pred, target))
        self.counts += contingency(*per_lead, self.thresholds)  # (T, K, 4)

    def compute(self) -> dict[str, torch.Tensor]:
        pooled = _by_threshold(scores_from_counts(self.counts.sum(0)), self.thresholds)
        per_lead = _by_threshold(scores_from_counts(self.counts.transpose(0, 1)), self.thresholds)
        return {**{k: v.float() for k, v in pooled.items()},
                **{f"{k}_per_lead": v.float() for k, v in per_lead.items()}}
