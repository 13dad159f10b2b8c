"""Offline synthetic radar reflectivity (dBZ): rain cells that move, grow and decay, for nowcasting quickstarts.

Each sequence has 1 to `max_cells` cells. A cell is a Gaussian in linear reflectivity Z (mm^6 m^-3)
with axis-aligned elliptic contours of random size and aspect, so in dBZ it is a paraboloid
around its peak: dBZ = 10 log10(1 + sum of the cells' Z), 0 dBZ where there is no rain.

`dynamics="linear"` (0.2.0's): cells move with the sequence's steering velocity plus a small
deviation of their own, constant in time; each cell's peak dBZ changes linearly in time and its
size exponentially. That is what optical-flow extrapolation models exactly: advection along a
fixed motion field.

`dynamics="evolving"`: on top of that, what extrapolation cannot follow. The steering velocity
turns (up to TURN radians per frame) and speeds up or slows down; the cells orbit a point of the
frame (up to ROTATION radians per frame); each cell lives a life cycle, its peak dBZ a parabola in
time (initiation, growth, maturity, decay, so cells appear and die within a sequence); and pairs of
cells split (one cell becomes two that drift apart) or merge (two converge into one).

Every draw comes from the numpy Generator passed in (the evolving draws after the linear ones);
rendering is separable (one small matmul per frame).
"""

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from convgru._checks import OptionError
from convgru.atomic import remove_stale_tmp

from .cache import write_npy
from .resources import check_memory

GENERATOR_VERSION = 1  # bump when the output changes, so cached files regenerate
CHUNK = 256  # sequences per seeded generator in files; fixed, so a file never depends on memory limits
MAX_DBZ = 70.0
PEAK_DBZ = (30.0, 58.0)  # peak reflectivity of a cell at mid-sequence
MAX_PEAK_DBZ = 60.0  # peaks are clipped to this while they grow
PEAK_TREND = 1.0  # |dBZ per frame| of growth or decay, at most
SIZE_TREND = 0.02  # |log size per frame|, at most
SIGMA = (2.0, 5.0)  # cell size (Gaussian sigma of Z) in pixels of a 64-pixel frame
ASPECT = 1.8  # largest ratio of the two axes' sigmas
DEVIATION = 0.25  # std of a cell's velocity around the steering velocity, pixels per frame
DYNAMICS = ("linear", "evolving")
TURN = 0.08  # evolving: |turn of the steering velocity|, radians per frame, at most
ACCELERATION = 0.05  # evolving: |log speed change per frame|, at most
ROTATION = 0.04  # evolving: |rotation of the cells about a point of the frame|, radians per frame, at most
LIFE_CURVATURE = (0.1, 0.4)  # evolving: dBZ per frame^2 by which a cell's peak falls away from its maturity
PAIRED = 0.4  # evolving: chance that a cell (but the first) is the twin of the one before: a split or a merger
SPLIT_SPEED = (0.3, 0.8)  # evolving: pixels per frame (of a 64-pixel frame) at which twins part or converge


class Cells(NamedTuple):
    """Rain cells of N sequences (K cells each, T frames): centres (N, K, T, 2) as (y, x) in pixels,
    sigmas (N, K, T, 2), peak dBZ (N, K, T) (0 for unused cells), steering velocity (N, 2) in pixels/frame."""

    centre: np.ndarray
    sigma: np.ndarray
    peak: np.ndarray
    steering: np.ndarray


def check_params(num_frames: int, image_size: int, max_cells: int, dynamics: str = "linear") -> None:
    """ValueError for fewer than 1 frame, a frame smaller than 8 pixels, fewer than 1 cell or unknown dynamics."""
    for name, value, least in (("num_frames", num_frames, 1), ("image_size", image_size, 8),
                               ("max_cells", max_cells, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise OptionError(name, f"expected an integer >= {least}, found {value!r}")
    if dynamics not in DYNAMICS:
        raise OptionError("dynamics", f"expected one of {list(DYNAMICS)}, found {dynamics!r}")


def draw_cells(rng: np.random.Generator, num_sequences: int, num_frames: int = 20, image_size: int = 64,
               max_cells: int = 4, speed=(0.5, 2.5), dynamics: str = "linear") -> Cells:
    """Random cells; `speed` (low, high) bounds the steering speed in pixels per frame of a 64-pixel frame
    (at mid-sequence, with evolving `dynamics`)."""
    n, k, scale = num_sequences, max_cells, image_size / 64
    t = np.arange(num_frames) - (num_frames - 1) / 2  # frames from mid-sequence
    angle = rng.uniform(0, 2 * np.pi, n)
    steering = rng.uniform(*speed, n)[:, None] * np.stack([np.sin(angle), np.cos(angle)], -1) * scale
    velocity = steering[:, None] + rng.normal(0, DEVIATION * scale, (n, k, 2))
    middle = rng.uniform(0.1, 0.9, (n, k, 2)) * image_size  # where each cell is at mid-sequence
    centre = middle[:, :, None] + velocity[:, :, None] * t[:, None]
    aspect = np.exp(rng.uniform(-0.5, 0.5, (n, k, 1)) * np.log(ASPECT) * np.array([1, -1]))  # (sy, sx) ratio
    size = rng.uniform(*SIGMA, (n, k, 1)) * scale * aspect
    sigma = size[:, :, None] * np.exp(rng.uniform(-SIZE_TREND, SIZE_TREND, (n, k, 1)) * t)[..., None]
    peak = rng.uniform(*PEAK_DBZ, (n, k, 1)) + rng.uniform(-PEAK_TREND, PEAK_TREND, (n, k, 1)) * t
    peak = np.clip(peak, 0.0, MAX_PEAK_DBZ)  # 0 dBZ: a cell that has died out (or not formed)
    used = np.arange(k) < rng.integers(1, k + 1, n)[:, None]
    if dynamics == "evolving":
        centre, peak = _evolve(rng, centre, middle, peak, steering, t, scale, image_size)
    peak[~used] = 0.0
    return Cells(centre, sigma, peak, steering)


def _evolve(rng: np.random.Generator, centre, middle, peak, steering, t, scale: float, image_size: int):
    """The evolving dynamics on top of linear cells: (centre, peak) with a turning, accelerating steering
    velocity, rotation about a point, life cycles and twins that split or merge (see the module's docstring)."""
    n, k = peak.shape[:2]
    # the steering velocity turns and changes speed; its displacement replaces the constant one
    turn, accel = rng.uniform(-TURN, TURN, (n, 1)), rng.uniform(-ACCELERATION, ACCELERATION, (n, 1))
    c, s_ = np.cos(turn * t), np.sin(turn * t)  # (n, T)
    factor = np.exp(accel * t)
    velocity = factor[..., None] * np.stack([c * steering[:, None, 0] + s_ * steering[:, None, 1],
                                             -s_ * steering[:, None, 0] + c * steering[:, None, 1]], -1)
    displacement = np.cumsum(velocity, 1)
    displacement -= displacement[:, len(t) // 2][:, None]
    constant = steering[:, None] * t[None, :, None]
    centre = centre + (displacement - constant)[:, None]
    # rotation of the cells about a point of the frame
    pivot = rng.uniform(0.3, 0.7, (n, 1, 1, 2)) * image_size
    angle = rng.uniform(-ROTATION, ROTATION, (n, 1, 1)) * t
    r = centre - pivot
    centre = pivot + np.stack([np.cos(angle) * r[..., 0] - np.sin(angle) * r[..., 1],
                               np.sin(angle) * r[..., 0] + np.cos(angle) * r[..., 1]], -1)
    # life cycles: the peak falls away from its maturity as a parabola in time
    mature = rng.uniform(t[0] - 3, t[-1] + 3, (n, k, 1))
    curvature = rng.uniform(*LIFE_CURVATURE, (n, k, 1))
    peak = np.clip(peak.max(-1, keepdims=True) - curvature * np.square(t - mature) / 2, 0.0, MAX_PEAK_DBZ)
    # twins: cell j follows cell j - 1 and either parts from it after a time (a split) or joins it (a merger)
    twin = np.zeros((n, k), dtype=bool)
    twin[:, 1:] = rng.random((n, k - 1)) < PAIRED
    twin[:, 1:] &= ~twin[:, :-1]  # a cell is the twin of at most one other, which is no twin itself
    when = rng.uniform(t[0], t[-1], (n, k, 1))
    split = rng.random((n, k, 1)) < 0.5
    apart = np.where(split, np.maximum(t - when, 0), np.maximum(when - t, 0))  # (n, k, T)
    direction = rng.uniform(0, 2 * np.pi, (n, k))
    rate = rng.uniform(*SPLIT_SPEED, (n, k, 1)) * scale / 2
    offset = (rate * np.stack([np.sin(direction), np.cos(direction)], -1))[:, :, None] * apart[..., None]
    j = np.nonzero(twin)
    centre[j[0], j[1]] = centre[j[0], j[1] - 1] + offset[j]
    centre[j[0], j[1] - 1] -= offset[j]
    together = peak[j[0], j[1] - 1] - 10 * np.log10(2)  # each twin half the Z of the cell they make together
    peak[j[0], j[1]] = peak[j[0], j[1] - 1] = np.clip(together, 0.0, None)
    return centre, peak


def render_cells(cells: Cells, image_size: int = 64) -> np.ndarray:
    """Reflectivity (N, T, S, S) float32 in dBZ, in [0, MAX_DBZ], of `cells`."""
    grid = np.arange(image_size, dtype=np.float32) + 0.5
    # Z of each cell is peak_z * gy(y) * gx(x): profiles (N, T, K, S) per axis, summed over K by one matmul
    offset = grid - cells.centre.transpose(0, 2, 1, 3)[..., None].astype(np.float32)  # (N, T, K, 2, S)
    profile = np.exp(-0.5 * np.square(offset / cells.sigma.transpose(0, 2, 1, 3)[..., None].astype(np.float32)))
    peak_z = np.expm1(cells.peak.transpose(0, 2, 1) * (np.log(10) / 10)).astype(np.float32)  # 10^(dBZ/10) - 1
    z = np.matmul((profile[:, :, :, 0] * peak_z[..., None]).transpose(0, 1, 3, 2), profile[:, :, :, 1])
    dbz = np.log1p(z, out=z)
    dbz *= 10 / np.log(10)
    return np.clip(dbz, 0.0, MAX_DBZ, out=dbz)


def generate_radar(num_sequences: int, rng: np.random.Generator, num_frames: int = 20, image_size: int = 64,
                   max_cells: int = 4, speed=(0.5, 2.5), dynamics: str = "linear") -> np.ndarray:
    """Sequences (N, T, S, S) float32 of reflectivity in dBZ, in [0, 70]: 0 is no rain. `dynamics`: linear
    (constant motion, the default, as 0.2.0) | evolving (see the module's docstring)."""
    check_params(num_frames, image_size, max_cells, dynamics)
    return render_cells(draw_cells(rng, num_sequences, num_frames, image_size, max_cells, speed, dynamics),
                        image_size)


def generation_bytes(num_sequences: int, num_frames: int = 20, image_size: int = 64, max_cells: int = 4) -> int:
    """About the peak memory of `generate_radar(num_sequences, ...)`: the float32 frames, the cells'
    profiles (three temporaries of (N, T, K, 2, S)) and the cells themselves."""
    n, t, s, k = num_sequences, num_frames, image_size, max_cells
    return n * t * (s * s * 4 + k * 2 * s * 4 * 3 + k * s * 4 + k * 8 * 8)


def check_generation_memory(num_sequences: int, num_frames: int, image_size: int, max_cells: int,
                            what: str = "", advice: str = "lower num_frames or image_size") -> None:
    """ValueError before `write_radar_dataset` would generate a chunk of sequences that does not fit in memory."""
    n = min(CHUNK, num_sequences)
    check_memory(generation_bytes(n, num_frames, image_size, max_cells),
                 f"{what}generating synthetic radar ({n} sequences of {num_frames} frames of {image_size}x{image_size} "
                 "at a time)", advice)


def write_radar_dataset(path, num_sequences: int, seed: int = 0, num_frames: int = 20, image_size: int = 64,
                        max_cells: int = 4, speed=(0.5, 2.5), dynamics: str = "linear") -> Path:
    """Write `generate_radar` sequences (N, T, S, S) float32 dBZ to the .npy `path`; returns it.

    Read it with `ArrayDataModule(files=[path], layout="NTHW", value_range=[0, 70])`. Chunk c of
    CHUNK sequences comes from a generator seeded by (seed, c). The file is filled under a temporary
    name and renamed into place, so readers never see a partial file. Raises ValueError when a
    chunk would not fit in memory and OSError when the file would not fit on the disk, before
    generating anything.
    """
    check_params(num_frames, image_size, max_cells, dynamics)
    check_generation_memory(num_sequences, num_frames, image_size, max_cells)
    chunks = ((start, generate_radar(min(CHUNK, num_sequences - start), np.random.default_rng([seed, c]), num_frames,
                                     image_size, max_cells, speed, dynamics))
              for c, start in enumerate(range(0, num_sequences, CHUNK)))
    return write_npy(Path(path), (num_sequences, num_frames, image_size, image_size), np.float32, chunks,
                     "synthetic radar")


def radar_cache_path(cache_dir, num_sequences: int, seed: int = 0, num_frames: int = 20, image_size: int = 64,
                     max_cells: int = 4, speed=(0.5, 2.5), dynamics: str = "linear") -> Path:
    """The file in `cache_dir` that `ensure_radar_dataset` writes: its name holds every parameter (linear
    dynamics keep 0.2.0's names)."""
    params = f"{num_sequences}|{seed}|{num_frames}|{image_size}|{max_cells}|{tuple(speed)}|{GENERATOR_VERSION}"
    params += "" if dynamics == "linear" else f"|{dynamics}"
    digest = hashlib.sha1(params.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"synthetic_radar_n{num_sequences}_t{num_frames}_s{image_size}_seed{seed}_{digest}.npy"


def ensure_radar_dataset(cache_dir, num_sequences: int, seed: int = 0, num_frames: int = 20, image_size: int = 64,
                         max_cells: int = 4, speed=(0.5, 2.5), dynamics: str = "linear") -> Path:
    """`write_radar_dataset` into `cache_dir` at `radar_cache_path`, unless the file is there; returns it."""
    path = radar_cache_path(cache_dir, num_sequences, seed, num_frames, image_size, max_cells, speed, dynamics)
    remove_stale_tmp(path.parent)  # left by writers that died, whether or not the file is there
    if not path.is_file():
        write_radar_dataset(path, num_sequences, seed, num_frames, image_size, max_cells, speed, dynamics)
    return path
