"""Moving MNIST generator: protocol statistics, trajectories against a reference loop, bad parameters."""

import math
import random

import numpy as np
import pytest

from convgru.data.moving_mnist import draw_motion, generate, trajectories


def marker_digits(count=4):
    """28x28 digits that are black except one bright pixel at their top-left corner."""
    digits = np.zeros((count, 28, 28), np.uint8)
    digits[:, 0, 0] = 255
    return digits


def reference_trajectory(y, x, theta, num_frames, step=0.1):
    """OpenSTL's get_random_trajectory loop for given start and direction."""
    v_y, v_x = math.sin(theta), math.cos(theta)
    out = []
    for _ in range(num_frames):
        y += v_y * step
        x += v_x * step
        if x <= 0:
            x, v_x = 0, -v_x
        if x >= 1.0:
            x, v_x = 1.0, -v_x
        if y <= 0:
            y, v_y = 0, -v_y
        if y >= 1.0:
            y, v_y = 1.0, -v_y
        out.append((y, x))
    return np.array(out)


def test_trajectories_match_reference_loop():
    rng = random.Random(0)
    starts = np.array([[rng.random(), rng.random()] for _ in range(50)])
    thetas = np.array([rng.random() * 2 * math.pi for _ in range(50)])
    got = trajectories(starts, thetas, 40)
    for i in range(50):
        np.testing.assert_array_equal(got[i], reference_trajectory(*starts[i], thetas[i], 40))


def test_shape_dtype_and_value_range():
    bank = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    video = generate(bank, 8, np.random.default_rng(1), num_frames=20)
    assert video.shape == (8, 20, 64, 64) and video.dtype == np.uint8
    assert video.max() == 255 and video.min() == 0


def test_displacement_bounce_and_digit_count():
    video = generate(marker_digits(), 300, np.random.default_rng(2), num_frames=20, num_digits=1)
    n, t, h, w = video.shape
    assert (video > 0).reshape(n, t, -1).sum(-1).tolist() == [[1] * t] * n  # one digit, every frame
    flat = (video > 0).reshape(n, t, -1).argmax(-1)
    pos = np.stack([flat // w, flat % w], -1)  # top-left corner of the digit, pixels
    assert pos.min() == 0 and pos.max() == 64 - 28  # stays on the canvas and reaches both edges
    step = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
    assert step.max() <= 3.6 + 2 * math.sqrt(2)  # 0.1 of the 36-pixel range, plus truncation
    assert 2.5 < np.median(step) < 4.7
    vel = np.diff(pos, axis=1)
    flips = (vel[:, 1:] * vel[:, :-1] < 0) & (np.isin(pos[:, 1:-1], (0, 36)))
    assert flips.any()  # reversals happen at the edges


@pytest.mark.parametrize("num_digits", [1, 2, 3])
def test_digit_count(num_digits):
    video = generate(marker_digits(), 200, np.random.default_rng(3), num_frames=5, num_digits=num_digits)
    counts = (video > 0).reshape(200, 5, -1).sum(-1)
    assert counts.max() == num_digits and counts.mean() > num_digits - 0.05


def test_combined_by_maximum():
    bank = np.full((2, 28, 28), 100, np.uint8)
    video = generate(bank, 50, np.random.default_rng(4), num_frames=10, num_digits=3)
    assert set(np.unique(video)) == {0, 100}  # overlaps take the maximum, never a sum


def test_draws_follow_protocol_distributions():
    index, start, theta = draw_motion(np.random.default_rng(5), 20000, 2, 7)
    assert index.min() == 0 and index.max() == 6
    assert 0 <= start.min() and start.max() < 1 and abs(start.mean() - 0.5) < 0.01
    assert 0 <= theta.min() and theta.max() < 2 * np.pi and abs(theta.mean() - np.pi) < 0.05


@pytest.mark.parametrize("kwargs, option", [(dict(num_digits=4), "num_digits"), (dict(num_digits=0), "num_digits"),
                                            (dict(image_size=20), "image_size"), (dict(num_frames=0), "frames")])
def test_bad_parameters(kwargs, option):
    with pytest.raises(ValueError, match=option):
        generate(marker_digits(), 1, np.random.default_rng(0), **kwargs)
