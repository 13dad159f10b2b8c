"""Skill scores of precipitation nowcasts per intensity threshold: CSI, POD, FAR, HSS, frequency bias,
CSI after max-pooling (SEVIR's CSI-pool4, CSI-pool16) and the fractions skill score (FSS).

A pixel is an event at threshold `thr` when its value is >= thr (in the data's physical units).
Over the valid pixels (neither prediction nor target NaN) the contingency table counts hits
(both events), misses (target only), false alarms (prediction only) and correct negatives:

    CSI  = H / (H + M + F)                      critical success index (threat score)
    POD  = H / (H + M)                          probability of detection
    FAR  = F / (H + F)                          false alarm ratio
    HSS  = 2 (H CN - M F) / ((H + M)(M + CN) + (H + F)(F + CN))   Heidke skill score
    bias = (H + F) / (H + M)                    frequency bias
    ETS  = (H - Hr) / (H + M + F - Hr),  Hr = (H + M)(H + F) / N     equitable threat score (Gilbert
                                                skill score, GSS), N = H + M + F + CN
    SEDI = (ln F' - ln POD + ln(1 - POD) - ln(1 - F')) / (ln F' + ln POD + ln(1 - POD) + ln(1 - F')),
           F' = F / (F + CN), the false alarm rate  symmetric extremal dependence index (Ferro and
                                                Stephenson 2011); NaN where POD or F' is 0 or 1

Pooled CSI (Veillette et al. 2020, SEVIR; Gao et al. 2022, Earthformer): prediction and target are
max-pooled over non-overlapping `size` x `size` windows (partial windows at the right and bottom
edges included; a window counts the valid pixels only, and none is missing), then scored as
above: a window is an event where any of its pixels is one. CSI-M, the mean over thresholds, is
`csi_mean`.

Fractions skill score (Roberts and Lean 2008, Mon. Wea. Rev. 136, 78-97): with I the binary event
field and P the fraction of events in the n x n neighbourhood of each pixel (zero padding outside
the frame, as pysteps and scipy's `uniform_filter(mode="constant")`; for even n the window reaches
n // 2 pixels before and n // 2 - 1 after),

    FSS = 1 - sum (P_f - P_o)^2 / (sum P_f^2 + sum P_o^2)

summed over every pixel (and frame). Pixels missing in either field are non-events in both, like
the area outside the frame (pysteps sets NaN to non-events). n = 1 is the pixel scale.

A score whose denominator is 0 (no event to score) is NaN, never 0. ETS and SEDI are pysteps'
`det_cat_fct` ETS / GSS and SEDI.

B-MSE and B-MAE (Shi et al. 2017, NeurIPS, the HKO-7 benchmark's headline scores): the mean over the
valid pixels (target not NaN) of w (p - t)^2 and w |p - t|, with p and t in the data's physical units
(so B-MSE is in units^2, dBZ^2 for reflectivity, and B-MAE in units), and w the weight of the
target's intensity (`balanced_weights`, `pixel_weights`: HKO-7's 1, 2, 5, 10, 30 from 0.5, 2, 5, 10,
30 mm/h up, 1 below; the weights of the `bmse` / `bmae` losses, which take the same mean on the
[0, 1]-scaled values). HKO-7 reports sums over each 480 x 480 frame of values scaled to [0, 1]
instead: multiply by H W / (high - low)^2 (B-MSE) or H W / (high - low) (B-MAE) to compare.

Conventions: convgru counts a value >= thr as an event, as HKO-7's and SEVIR's evaluation code do.
pysteps' `det_cat_fct` counts a value > thr (and NaN as a non-event), its `fss` counts >= thr.

Scaled data (`value_range` given) are compared in the scaled space, with each threshold scaled
exactly as the data modules scale values (`convgru.domain.units.to_scaled`), so that every
value at or above a threshold in the files' units counts as an event, whatever the value_range
(mapping the scaled data back to physical units instead loses values at the threshold: 53 mm/h
of [0, 100] comes back as 52.999996). Every comparison is made in the dtype of the tensor
compared, with the threshold rounded to that dtype: rounding is monotone, so a value that was
>= thr before it was rounded to bfloat16 or float16 still is after.
"""

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from convgru._checks import OptionError
from convgru.domain.units import UNITS, check_value_range, rain_rate_to_dbz, to_scaled

#: The categorical scores per threshold (critical success index, probability of detection, false alarm
#: ratio, Heidke and equitable threat skill scores, symmetric extremal dependence index, frequency bias).
SCORES = ("csi", "pod", "far", "hss", "ets", "sedi", "bias")
# HKO-7 (Shi et al. 2017): rain-rate thresholds in mm/h and the weight from each threshold up (1 below the first).
HKO7_THRESHOLDS = (0.5, 2.0, 5.0, 10.0, 30.0)
HKO7_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 30.0)


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


def check_sizes(sizes, option: str) -> list[int]:
    """Window sizes in pixels (FSS neighbourhoods, CSI pooling) as a list of ints: None or [] for none;
    OptionError naming `option` unless strictly increasing integers >= 1."""
    if sizes is None:
        return []
    values = list(sizes) if not isinstance(sizes, (str, bytes)) and hasattr(sizes, "__iter__") else None
    if values is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values) or any(
            b <= a for a, b in zip(values, values[1:])):
        raise OptionError(option, f"expected an increasing list of window sizes in pixels (integers >= 1), "
                          f"found {sizes!r}")
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


def max_pooled(pred: torch.Tensor, target: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pred and target (N, H, W) max-pooled over non-overlapping size x size windows (partial windows at
    the edges kept): (N, ceil(H / size), ceil(W / size)) each. A pixel missing (NaN) in either is left
    out of both; a window with no valid pixel is NaN in both."""
    if not pred.is_floating_point():
        pred, target = pred.double(), target.double()
    missing = pred.isnan() | target.isnan()
    pooled = []
    for x in (pred, target):
        x = F.max_pool2d(x.masked_fill(missing, -torch.inf)[:, None], size, size, ceil_mode=True)[:, 0]
        pooled.append(x.masked_fill(x == -torch.inf, torch.nan))
    return pooled[0], pooled[1]


def box_sums(events: torch.Tensor, size: int) -> torch.Tensor:
    """The number of events in the size x size neighbourhood of every pixel of `events` (..., H, W) (0/1
    float32; zero padding outside: `size // 2` pixels before and `(size - 1) // 2` after, as scipy's
    `uniform_filter(mode="constant")`), (..., H, W) float32 (exact: integers), by running sums."""
    if size == 1:
        return events
    size = min(size, 2 * max(events.shape[-2:]) + 1)  # every larger neighbourhood covers the whole frame too
    before, after = size // 2, (size - 1) // 2
    x = F.pad(events, (before + 1, after, before + 1, after)).cumsum(-1)  # a leading 0 to subtract from
    x = (x[..., size:] - x[..., :-size]).cumsum(-2)
    return x[..., size:, :] - x[..., :-size, :]


def fss_sums(pred: torch.Tensor, target: torch.Tensor, thresholds, scales) -> torch.Tensor:
    """Sums (..., K, S, 2) float64 of the FSS over the last three dims of pred and target (..., M, H, W):
    sum (c_f - c_o)^2 and sum c_f^2 + c_o^2 with c the event counts of each n x n neighbourhood
    (`box_sums`; FSS = 1 - first / second, the 1 / n^4 of the fractions cancelling). Events are values
    >= threshold (`at_least`); pixels missing in either field are non-events in both."""
    lead, (h, w) = pred.shape[:-3], pred.shape[-2:]
    valid = ~(pred.isnan() | target.isnan())
    out = []
    for thr in thresholds:
        events = [(at_least(x, thr) & valid).reshape(-1, h, w).float() for x in (pred, target)]
        per_scale = []
        for size in scales:
            f, o = (box_sums(e, size).reshape(*lead, -1) for e in events)  # integers, exact in float32
            per_scale.append(torch.stack([(f - o).square_().sum(-1, dtype=torch.float64),
                                          (f.square() + o.square_()).sum(-1, dtype=torch.float64)], -1))
        out.append(torch.stack(per_scale, -2))
    return torch.stack(out, -3)


def fss_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """FSS (...) float64 from `fss_sums` (..., 2): 1 - first / second, NaN where no field has an event."""
    return 1 - _ratio(sums[..., 0], sums[..., 1])


def scaled_thresholds(thresholds: list[float], value_range) -> list[float]:
    """The thresholds to compare data with: as they are without `value_range`, else scaled as the data
    modules scale values (`to_scaled`, float32 values as Python floats)."""
    return list(thresholds) if value_range is None else to_scaled(thresholds, value_range).tolist()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den, torch.nan)


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores {csi, pod, far, hss, ets, sedi, bias: (...) float64} from contingency counts (..., 4) (H, M, F, CN)."""
    h, m, f, cn = counts.double().unbind(-1)
    pod, false_rate = _ratio(h, h + m), _ratio(f, f + cn)
    random_hits = _ratio((h + m) * (h + f), h + m + f + cn)
    logs = [torch.log(v) for v in (false_rate, pod, 1 - pod, 1 - false_rate)]
    with_logs = torch.isfinite(torch.stack(logs)).all(0)  # POD and F' in (0, 1): every log finite, their sum < 0
    sedi = (logs[0] - logs[1] + logs[2] - logs[3]) / sum(logs).where(with_logs, -1.0)
    return {
        "csi": _ratio(h, h + m + f),
        "pod": pod,
        "far": _ratio(f, h + f),
        "hss": _ratio(2 * (h * cn - m * f), (h + m) * (m + cn) + (h + f) * (f + cn)),
        "ets": _ratio(h - random_hits, (h + m + f - random_hits).where(h + m + f > 0, 0.0)),
        "sedi": sedi.where(with_logs, torch.nan),
        "bias": _ratio(h + f, h + m),
    }


def balanced_weights(value_range, thresholds=None, weights=None, units: str = "mm/h",
                     name: str = "bmse") -> tuple[list[float], list[float]]:
    """The intensities (in the data's `units`, increasing) from which each weight of B-MSE / B-MAE
    applies, and the weights (1 below the first): `thresholds` and `weights` (None: HKO-7's
    rain rates 0.5, 2, 5, 10, 30 mm/h and weights 1, 2, 5, 10, 30). "dBZ" takes the thresholds as
    rain rates in mm/h and converts them with HKO-7's Z-R relation (`rain_rate_to_dbz`); other
    units take them as they are, and HKO-7's defaults only for "mm/h". ValueError naming
    model.value_range / model.loss_units / model.loss_thresholds / model.loss_weights (the options
    they come from) for what does not fit; `name` is the loss or score that needs them."""
    if value_range is None:
        raise ValueError(f"model.loss={name} weighs pixels by their physical value and needs model.value_range: "
                         "expected [low, high] (the values that map to 0 and 1, as data.value_range), found None")
    check_value_range(value_range, "model.value_range")
    if units not in UNITS:
        raise ValueError(f"model.loss_units must be one of {list(UNITS)}, got {units!r}")
    if thresholds is None and units not in ("mm/h", "dBZ"):
        raise ValueError(f"model.loss={name} with model.loss_units={units}: give model.loss_thresholds in {units} "
                         "(and model.loss_weights); the default thresholds are HKO-7's rain rates in mm/h")
    thresholds = check_thresholds(HKO7_THRESHOLDS if thresholds is None else thresholds,
                                  option="model.loss_thresholds")
    try:
        weights = [float(w) for w in (HKO7_WEIGHTS if weights is None else weights)]
    except (TypeError, ValueError):
        raise OptionError("model.loss_weights", f"expected a list of numbers, found {weights!r}") from None
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
    return thresholds, weights


def pixel_weights(target: torch.Tensor, scaled_thresholds, weights: torch.Tensor) -> torch.Tensor:
    """B-MSE / B-MAE weights of the target's pixels (same shape): weights[i] (a tensor [1, w_1, ...,
    w_K]) where the target reaches i of the increasing `scaled_thresholds` (`at_least`, in its dtype)."""
    reached = torch.zeros(target.shape, dtype=torch.long, device=target.device)
    for thr in scaled_thresholds:  # increasing: the number reached is the index of the weight
        reached += at_least(target, thr)
    return weights.to(target.device)[reached]


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
    """Accumulate contingency counts (and FSS sums, pooled counts) per threshold and lead time over
    batches (and DDP ranks), in one pass.

    `update(pred, target)` takes (B, T, C, H, W) with T == `frames` (any dtype; bfloat16 and
    float16 too), in physical units, or scaled to [0, 1] by the data modules when
    `value_range=(low, high)` is given: the thresholds are then scaled as the data were
    (`to_scaled`), so every value at or above a threshold in the files' units is an event.
    `fss_scales` (neighbourhood sizes n in pixels, e.g. [1, 5, 11, 21]) adds the fractions skill
    score per threshold, scale and lead time; `pool_sizes` (e.g. [4, 16]) adds CSI after max-pooling
    over size x size windows (see the module's docstring for both; OptionError naming
    `fss_scales` / `pool_sizes` unless increasing integers >= 1).

    `balance` = (thresholds, weights) (`balanced_weights`: intensities in physical units and their
    weights) adds B-MSE and B-MAE in physical units (see the module's docstring).

    `compute()` returns {`csi_<thr>`, ..., `csi_mean`, ...: scalar} from the counts pooled over lead
    times, `csi_pool<size>_<thr>` and `csi_pool<size>_mean` for each pool size, `fss_<n>px_<thr>` and
    `fss_<n>px_mean` for each scale, `bmse` and `bmae` with `balance`, and each also per lead time as
    `<name>_per_lead`, (T,) (float32); torchmetrics gives a (1,) result as a scalar, so with one lead time
    tell them apart by the `_per_lead` suffix, not by shape.
    """

    full_state_update = False

    def __init__(self, thresholds, frames: int, value_range=None, fss_scales=None, pool_sizes=None,
                 balance=None):
        super().__init__()
        if not isinstance(frames, int) or frames < 1:
            raise OptionError("frames", f"expected an integer >= 1, found {frames!r}")
        self.thresholds, self.frames = check_thresholds(thresholds), frames
        self.value_range = check_value_range(value_range)
        self.fss_scales = check_sizes(fss_scales, "fss_scales")
        self.pool_sizes = check_sizes(pool_sizes, "pool_sizes")
        self.compared = scaled_thresholds(self.thresholds, self.value_range)  # what the data are compared with
        k = len(self.thresholds)
        self.add_state("counts", default=torch.zeros(frames, k, 4, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("pooled_counts", default=torch.zeros(len(self.pool_sizes), frames, k, 4, dtype=torch.int64),
                       dist_reduce_fx="sum")
        self.add_state("fss", default=torch.zeros(frames, k, len(self.fss_scales), 2, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.balance = None
        if balance is not None:  # scaled thresholds, as the data; the weights as a tensor [1, w_1, ..., w_K]
            self.balance = (scaled_thresholds(list(balance[0]), self.value_range or (0.0, 1.0)),
                            torch.tensor([1.0, *balance[1]], dtype=torch.float64))
            # sums over the valid pixels of w (p - t)^2, w |p - t| (scaled to [0, 1]) and their number
            self.add_state("balanced", default=torch.zeros(frames, 3, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W) with T == frames."""
        if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] != self.frames:
            raise ValueError(f"SkillScores expects pred and target of shape (B, {self.frames}, C, H, W), "
                             f"got {tuple(pred.shape)} and {tuple(target.shape)}")
        per_lead = (x.transpose(0, 1).reshape(self.frames, -1) for x in (pred, target))
        self.counts += contingency(*per_lead, self.compared)  # (T, K, 4)
        if self.balance is not None:
            p, t = (x.transpose(0, 1).reshape(self.frames, -1).double() for x in (pred, target))
            valid = ~t.isnan()
            w = pixel_weights(t, *self.balance).where(valid, 0.0)
            error = (p - t).where(valid, 0.0)
            self.balanced += torch.stack([(w * error.square()).sum(-1), (w * error.abs()).sum(-1),
                                          valid.sum(-1).double()], -1)
        if not (self.pool_sizes or self.fss_scales):
            return
        h, w = pred.shape[-2:]
        images = [x.transpose(0, 1).reshape(-1, h, w) for x in (pred, target)]  # (T * B * C, H, W)
        for i, size in enumerate(self.pool_sizes):
            pooled = (x.reshape(self.frames, -1) for x in max_pooled(*images, size))
            self.pooled_counts[i] += contingency(*pooled, self.compared)
        if self.fss_scales:
            self.fss += fss_sums(*(x.reshape(self.frames, -1, h, w) for x in images), self.compared, self.fss_scales)

    def _scores(self, reduce) -> dict[str, torch.Tensor]:
        """Every score from the states reduced over lead times by `reduce` (the sum, or none), keyed by name."""
        scores = _by_threshold(scores_from_counts(reduce(self.counts).movedim(-2, 0)), self.thresholds)
        for size, counts in zip(self.pool_sizes, self.pooled_counts):
            csi = scores_from_counts(reduce(counts).movedim(-2, 0))["csi"]
            scores.update(_by_threshold({f"csi_pool{size}": csi}, self.thresholds))
        if self.balance is not None:  # means in physical units: (high - low)^2 and (high - low) times the scaled
            low, high = self.value_range or (0.0, 1.0)
            sums = reduce(self.balanced)
            scores["bmse"] = _ratio(sums[..., 0], sums[..., 2]) * (high - low) ** 2
            scores["bmae"] = _ratio(sums[..., 1], sums[..., 2]) * (high - low)
        fss = fss_from_sums(reduce(self.fss))  # (..., K, S)
        for j, n in enumerate(self.fss_scales):
            scores.update(_by_threshold({f"fss_{n}px": fss[..., j].movedim(-1, 0)}, self.thresholds))
        return scores

    def compute(self) -> dict[str, torch.Tensor]:
        pooled = self._scores(lambda state: state.sum(0))
        per_lead = self._scores(lambda state: state)
        return {**{k: v.float() for k, v in pooled.items()},
                **{f"{k}_per_lead": v.float() for k, v in per_lead.items()}}
