"""convgru's skill scores and extrapolation baseline checked against pysteps, the nowcasting community's
reference: CSI, POD, FAR, HSS, ETS, SEDI, bias (`pysteps.verification.det_cat_fct`), FSS
(`pysteps.verification.fss`), pooled CSI, the extrapolation, S-PROG and STEPS nowcasts (and their cache),
and the conventions where the two differ (ties, NaN)."""

import contextlib
import io
import sys
import warnings
from unittest import mock

import numpy as np
import pytest
import torch

from convgru.domain.extrapolation import Extrapolation, PystepsNowcast
from convgru.domain.scores import SkillScores
from convgru.domain.units import rain_rate_to_dbz
from convgru.training.baselines import baseline_options, build_baselines, persistence

with contextlib.redirect_stdout(io.StringIO()):  # pysteps prints where its configuration file is
    from pysteps import motion, nowcasts
    from pysteps.verification import det_cat_fct
    from pysteps.verification.spatialscores import fss_accum, fss_compute, fss_init

THRESHOLDS = [20, 45, 65]  # 65: above every value drawn, no event (NaN scores)
SCALES = [1, 4, 5, 11]  # an even one too: its window is not centred
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # pysteps: 0/0 is NaN
CATEGORICAL = {"csi": "CSI", "pod": "POD", "far": "FAR", "hss": "HSS", "ets": "ETS", "sedi": "SEDI", "bias": "BIAS"}


def _fields(shape, seed=0):
    """Forecast and observation (B, T, 1, H, W) float64 in [0, 60) with 10% NaN pixels each, placed apart."""
    rng = np.random.default_rng(seed)
    pred, target = rng.uniform(0, 60, shape), rng.uniform(0, 60, shape)
    pred[rng.random(shape) < 0.1] = np.nan
    target[rng.random(shape) < 0.1] = np.nan
    assert not np.isin(THRESHOLDS, np.concatenate([pred.ravel(), target.ravel()])).any()  # no value at a threshold
    return pred, target


def _scores(pred, target, **windows):
    metric = SkillScores(THRESHOLDS, pred.shape[1], **windows)
    half = pred.shape[0] // 2  # two batches: the sums accumulate
    metric.update(torch.from_numpy(pred[:half]), torch.from_numpy(target[:half]))
    metric.update(torch.from_numpy(pred[half:]), torch.from_numpy(target[half:]))
    return {k: v.double().numpy() for k, v in metric.compute().items()}


def _close(ours, reference, what):
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-12, equal_nan=True, err_msg=what)


def test_categorical_scores_match_pysteps():
    pred, target = _fields((4, 3, 1, 19, 17))
    out = _scores(pred, target)
    for t in range(3):
        p, o = pred[:, t].ravel(), target[:, t].ravel()
        valid = ~(np.isnan(p) | np.isnan(o))  # convgru leaves out a pixel missing in either field
        for thr in THRESHOLDS:
            reference = det_cat_fct(p[valid], o[valid], thr, list(CATEGORICAL.values()))
            for ours, theirs in CATEGORICAL.items():
                _close(out[f"{ours}_{thr}_per_lead"][t], reference[theirs], f"{ours} at {thr}, lead {t + 1}")
    p, o = pred.ravel(), target.ravel()
    valid = ~(np.isnan(p) | np.isnan(o))
    reference = det_cat_fct(p[valid], o[valid], 20, ["CSI", "HSS"])
    _close(out["csi_20"], reference["CSI"], "CSI pooled over lead times")
    _close(out["hss_20"], reference["HSS"], "HSS pooled over lead times")
    assert np.isnan(out["csi_65"]) and np.isnan(out["pod_65"]) and not np.isnan(out["csi_mean"])


def test_fss_matches_pysteps():
    pred, target = _fields((4, 2, 1, 19, 17), seed=1)
    out = _scores(pred, target, fss_scales=SCALES)
    missing = np.isnan(pred) | np.isnan(target)  # missing in either field: a non-event in both
    pred[missing] = target[missing] = np.nan  # pysteps makes NaN a non-event
    for t in range(2):
        for thr in THRESHOLDS:
            for scale in SCALES:
                reference = fss_init(thr, scale)
                for b in range(4):
                    fss_accum(reference, pred[b, t, 0], target[b, t, 0])
                with np.errstate(invalid="ignore"):
                    _close(out[f"fss_{scale}px_{thr}_per_lead"][t], fss_compute(reference),
                           f"FSS at {thr}, {scale} px, lead {t + 1}")
    assert np.isnan(out["fss_5px_65"]) and 0 < out["fss_1px_20"] < out["fss_11px_20"] <= 1


def test_pooled_csi_is_csi_of_the_window_maxima():
    pred, target = _fields((2, 2, 1, 18, 17), seed=2)
    out = _scores(pred, target, pool_sizes=[4, 16])
    missing = np.isnan(pred) | np.isnan(target)
    for size in (4, 16):
        pooled = []
        for x in (pred, target):
            x = np.where(missing, np.nan, x)[:, :, 0]
            h, w = -(-x.shape[-2] // size) * size, -(-x.shape[-1] // size) * size  # partial windows kept
            x = np.pad(x, ((0, 0), (0, 0), (0, h - x.shape[-2]), (0, w - x.shape[-1])), constant_values=np.nan)
            blocks = x.reshape(*x.shape[:2], h // size, size, w // size, size)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # windows with no valid pixel: NaN
                pooled.append(np.nanmax(blocks, axis=(3, 5)))
        p, o = (x.ravel() for x in pooled)
        valid = ~(np.isnan(p) | np.isnan(o))
        for thr in THRESHOLDS:
            _close(out[f"csi_pool{size}_{thr}"], det_cat_fct(p[valid], o[valid], thr, ["CSI"])["CSI"],
                   f"CSI after {size}x{size} max-pooling at {thr}")
    assert out["csi_pool16_20"] >= out["csi_pool4_20"] > out["csi_20"]


def test_ties_count_as_events_here_but_not_in_pysteps():
    """convgru: value >= threshold is an event (HKO-7, SEVIR); pysteps' det_cat_fct: value > threshold."""
    field = np.full((1, 1, 1, 4, 4), 20.0)
    field[..., 0, 0] = 19.0
    out = _scores(field, field.copy(), fss_scales=[3])
    assert out["csi_20"] == 1.0 and out["pod_20"] == 1.0 and out["fss_3px_20"] == 1.0
    assert np.isnan(det_cat_fct(field.ravel(), field.ravel(), 20, ["CSI"])["CSI"])  # no event at all for pysteps
    assert det_cat_fct(field.ravel(), field.ravel(), 19.5, ["CSI"])["CSI"] == 1.0


def _moving_blob(frames=5, size=32, seed=0):
    """(frames, size, size) dBZ: two Gaussian cells moving 1.5 pixels per frame to the right and down."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((frames, size, size))
    for cy, cx in rng.uniform(8, 20, (2, 2)):
        for t in range(frames):
            out[t] += 50 * np.exp(-((yy - cy - 1.5 * t) ** 2 + (xx - cx - 1.5 * t) ** 2) / 18)
    return out


def test_extrapolation_matches_pysteps_on_the_same_frames():
    frames = np.stack([_moving_blob(), _moving_blob(seed=1)])  # (B, T_in, H, W) in dBZ
    x = torch.from_numpy(frames[:, :, None] / 70).float()  # scaled as data.value_range=[0,70]
    forecast = Extrapolation("lucaskanade", (0, 70))(x, 3)
    assert forecast.shape == (2, 3, 1, 32, 32) and forecast.dtype == torch.float32
    for b in range(2):
        physical = x[b, :, 0].double().numpy() * 70  # the same frames in dBZ
        velocity = motion.get_method("lucaskanade")(physical)
        assert np.abs(velocity).max() > 0.5  # the cells' motion is found
        reference = nowcasts.get_method("extrapolation")(physical[-1], velocity, 3, extrap_kwargs={"outval": 0.0})
        np.testing.assert_allclose(forecast[b, :, 0].numpy(), np.clip(reference / 70, 0, 1), atol=1e-6)
    assert not torch.allclose(forecast, persistence(x, 3), atol=0.05)  # it moves the cells


def test_baselines_config():
    assert baseline_options(None) == {"persistence": {}}  # what 0.2.0 scored
    assert baseline_options(["persistence", "extrapolation"]) == {"persistence": {},
                                                                  "extrapolation": {"motion": "lucaskanade"}}
    assert baseline_options({"persistence": None, "extrapolation": {"motion": "vet"}}) == {
        "extrapolation": {"motion": "vet"}}
    assert list(build_baselines({"persistence": {}, "extrapolation": None})) == ["persistence"]


@pytest.mark.parametrize("baselines, match", [
    (["persistence", "climatology"], r"model.baselines: unknown baseline\(s\) \['climatology'\]"),
    ({"extrapolation": {"motion": "optical"}}, r"model.baselines.extrapolation.motion: expected one of pysteps'"),
    ({"extrapolation": {"method": "vet"}}, r"model.baselines.extrapolation: unknown option\(s\) \['method'\]"),
    ({"persistence": {"frames": 2}}, "model.baselines.persistence: takes no options"),
    ("extrapolation", "model.baselines: expected a list of baselines or a mapping"),
])
def test_bad_baselines(baselines, match):
    with pytest.raises(ValueError, match=match):
        build_baselines(baselines)


def test_missing_pysteps_names_the_nowcast_extra():
    with mock.patch.dict(sys.modules, {"pysteps": None, "pysteps.motion": None, "pysteps.nowcasts": None}):
        with pytest.raises(ValueError, match=r'model.baselines.extrapolation: the extrapolation baseline needs pysteps '
                                             r'and OpenCV, .*pip install -e "\.\[nowcast\]"'):
            build_baselines(["persistence", "extrapolation"])
        assert list(build_baselines(["persistence"])) == ["persistence"]  # persistence needs nothing


@pytest.mark.parametrize("kwargs, match", [
    ({"fss_scales": [5, 1]}, "fss_scales: expected an increasing list of window sizes"),
    ({"pool_sizes": [0]}, "pool_sizes: expected an increasing list of window sizes"),
    ({"fss_scales": 5}, "fss_scales: expected an increasing list"),
])
def test_bad_windows(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkillScores([20], 2, **kwargs)


def test_fss_neighbourhoods_larger_than_the_frame_cover_it_without_allocating_them():
    """A scale far beyond the frame (data.fss_scales=[1, 100000]) is the whole frame's fractions: the same
    counts as the smallest neighbourhood that covers it, computed without padding to 100000 pixels."""
    from convgru.domain.scores import box_sums
    events = (torch.rand(3, 6, 9) > 0.5).float()
    whole = box_sums(events, 2 * 9 + 1)
    torch.testing.assert_close(box_sums(events, 100000), whole)
    torch.testing.assert_close(whole, events.sum((-2, -1), keepdim=True).expand_as(events))


def _rainy_frames(sequences=2, frames=5, size=24):
    """(sequences, frames, size, size) dBZ on 0 dBZ: two moving Gaussian cells each."""
    return np.stack([_moving_blob(frames, size, seed) for seed in range(sequences)])


def _cascade_reference(method, physical, future, **kwargs):
    """pysteps' S-PROG or STEPS called directly on dBZ frames, as PystepsNowcast documents it."""
    velocity = motion.get_method("lucaskanade")(physical)
    threshold = float(rain_rate_to_dbz(0.1))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = nowcasts.get_method(method)(physical[-3:], velocity, future, precip_thr=threshold, n_cascade_levels=4,
                                          **kwargs)
    out = np.where(np.isfinite(out) & (out >= threshold), out, 0.0)
    return out.mean(0) if method == "steps" else out


@pytest.mark.parametrize("method, options, kwargs", [
    ("sprog", {}, {}),
    ("steps", {"members": 2, "seed": 3}, {"n_ens_members": 2, "seed": 3, "kmperpixel": 1.0, "timestep": 5.0}),
])
def test_sprog_and_steps_mean_match_pysteps(method, options, kwargs):
    x = torch.from_numpy(_rainy_frames()[:, :, None] / 70).float()
    baseline = PystepsNowcast(method, {"n_cascade_levels": 4, **options}, (0, 70), "dBZ")
    forecast = baseline(x, 3)
    assert forecast.shape == (2, 3, 1, 24, 24) and forecast.dtype == torch.float32
    for b in range(2):
        reference = _cascade_reference(method, x[b, :, 0].double().numpy() * 70, 3, **kwargs)
        np.testing.assert_allclose(forecast[b, :, 0].numpy(), np.clip(reference / 70, 0, 1), atol=1e-6)
    assert baseline.sequences == 2 and baseline.cached == 0 and baseline.seconds > 0
    if method == "steps":  # seeded: the same members again; another seed draws others
        torch.testing.assert_close(baseline(x, 3), forecast)
        other = PystepsNowcast(method, {"n_cascade_levels": 4, **options, "seed": 4}, (0, 70), "dBZ")(x, 3)
        assert not torch.allclose(other, forecast)


def test_cascade_nowcasts_of_no_rain_are_no_rain_and_rain_rates_are_db_transformed():
    dry = torch.zeros(1, 5, 1, 16, 16)
    assert (PystepsNowcast("sprog", {"n_cascade_levels": 3}, (0, 70), "dBZ")(dry, 2) == 0).all()
    rates = 10 ** (_rainy_frames(1, size=16) / 10) / 10  # mm/h-like values, > 0.1 in the cells
    x = torch.from_numpy(rates[:, :, None] / 100).float().clamp(0, 1)
    forecast = PystepsNowcast("sprog", {"n_cascade_levels": 3}, (0, 100), "mm/h")(x, 2)
    assert forecast.shape == (1, 2, 1, 16, 16) and 0 < forecast.max() <= 1 and (forecast >= 0).all()
    assert forecast.min() == 0  # below 0.1 mm/h: no rain


def test_pysteps_forecasts_are_cached_by_data_method_options_and_seed(tmp_path):
    x = torch.from_numpy(_rainy_frames(1, size=16)[:, :, None] / 70).float()
    first = PystepsNowcast("steps", {"members": 2, "n_cascade_levels": 3}, (0, 70), "dBZ", cache_dir=tmp_path)
    forecast = first(x, 2)
    files = list((tmp_path / "baselines").glob("steps-*.npy"))
    assert len(files) == 1 and first.sequences == 1
    again = PystepsNowcast("steps", {"members": 2, "n_cascade_levels": 3}, (0, 70), "dBZ", cache_dir=tmp_path)
    torch.testing.assert_close(again(x, 2), forecast)
    assert (again.cached, again.sequences, again.seconds) == (1, 0, 0.0)  # read, not computed
    PystepsNowcast("steps", {"members": 2, "n_cascade_levels": 3, "seed": 1}, (0, 70), "dBZ", cache_dir=tmp_path)(x, 2)
    PystepsNowcast("steps", {"members": 2, "n_cascade_levels": 3}, (0, 70), "dBZ", cache_dir=tmp_path)(x[:, 1:], 2)
    assert len(list((tmp_path / "baselines").glob("steps-*.npy"))) == 3  # another seed, other data: other files
    np.save(files[0], np.zeros((1, 2), dtype=np.float32))  # not this forecast: computed again and replaced
    third = PystepsNowcast("steps", {"members": 2, "n_cascade_levels": 3}, (0, 70), "dBZ", cache_dir=tmp_path)
    torch.testing.assert_close(third(x, 2), forecast)
    assert third.sequences == 1 and np.load(files[0]).shape == (1, 2, 1, 16, 16)


@pytest.mark.parametrize("baselines, match", [
    ({"steps": {"members": 0}}, r"model.baselines.steps.members: expected an integer >= 1, found 0"),
    ({"steps": {"seed": -1}}, r"model.baselines.steps.seed: expected an integer >= 0, found -1"),
    ({"sprog": {"ar_order": 3}}, r"model.baselines.sprog.ar_order: expected 1 or 2, found 3"),
    ({"sprog": {"members": 4}}, r"model.baselines.sprog: unknown option\(s\) \['members'\], expected some of"),
])
def test_bad_cascade_options(baselines, match):
    with pytest.raises(ValueError, match=match):
        build_baselines(baselines)


def test_steps_and_sprog_defaults():
    options = baseline_options(["sprog", "steps"])
    assert options["steps"]["members"] == 20 and options["steps"]["seed"] == 0
    assert options["sprog"] == {"motion": "lucaskanade", "n_cascade_levels": 6, "ar_order": 2, "rain_threshold": None}
    with pytest.raises(ValueError, match="model.baselines.steps.rain_threshold: expected a rain/no-rain threshold in "
                                         "pixel"):
        build_baselines(["steps"], (0, 255), "pixel")
