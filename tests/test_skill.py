"""Skill scores against hand-computed contingency tables: CSI, POD, FAR, HSS, ETS, SEDI, bias; NaN pixels;
accumulation; B-MSE and B-MAE with the balanced losses' weights."""

import math

import pytest
import torch

from convgru.domain.scores import SkillScores, balanced_weights, contingency, skill_scores
from convgru.domain.units import rain_rate_to_dbz
from convgru.training.losses import build_loss

NAN = float("nan")


def table(hits, misses, false_alarms, negatives, thr=10.0):
    """(pred, target) 1-d whose contingency table at `thr` is the given counts, in shuffled order."""
    pairs = [(thr + 5, thr + 1)] * hits + [(thr - 5, thr)] * misses + [(thr, thr - 1)] * false_alarms
    pairs += [(thr - 1, 0.0)] * negatives
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
    pred, target = torch.tensor(pairs).T
    return pred[order], target[order]


def test_scores_match_hand_computed_table():
    pred, target = table(3, 1, 2, 4)  # equality cases: a miss has target == thr, a false alarm pred == thr
    assert contingency(pred, target, [10.0]).tolist() == [[3, 1, 2, 4]]
    scores = skill_scores(pred.view(2, 5), target.view(2, 5), [10.0])
    assert scores["csi_10"] == pytest.approx(3 / 6)
    assert scores["pod_10"] == pytest.approx(3 / 4)
    assert scores["far_10"] == pytest.approx(2 / 5)
    assert scores["bias_10"] == pytest.approx(5 / 4)
    assert scores["hss_10"] == pytest.approx(2 * (3 * 4 - 1 * 2) / (4 * 5 + 5 * 6))  # 0.4
    random_hits = 4 * 5 / 10
    assert scores["ets_10"] == pytest.approx((3 - random_hits) / (6 - random_hits))  # 0.25
    pod, false_rate = 3 / 4, 2 / 6
    logs = [math.log(false_rate), math.log(pod), math.log(1 - pod), math.log(1 - false_rate)]
    assert scores["sedi_10"] == pytest.approx((logs[0] - logs[1] + logs[2] - logs[3]) / sum(logs))
    assert scores["csi_mean"] == scores["csi_10"]


def test_threshold_equality_is_an_event():
    pred = torch.tensor([20.0, 19.999, 20.0])
    target = torch.tensor([20.0, 20.0, 19.999])
    assert contingency(pred, target, [20.0]).tolist() == [[1, 1, 1, 0]]


def test_no_event_gives_nan_not_zero():
    scores = skill_scores(torch.zeros(4, 4), torch.full((4, 4), 5.0), [20.0, 40.0])
    assert contingency(torch.zeros(16), torch.full((16,), 5.0), [20.0]).tolist() == [[0, 0, 0, 16]]
    assert all(math.isnan(v) for v in scores.values())
    assert len(scores) == 7 * 3  # 7 scores x (2 thresholds + mean)


def test_all_events():
    scores = skill_scores(torch.full((8,), 30.0), torch.full((8,), 50.0), [20.0])
    assert (scores["csi_20"], scores["pod_20"], scores["far_20"], scores["bias_20"]) == (1.0, 1.0, 0.0, 1.0)
    assert math.isnan(scores["hss_20"])  # no negative anywhere: HSS is undefined
    assert math.isnan(scores["ets_20"]) and math.isnan(scores["sedi_20"])  # so are ETS and SEDI (POD = 1)


def test_false_alarms_only_and_key_format():
    scores = skill_scores(torch.tensor([1.0, 0.0]), torch.zeros(2), [0.5, 2])
    assert scores["csi_0.5"] == 0.0 and scores["far_0.5"] == 1.0 and math.isnan(scores["pod_0.5"])
    assert math.isnan(scores["bias_0.5"]) and math.isnan(scores["csi_2"])
    assert scores["csi_mean"] == 0.0  # the mean skips thresholds where the score is undefined


def test_nan_pixels_are_left_out_of_every_count():
    pred, target = table(3, 1, 2, 4)
    pred_nan = torch.cat([pred, torch.tensor([NAN, 50.0, NAN, 0.0])])
    target_nan = torch.cat([target, torch.tensor([50.0, NAN, NAN, NAN])])
    assert contingency(pred_nan, target_nan, [10.0]).tolist() == [[3, 1, 2, 4]]
    assert skill_scores(pred_nan, target_nan, [10.0]) == skill_scores(pred, target, [10.0])


def test_metric_accumulates_batches_leads_and_ranks():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(6, 3, 1, 5, 5, generator=g) * 60, torch.rand(6, 3, 1, 5, 5, generator=g) * 60
    target[0, 1, 0, :2] = NAN
    thresholds = [20, 40]
    whole = SkillScores(thresholds, frames=3)
    whole.update(pred, target)
    batches, rank0, rank1 = SkillScores(thresholds, 3), SkillScores(thresholds, 3), SkillScores(thresholds, 3)
    for i in range(0, 6, 2):
        batches.update(pred[i:i + 2], target[i:i + 2])
    rank0.update(pred[:4], target[:4])
    rank1.update(pred[4:], target[4:])
    rank0.merge_state(rank1)  # the "sum" reduction DDP applies across ranks
    expected = whole.compute()
    for other in (batches.compute(), rank0.compute()):
        assert other.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(other[key], value, equal_nan=True)
    reference = skill_scores(pred, target, thresholds)
    for key, value in reference.items():
        assert expected[key].item() == pytest.approx(value, nan_ok=True, rel=1e-6)
    for t in range(3):
        per_lead = skill_scores(pred[:, t], target[:, t], thresholds)
        for key, value in per_lead.items():
            assert expected[f"{key}_per_lead"][t].item() == pytest.approx(value, nan_ok=True, rel=1e-6)
    assert expected["csi_20_per_lead"].shape == (3,) and expected["csi_mean"].ndim == 0


def test_metric_compares_scaled_values_with_scaled_thresholds():
    scaled = SkillScores([35.0], frames=1, value_range=(0, 70))
    pred, target = torch.tensor([0.5, 0.2, 0.6]).view(1, 1, 1, 1, 3), torch.tensor([0.5, 0.6, 0.1]).view(1, 1, 1, 1, 3)
    scaled.update(pred, target)
    assert scaled.counts.tolist() == [[[1, 1, 1, 0]]]
    assert scaled.compared == [0.5] and scaled.thresholds == [35.0]


def test_scaled_scores_equal_physical_scores_away_from_the_thresholds():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(4, 3, 1, 6, 6, generator=g), torch.rand(4, 3, 1, 6, 6, generator=g)
    for low, high in [(0, 70), (-10, 60), (0, 100)]:
        physical = skill_scores(low + pred.double() * (high - low), low + target.double() * (high - low), [20, 30])
        assert skill_scores(pred, target, [20, 30], value_range=(low, high)) == pytest.approx(physical, nan_ok=True)
        metric = SkillScores([20, 30], 3, value_range=[low, high])
        metric.update(pred, target)
        assert metric.compute()["csi_20"].item() == pytest.approx(physical["csi_20"], rel=1e-6)


def test_thresholds_at_the_top_of_the_range_count_clipped_values():
    target = torch.tensor([1.0, 1.0, 0.999]).view(1, 1, 1, 1, 3)  # the data modules clip values above high to 1
    for value_range in [(0, 70), (-32.5, 95.5), (0.1, 0.3), (-1e-3, 7.7)]:
        scores = skill_scores(target, target, [value_range[1]], value_range=value_range)
        assert scores[f"pod_{value_range[1]:g}"] == 1.0 and scores[f"csi_{value_range[1]:g}"] == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"thresholds": [], "frames": 2}, "thresholds: expected a non-empty, increasing list"),
    ({"thresholds": [40, 20], "frames": 2}, "thresholds: expected a non-empty, increasing list"),
    ({"thresholds": [20], "frames": 0}, "frames: expected an integer >= 1"),
    ({"thresholds": [20], "frames": 2, "value_range": [70, 0]}, "value_range: expected"),
    ({"thresholds": [20], "frames": 2, "value_range": [0, 70, 1]}, "value_range: expected"),
    ({"thresholds": [20], "frames": 2, "value_range": "0..70"}, "value_range: expected"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkillScores(**kwargs)


def test_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, 2, C, H, W\)"):
        SkillScores([20], frames=2).update(torch.zeros(1, 3, 1, 4, 4), torch.zeros(1, 3, 1, 4, 4))
    with pytest.raises(ValueError, match="equal shape"):
        skill_scores(torch.zeros(3), torch.zeros(4), [20])
    with pytest.raises(ValueError, match=r"value_range: expected \[low, high\] with high > low .*found \(5, 5\)"):
        skill_scores(torch.zeros(3), torch.zeros(3), [20], value_range=(5, 5))


def test_balanced_scores_are_the_balanced_losses_in_physical_units():
    """B-MSE / B-MAE (HKO-7): the bmse / bmae losses' weighted means over valid pixels, times (high - low)^2
    and (high - low); by hand on a few pixels, NaN targets left out."""
    dbz = [float(rain_rate_to_dbz(r)) for r in (0.1, 1.0, 3.0, 50.0)]  # weights 1, 1, 2, 30
    target = torch.tensor([dbz + [NAN]]).view(1, 5, 1, 1, 1) / 70
    pred = target.nan_to_num(0.5) + torch.tensor([0.1, -0.2, 0.0, 0.05, 0.3]).view(1, 5, 1, 1, 1)
    metric = SkillScores([20.0], 5, (0, 70), balance=balanced_weights((0, 70), units="dBZ"))
    metric.update(pred, target)
    out = metric.compute()
    weights, errors = torch.tensor([1.0, 1, 2, 30]), torch.tensor([0.1, -0.2, 0.0, 0.05]) * 70
    assert out["bmse"].item() == pytest.approx((weights * errors**2).sum().item() / 4, rel=1e-5)
    assert out["bmae"].item() == pytest.approx((weights * errors.abs()).sum().item() / 4, rel=1e-5)
    assert out["bmse_per_lead"][1].item() == pytest.approx(14.0**2, rel=1e-5) and out["bmse_per_lead"][4].isnan()
    for name, factor in (("bmse", 70**2), ("bmae", 70)):
        loss = build_loss(name, (0, 70), units="dBZ")(pred, target).item()
        assert out[name].item() == pytest.approx(loss * factor, rel=1e-5)
