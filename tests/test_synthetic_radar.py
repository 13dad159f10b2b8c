"""Synthetic radar: shapes, determinism, value range, rain fractions, motion, files the array loader reads."""

import numpy as np
import pytest
import torch

from convgru.data import ArrayDataModule
from convgru.data.synthetic_radar import (
    CHUNK,
    draw_cells,
    ensure_radar_dataset,
    generate_radar,
    render_cells,
    write_radar_dataset,
)


def test_shape_dtype_range_and_seed():
    a = generate_radar(6, np.random.default_rng(0), num_frames=7, image_size=32)
    assert a.shape == (6, 7, 32, 32) and a.dtype == np.float32
    assert a.min() == 0.0 and a.max() <= 70.0 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, generate_radar(6, np.random.default_rng(0), num_frames=7, image_size=32))
    assert not np.array_equal(a, generate_radar(6, np.random.default_rng(1), num_frames=7, image_size=32))


def test_rain_fractions_make_csi_meaningful():
    a = generate_radar(200, np.random.default_rng(0))
    above20, above40 = (a >= 20).mean(), (a >= 40).mean()
    assert 0.1 < above20 < 0.35 and 0.02 < above40 < 0.1 and above40 < above20 / 2
    assert 50 < a.max() < 67  # peaks up to 60 dBZ; overlapping cells add in Z (four at 60 dBZ: 66)
    assert (a < 1).mean() > 0.4  # most of the area has no rain


def test_cells_move_with_the_steering_velocity():
    cells = draw_cells(np.random.default_rng(3), 200)
    frames = render_cells(cells)
    lead = 6
    shift = np.rint(cells.steering * lead).astype(int)
    advected = np.stack([np.roll(f[0], tuple(s), axis=(0, 1)) for f, s in zip(frames, shift)])
    persistence_error = np.abs(frames[:, lead] - frames[:, 0]).mean()
    assert np.abs(frames[:, lead] - advected).mean() < 0.7 * persistence_error  # motion explains the change
    speed = np.linalg.norm(np.diff(cells.centre, axis=2), axis=-1)
    assert speed.min() > 0 and 0.5 < np.median(speed) < 3


def test_written_file_is_read_by_the_array_loader(tmp_path):
    path = write_radar_dataset(tmp_path / "radar" / "r.npy", CHUNK + 4, seed=5, num_frames=6, image_size=16)
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.npy"]  # no temporary file left
    a = np.load(path, mmap_mode="r")
    assert a.shape == (CHUNK + 4, 6, 16, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a[CHUNK:], generate_radar(4, np.random.default_rng([5, 1]), 6, 16))
    dm = ArrayDataModule(files=[path], layout="NTHW", value_range=[0, 70], frames_in=3, frames_out=3,
                         batch_size=4, num_workers=0)
    dm.setup("fit")
    x, y = dm.datasets["train"][0]
    torch.testing.assert_close(torch.cat([x, y])[:, 0] * 70, torch.from_numpy(a[0].copy()))


def test_cached_file_is_reused_per_parameters(tmp_path):
    first = ensure_radar_dataset(tmp_path, 3, seed=1, num_frames=4, image_size=16)
    stamp = first.stat().st_mtime_ns
    assert ensure_radar_dataset(tmp_path, 3, seed=1, num_frames=4, image_size=16) == first
    assert first.stat().st_mtime_ns == stamp
    assert ensure_radar_dataset(tmp_path, 3, seed=2, num_frames=4, image_size=16) != first
    evolving = ensure_radar_dataset(tmp_path, 3, seed=1, num_frames=4, image_size=16, dynamics="evolving")
    assert evolving != first and not np.array_equal(np.load(evolving), np.load(first))


def test_evolving_dynamics_are_reproducible_and_defeat_extrapolation():
    """Evolving cells (turning flow, rotation, life cycles, splits, mergers) come from the seed, keep the
    value range and rain fractions, and are harder for pysteps' extrapolation than linear motion,
    which it models exactly."""
    from convgru.domain import skill_scores
    from convgru.domain.extrapolation import Extrapolation

    kwargs = {"num_frames": 10, "image_size": 32}
    linear = generate_radar(12, np.random.default_rng(4), **kwargs)
    np.testing.assert_array_equal(linear, generate_radar(12, np.random.default_rng(4), dynamics="linear", **kwargs))
    evolving = generate_radar(12, np.random.default_rng(4), dynamics="evolving", **kwargs)
    np.testing.assert_array_equal(evolving, generate_radar(12, np.random.default_rng(4), dynamics="evolving",
                                                           **kwargs))
    assert evolving.min() == 0.0 and evolving.max() <= 70.0 and 0.05 < (evolving >= 20).mean() < 0.35
    csi = {}
    for name, radar in (("linear", linear), ("evolving", evolving)):
        x, y = torch.from_numpy(radar[:, :4, None]) / 70, torch.from_numpy(radar[:, 4:, None]) / 70
        csi[name] = skill_scores(Extrapolation("lucaskanade", (0, 70))(x, 6), y, [20], (0, 70))["csi_20"]
    assert csi["evolving"] < csi["linear"] - 0.05, csi


@pytest.mark.parametrize("kwargs, match", [
    ({"num_frames": 0}, "num_frames: expected an integer >= 1"),
    ({"image_size": 4}, "image_size: expected an integer >= 8"),
    ({"max_cells": 0}, "max_cells: expected an integer >= 1"),
    ({"dynamics": "chaotic"}, r"dynamics: expected one of \['linear', 'evolving'\], found 'chaotic'"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_radar(1, np.random.default_rng(0), **kwargs)
