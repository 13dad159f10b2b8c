"""Vectorised Moving MNIST generator following Srivastava et al. (2015) as OpenSTL implements it.

Each digit starts at a uniform position in [0, 1)^2 of its travel range (canvas - digit), moves in a
uniform direction in [0, 2pi) by `step_length` of that range per frame, and bounces at the edges by
clamping and flipping that axis; the first frame is after one step. Digits are combined by maximum.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convgru._checks import OptionError

STEP_LENGTH = 0.1
MAX_DIGITS = 3


def check_params(num_digits: int, image_size: int, digit_shape, num_frames: int) -> None:
    """Raise ValueError for an unsupported digit count, a canvas smaller than a digit or no frames."""
    if not 1 <= num_digits <= MAX_DIGITS:
        raise OptionError("num_digits", f"expected 1 to {MAX_DIGITS}, found {num_digits}")
    if image_size < max(digit_shape):
        raise OptionError("image_size", f"expected at least the digit size {tuple(digit_shape)}, found {image_size}")
    if num_frames < 1:
        raise OptionError("frames", f"expected at least 1 frame per sequence, found {num_frames}")


def draw_motion(rng: np.random.Generator, num_sequences: int, num_digits: int, bank_size: int):
    """Random digit indices (N, D), start positions (N, D, 2) as (y, x) in [0, 1), directions (N, D)."""
    index = rng.integers(0, bank_size, size=(num_sequences, num_digits))
    start = rng.random((num_sequences, num_digits, 2))
    theta = rng.random((num_sequences, num_digits)) * 2 * np.pi
    return index, start, theta


def trajectories(start: np.ndarray, theta: np.ndarray, num_frames: int, step_length: float = STEP_LENGTH):
    """Positions (..., T, 2) in [0, 1] of digits starting at `start` (..., 2) in direction `theta` (...)."""
    pos = np.array(start, dtype=np.float64)
    step = np.stack([np.sin(theta), np.cos(theta)], axis=-1) * step_length
    out = np.empty(pos.shape[:-1] + (num_frames, 2))
    for t in range(num_frames):
        pos += step
        hit = (pos <= 0) | (pos >= 1)
        np.clip(pos, 0, 1, out=pos)
        np.negative(step, out=step, where=hit)
        out[..., t, :] = pos
    return out


def render(digits: np.ndarray, index: np.ndarray, corners: np.ndarray, image_size: int) -> np.ndarray:
    """Paste digits (K, h, w) uint8 at integer top-left corners (N, D, T, 2); returns (N, T, S, S) uint8."""
    n, d, t, _ = corners.shape
    h, w = digits.shape[1:]
    frames = np.zeros((n, t, image_size, image_size), np.uint8)
    # windows[i, j, r, c] is the (h, w) patch of frame (i, j) whose top-left corner is (r, c)
    shape = (n, t, image_size - h + 1, image_size - w + 1, h, w)
    windows = as_strided(frames, shape, frames.strides + frames.strides[2:], writeable=True)
    seq, step = np.arange(n)[:, None], np.arange(t)[None, :]
    for k in range(d):
        at = (seq, step, corners[:, k, :, 0], corners[:, k, :, 1])
        windows[at] = np.maximum(windows[at], digits[index[:, k]][:, None])
    return frames


def animate(digits: np.ndarray, index, start, theta, num_frames: int = 20, image_size: int = 64,
            step_length: float = STEP_LENGTH) -> np.ndarray:
    """Sequences (N, T, S, S) uint8 of digits (K, h, w) uint8 for the motion drawn by `draw_motion`."""
    check_params(index.shape[1], image_size, digits.shape[1:], num_frames)
    travel = image_size - np.array(digits.shape[1:])
    corners = (trajectories(start, theta, num_frames, step_length) * travel).astype(np.intp)
    return render(digits, index, corners, image_size)


def generate(digits: np.ndarray, num_sequences: int, rng: np.random.Generator, num_frames: int = 20,
             num_digits: int = 2, image_size: int = 64, step_length: float = STEP_LENGTH) -> np.ndarray:
    """Moving MNIST sequences (N, T, image_size, image_size) uint8 from digits (K, h, w) uint8."""
    check_params(num_digits, image_size, digits.shape[1:], num_frames)
    motion = draw_motion(rng, num_sequences, num_digits, len(digits))
    return animate(digits, *motion, num_frames, image_size, step_length)
