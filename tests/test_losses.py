"""Losses: plain MSE / L1 as torch's, HKO-7 balanced weights, Z-R thresholds, NaN targets, bad options."""

import pytest
import torch
import torch.nn.functional as F

from convgru.domain.units import rain_rate_to_dbz
from convgru.training.losses import build_loss


def test_plain_losses_equal_torch():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 1, 8, 8, generator=g), torch.rand(2, 3, 1, 8, 8, generator=g)
    torch.testing.assert_close(build_loss("mse")(pred, target), F.mse_loss(pred, target))
    torch.testing.assert_close(build_loss("l1")(pred, target), F.l1_loss(pred, target))
    torch.testing.assert_close(build_loss("mse+l1")(pred, target), F.mse_loss(pred, target) + F.l1_loss(pred, target))


def test_hko7_weights_per_rain_rate():
    # targets in mm/h over value_range (0, 100): below, at and between the thresholds 0.5, 2, 5, 10, 30
    rates = torch.tensor([0.0, 0.49, 0.5, 1.9, 2.0, 4.0, 5.0, 10.0, 29.0, 30.0, 80.0])
    expected = torch.tensor([1.0, 1, 1, 1, 2, 2, 5, 10, 10, 30, 30])
    target = rates / 100
    pred = target + 0.1
    bmse = build_loss("bmse", value_range=(0, 100))
    torch.testing.assert_close(bmse.pixel_weights(target), expected)
    torch.testing.assert_close(bmse(pred, target), (expected * 0.01).mean())
    torch.testing.assert_close(build_loss("bmae", value_range=(0, 100))(pred, target), (expected * 0.1).mean())
    torch.testing.assert_close(build_loss("bmse+bmae", value_range=(0, 100))(pred, target),
                               (expected * (0.01 + 0.1)).mean())


def test_dbz_thresholds_follow_the_z_r_relation():
    # Z = 58.53 R^1.56: 1 mm/h is 10 log10(58.53) = 17.67 dBZ; 10 mm/h is 15.6 dBZ more
    assert rain_rate_to_dbz(1.0) == pytest.approx(17.674, abs=1e-3)
    assert rain_rate_to_dbz(10.0) - rain_rate_to_dbz(1.0) == pytest.approx(15.6)
    loss = build_loss("bmse", value_range=(-10, 60), thresholds=[1, 10], weights=[3, 7], units="dBZ")
    dbz = torch.tensor([17.6, 17.7, 33.2, 33.3, 60.0])  # just below / above each converted threshold
    torch.testing.assert_close(loss.pixel_weights((dbz + 10) / 70), torch.tensor([1.0, 3, 3, 7, 7]))


def test_thresholds_survive_a_cast_of_the_module():
    """The thresholds are not buffers: a loss moved to bfloat16 (bf16-true) still weighs 53 mm/h as 53."""
    loss = build_loss("bmse", value_range=(0, 100), thresholds=[53, 70], weights=[5, 9]).to(torch.bfloat16)
    target = torch.tensor([53.0, 52.0, 70.0]) / 100  # 0.53 in float32: 52.999996 mm/h mapped back
    assert loss.pixel_weights(target).tolist() == [5, 1, 9]
    assert loss.pixel_weights(target.to(torch.bfloat16)).tolist()[0] == 5  # rounded once more: still counted
    assert loss.thresholds == (53.0, 70.0) and loss.scaled_thresholds == tuple(torch.tensor([0.53, 0.7]).tolist())


def test_nan_targets_are_left_out():
    pred = torch.tensor([0.5, 0.2, 0.9, 0.3], requires_grad=True)
    target = torch.tensor([0.4, float("nan"), 0.9, float("nan")])
    for name in ("mse", "bmae"):
        loss = build_loss(name, value_range=(0, 70))
        value = loss(pred, target)
        reference = loss(pred[[0, 2]], target[[0, 2]])
        torch.testing.assert_close(value, reference)
        (grad,) = torch.autograd.grad(value, pred)
        assert torch.isfinite(grad).all() and grad[1] == 0 and grad[3] == 0 and grad[0] != 0
    assert build_loss("mse")(pred, torch.full((4,), float("nan"))).item() == 0.0


def test_shapes_must_agree():
    with pytest.raises(ValueError, match=r"equal shape, found \(2, 3\) and \(3,\)"):
        build_loss("mse")(torch.zeros(2, 3), torch.zeros(3))


def test_weights_are_not_in_the_state_dict():
    module = torch.nn.Module()
    module.loss = build_loss("bmse", value_range=(0, 70), units="dBZ")
    assert module.state_dict() == {}


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "huber"}, "model.loss must be one of"),
    ({"name": "bmse"}, "model.loss=bmse .* needs model.value_range"),
    ({"name": "bmse", "value_range": [70, 0]}, r"model.value_range: expected \[low, high\] with high > low"),
    ({"name": "bmse", "value_range": [0, 70], "thresholds": [2, 0.5]}, "model.loss_thresholds: expected a non-empty"),
    ({"name": "bmse", "value_range": [0, 70], "thresholds": []}, "model.loss_thresholds"),
    ({"name": "bmse", "value_range": [0, 70], "thresholds": "abc"},
     "model.loss_thresholds: expected a non-empty, increasing list of numbers"),
    ({"name": "bmae", "value_range": [0, 70], "weights": [1, 2]}, "model.loss_weights: expected one weight per"),
    ({"name": "bmae", "value_range": [0, 70], "weights": [1, 2, -5, 10, 30]}, "model.loss_weights: expected weights"),
    ({"name": "bmse", "value_range": [0, 70], "units": "mm"}, "model.loss_units must be one of"),
    ({"name": "bmse", "value_range": [0, 70], "units": "dBZ", "thresholds": [0, 1], "weights": [1, 2]},
     "rain rates > 0"),
])
def test_bad_options_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_loss(**kwargs)
