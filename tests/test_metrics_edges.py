"""Edges of the metrics and losses: frames of every size, 16-bit inputs, values exactly at a threshold
(exhaustively over the float32 values around it), and a PSNR that is never inf."""

import math
import shutil

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from conftest import compose_config
from convgru.data import RadarDataModule
from convgru.data.datasets import to_pair
from convgru.domain.scores import at_least
from convgru.domain.units import to_physical, to_scaled
from convgru.training import ForecastModule, FrameMetrics, SkillScores, build_loss, evaluate, skill_scores, train
from convgru.training.metrics import PSNR_MAX, ssim, ssim_window

NET = {"hidden_sizes": [4], "kernel_size": 3, "stem_channels": 4}
SIZES = [(s, s) for s in range(1, 13)] + [(1, 12), (12, 1), (2, 7), (5, 3), (4, 16)]


def _images(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=g)
    return pred, (pred + 0.3 * torch.randn(shape, generator=g)).clamp(0, 1)


# Item 2: every frame size, every floating dtype.

def test_ssim_window_shrinks_to_the_frame():
    assert [ssim_window(s)[0] for s in range(1, 13)] == [1, 3, 5, 7, 9] + [11] * 7
    assert ssim_window(64) == (11, 1.5)  # Wang et al. (2004)
    for size in range(1, 6):
        window, sigma = ssim_window(size)
        assert (window - 1) // 2 < size and sigma == pytest.approx(1.5 * window / 11)


@pytest.mark.parametrize("shape", [(3, 1, 6, 6), (2, 1, 7, 9), (2, 3, 11, 11), (2, 2, 16, 12), (1, 1, 32, 64)])
def test_ssim_equals_torchmetrics_where_the_window_fits(shape):
    pred, target = _images(shape)
    expected = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    torch.testing.assert_close(ssim(pred, target), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("h, w", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_every_frame_size_scores(h, w, channels):
    pred, target = _images((3, 2, channels, h, w))
    metrics = FrameMetrics(2)
    metrics.update(pred, target)
    metrics.update(target, target)  # perfect forecasts: SSIM 1, PSNR at its cap
    result = metrics.compute()
    assert all(torch.isfinite(v).all() for v in result.values())
    assert ((result["ssim"] >= -1) & (result["ssim"] <= 1)).all()
    metrics.reset()
    metrics.update(target, target)
    result = metrics.compute()
    torch.testing.assert_close(result["ssim"], torch.ones(2))
    torch.testing.assert_close(result["psnr"], torch.full((2,), PSNR_MAX))
    assert result["mse"].tolist() == [0.0, 0.0]


def test_one_pixel_ssim_is_the_luminance_term():
    pred, target = torch.tensor([0.2, 0.9]).view(2, 1, 1, 1), torch.tensor([0.4, 0.9]).view(2, 1, 1, 1)
    c1 = 0.01 ** 2
    expected = (2 * pred * target + c1) / (pred ** 2 + target ** 2 + c1)
    torch.testing.assert_close(ssim(pred, target), expected.view(2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("size", [4, 16])
def test_frame_metrics_take_any_float_dtype(dtype, size):
    pred, target = (x.to(dtype) for x in _images((2, 3, 1, size, size)))
    target[0, 0, 0, 0, 0] = float("nan")
    low, reference = FrameMetrics(3), FrameMetrics(3)
    low.update(pred, target)
    reference.update(pred.float(), target.float())  # the same values in float32
    for name, value in low.compute().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, reference.compute()[name])


def test_skill_scores_take_any_dtype():
    target = torch.linspace(0, 1, 64).view(1, 2, 1, 4, 8)
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        metric = SkillScores([20, 53], frames=2, value_range=(0, 100))
        metric.update(target.to(dtype), target.to(dtype))
        scores = metric.compute()
        assert scores["csi_20"] == 1 and scores["csi_53"] == 1 and scores["far_53"] == 0


def test_empty_batches_and_frames_are_no_error():
    metrics = FrameMetrics(2)
    metrics.update(torch.zeros(0, 2, 1, 4, 4), torch.zeros(0, 2, 1, 4, 4))
    metrics.update(torch.zeros(2, 2, 1, 0, 4), torch.zeros(2, 2, 1, 0, 4))
    assert metrics.count.tolist() == [0, 0]


@pytest.mark.slow
@pytest.mark.parametrize("size, hidden", [(4, [4, 4]), (1, [4])])
def test_train_and_eval_on_tiny_frames(tmp_path, size, hidden):
    """The issue's example: train.py on a (10, 8, 4, 4) array, and 1x1 frames with one block; then eval.py."""
    data = tmp_path / "seq.npy"
    np.save(data, np.random.default_rng(0).random((10, 8, size, size)).astype(np.float32))
    overrides = ["data=arrays", f"data.files=[{data}]", "data.layout=NTHW", "data.frames_in=4", "data.frames_out=4",
                 "data.num_workers=0", "data.batch_size=2", "model.future=4", f"model.net.hidden_sizes={hidden}",
                 "model.net.stem_channels=4", "model.net.kernel_size=3", "trainer=cpu", "trainer.max_epochs=1",
                 "callbacks.prediction_images.num_sequences=1"]
    metrics = train(compose_config("train", tmp_path / "run", overrides))
    assert {"val/ssim", "val/psnr", "test/ssim", "test/psnr"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    scores = evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt_path={ckpt}"]), [f"ckpt_path={ckpt}"])
    assert all(math.isfinite(scores[name]) for name in ("mse", "mae", "ssim", "psnr"))


# Item 4: PSNR is never inf.

def test_psnr_of_a_perfect_image_is_capped():
    target = 0.8 * torch.rand(2, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pred = target.clone()
    pred[1] = target[1] + 0.1  # sequence 2 is off by 0.1 everywhere: 20 dB
    target[:, 1] = 0.0
    pred[:, 1] = -0.5  # black frames: equal to the target once clamped
    metrics = FrameMetrics(2)
    metrics.update(pred, target)
    psnr = metrics.compute()["psnr"]
    assert psnr[0].item() == pytest.approx((PSNR_MAX + 20) / 2, abs=1e-3)
    assert psnr[1].item() == pytest.approx(PSNR_MAX, abs=1e-4)
    assert torch.isfinite(psnr).all() and (psnr <= PSNR_MAX + 1e-4).all()


def test_psnr_below_the_cap_is_unchanged_and_bounded():
    target = torch.full((1, 3, 1, 64, 64), 0.5)
    pred = target.clone()
    pred[0, 0, 0, 0, 0] += 1 / 255  # one 8-bit step on one pixel: 84.2 dB
    pred[0, 1, 0, 0, 0] += 1e-7  # float rounding noise: capped
    metrics = FrameMetrics(3)
    metrics.update(pred, target)
    psnr = metrics.compute()["psnr"].tolist()
    assert psnr[0] == pytest.approx(-10 * math.log10((pred[0, 0] - target[0, 0]).square().mean().item()), abs=1e-3)
    assert 84 < psnr[0] < PSNR_MAX and psnr[1] == pytest.approx(PSNR_MAX, abs=1e-4)
    assert psnr[2] == pytest.approx(PSNR_MAX, abs=1e-4)


def test_psnr_of_the_valid_pixels_of_a_perfect_masked_image():
    target = torch.rand(1, 1, 1, 8, 8)
    pred = target.clone()
    pred[..., :4] = 1 - pred[..., :4]
    target[..., :4] = float("nan")  # the differing half is missing: the valid half is perfect
    metrics = FrameMetrics(1)
    metrics.update(pred, target)
    assert metrics.compute()["psnr"].item() == pytest.approx(PSNR_MAX, abs=1e-4)


# Item 3: a value at a threshold is an event, for any value range and threshold.

RANGES = [(0, 100), (0, 70), (-10, 60), (-32, 95), (0, 255), (-32.5, 95.5), (0, 1), (1e-3, 7.3), (-100, 100),
          (0, 1e4), (250, 350), (-1, 0), (0, 0.3), (5, 5.001), (-1e-3, 1e-3)]
STEPS = 256  # float32 values each side of every threshold


def _thresholds(low, high):
    """Thresholds inside (low, high]: the top, fractions of the range, and round numbers in between."""
    span = high - low
    values = {high, *(low + span * f for f in (1e-6, 0.005, 0.1, 1 / 3, 0.5, 0.53, 2 / 3, 0.999))}
    values |= {round(low + span * f, digits) for f in (0.2, 0.53, 0.77) for digits in (0, 1, 2, 3)}
    values |= {t for t in (0.5, 2, 5, 10, 16, 20, 30, 35, 40, 53, 74, 133, 219, 273.15, 0.1, 0.3)}
    return sorted(float(t) for t in values if low < t <= high)


def _near(thr, dtype=np.float32, steps=STEPS):
    """Every value of `dtype` from `steps` below thr (rounded to dtype) to `steps` above, ascending."""
    start = dtype(thr)
    down, up = [start], [start]
    for _ in range(steps):
        down.append(np.nextafter(down[-1], dtype(-np.inf)))
        up.append(np.nextafter(up[-1], dtype(np.inf)))
    return np.array(down[:0:-1] + up, dtype=dtype)


def _scaled(values, value_range):
    """What the data modules give for these values of a file: to_pair's targets, the data layer's scaling."""
    frames = np.asarray(values).reshape(1, 1, 1, -1)
    return to_pair(frames, 0, value_range)[1].reshape(-1)


def test_thresholds_scale_as_the_data_values():
    for low, high in RANGES:
        for thr in _thresholds(low, high)[:3]:
            values = _near(thr, steps=40)
            alone = torch.cat([_scaled(v, (low, high)) for v in values])
            torch.testing.assert_close(_scaled(values, (low, high)), alone, rtol=0, atol=0)  # elementwise
            assert to_scaled([thr], (low, high)).item() == _scaled(np.float32(thr), (low, high)).item()


def test_the_issue_example_counts_53_mm_h():
    target = _scaled(np.array([53.0, 60.0, 10.0], np.float32), (0, 100)).view(1, 1, 1, 1, 3)
    assert to_physical(target, (0, 100))[0, 0, 0, 0, 0].item() < 53  # 52.999996: why not to map back
    scores = skill_scores(target, target, [53], value_range=(0, 100))
    assert scores["csi_53"] == 1.0 and scores["pod_53"] == 1.0
    metric = SkillScores([53], frames=1, value_range=[0, 100])
    metric.update(target, target)
    assert metric.counts.tolist() == [[[2, 0, 0, 1]]]
    loss = build_loss("bmse", value_range=(0, 100))  # HKO-7: weight 30 from 30 mm/h
    assert loss.pixel_weights(target).view(-1).tolist() == [30, 30, 10]


@pytest.mark.parametrize("file_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value_range", RANGES, ids=[f"{low:g}..{high:g}" for low, high in RANGES])
def test_every_value_at_or_above_a_threshold_counts(value_range, file_dtype):
    for thr in _thresholds(*value_range):
        _check_threshold(value_range, thr, file_dtype)


def _check_threshold(value_range, thr, file_dtype):
    """Every value of the file's dtype near thr: at or above it is an event (and gets the loss weight)."""
    values = _near(thr, file_dtype, STEPS if file_dtype is np.float32 else 64)
    if file_dtype is np.float64:  # and the float32 neighbours, stored as float64
        values = np.concatenate([values, _near(thr, np.float32, 32).astype(np.float64)])
    above = torch.from_numpy(values >= thr)  # the user's rule, in the file's values
    scaled = _scaled(values, value_range)
    tied = torch.from_numpy(values < thr) & (scaled == to_scaled([thr], value_range))  # lost to float32 scaling
    expected = above | tied
    assert above.any()
    compared = SkillScores([thr], 1, value_range).compared[0]
    assert torch.equal(at_least(scaled, compared), expected)

    metric = SkillScores([thr], 1, value_range)
    metric.update(torch.full_like(scaled, -1.0).view(1, 1, 1, 1, -1), scaled.view(1, 1, 1, 1, -1))
    assert metric.counts[0, 0, 1].item() == expected.sum().item()  # misses: every event of the target
    scores = skill_scores(scaled, scaled, [thr], value_range=value_range)
    assert scores[f"csi_{thr:g}"] == 1.0 and scores[f"far_{thr:g}"] == 0.0

    loss = build_loss("bmae", value_range=value_range, thresholds=[thr], weights=[7.0])
    torch.testing.assert_close(loss.pixel_weights(scaled), torch.where(expected, 7.0, 1.0))

    for dtype in (torch.bfloat16, torch.float16, torch.float64):  # a 16-bit run rounds the data once more
        rounded = scaled.to(dtype)
        assert at_least(rounded, compared)[above].all()
        assert (loss.pixel_weights(rounded)[above] == 7).all()
        assert skill_scores(rounded, rounded, [thr], value_range=value_range)[f"pod_{thr:g}"] == 1.0


@pytest.mark.parametrize("dtype, value_range, thresholds", [
    (np.uint8, (0, 255), [16, 74, 133, 160, 181, 219, 255]),  # SEVIR VIL pixel values
    (np.int16, (-32, 95), [-31, 0, 20, 35, 53, 95]),  # dBZ as integers
    (np.int32, (0, 100000), [1, 5300, 99999, 100000]),
])
def test_integer_data_count_exactly(dtype, value_range, thresholds):
    info = np.iinfo(dtype)
    values = np.arange(max(info.min, value_range[0] - 300), min(info.max, value_range[1] + 300) + 1).astype(dtype)
    scaled = _scaled(values, value_range)
    metric = SkillScores(thresholds, 1, value_range)
    metric.update(scaled.view(1, 1, 1, 1, -1), scaled.view(1, 1, 1, 1, -1))
    counts = metric.counts[0]
    weights = build_loss("bmse", value_range=value_range, thresholds=thresholds,
                         weights=list(range(2, len(thresholds) + 2))).pixel_weights(scaled)
    for k, thr in enumerate(thresholds):
        events = int((values >= thr).sum())
        assert counts[k].tolist() == [events, 0, 0, len(values) - events]
        assert int((weights >= k + 2).sum()) == events


def test_radar_data_at_the_threshold_score_persistence_as_perfect(tmp_path):
    """Through the data module: mm/h near 53 in a file, constant in time, so persistence is perfect."""
    rng = np.random.default_rng(0)
    frames = rng.choice(_near(53.0, steps=8), size=(4, 1, 4, 4)).astype(np.float32)
    frames[:, 0, 0, :2] = 53.0
    np.save(tmp_path / "rain.npy", np.repeat(frames, 4, axis=1))  # (N, T, H, W)
    for split in ("val", "test"):  # a file is in one split only
        shutil.copyfile(tmp_path / "rain.npy", tmp_path / f"{split}.npy")
    data = RadarDataModule(units="mm/h", value_range=[0, 100], thresholds=[53], layout="NTHW", frames_in=2,
                           frames_out=2, train_files=[tmp_path / "rain.npy"], val_files=[tmp_path / "val.npy"],
                           test_files=[tmp_path / "test.npy"], batch_size=2,
                           num_workers=0)
    module = ForecastModule(NET, future=2, value_range=[0, 100], thresholds=[53], loss="bmse", loss_units="mm/h",
                            loss_thresholds=[53], loss_weights=[5])
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    summary = {k.removeprefix("test/"): float(v) for k, v in
               trainer.test(module, datamodule=data, verbose=False)[0].items()}
    assert summary["persistence/csi_53"] == 1.0 and summary["persistence/pod_53"] == 1.0
    assert summary["persistence/far_53"] == 0.0
    assert all(math.isfinite(summary[name]) for name in ("mse", "mae", "ssim", "psnr"))
