"""Forecast GIFs: frame count, looping, panel contents and layout, counters, colour."""

import numpy as np
import pytest
import torch
from PIL import Image

from convgru.training.animation import forecast_frames, forecast_gif
from convgru.training.images import LeadTime

N, T_IN, T_OUT, H, W, SCALE = 2, 3, 2, 5, 6, 3


def read_gif(path, mode="L") -> list[np.ndarray]:
    with Image.open(path) as gif:
        assert gif.info["loop"] == 0 and gif.info["duration"] == 120
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert(mode)))
    return frames


def panel(frame: np.ndarray, row: int, column: int) -> np.ndarray:
    """Panel (row, column) of a GIF frame: make_grid's layout (1-pixel lines) scaled by SCALE, at the bottom."""
    top = frame.shape[0] - (N * (H + 1) + 1) * SCALE
    y, x = top + SCALE * (1 + row * (H + 1)), SCALE * (1 + column * (W + 1))
    return frame[y: y + H * SCALE, x: x + W * SCALE]


def grey(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> the expected uint8 panel: first channel, nearest-neighbour upscaled."""
    pixels = image[0].mul(255).round().byte().numpy()
    return pixels.repeat(SCALE, 0).repeat(SCALE, 1)


@pytest.mark.parametrize("with_targets", [True, False])
def test_gif_plays_inputs_then_forecast(tmp_path, with_targets):
    torch.manual_seed(0)
    inputs = torch.rand(N, T_IN, 2, H, W)  # C_in = 2, C = 1: each panel shows its first channel
    preds, targets = torch.rand(N, T_OUT, 1, H, W), torch.rand(N, T_OUT, 1, H, W)
    forecast_gif(tmp_path / "a.gif", inputs, preds, targets if with_targets else None, scale=SCALE, duration=120)
    frames = read_gif(tmp_path / "a.gif")
    columns = 3 if with_targets else 2
    assert len(frames) == T_IN + T_OUT
    assert frames[0].shape[1] >= (columns * (W + 1) + 1) * SCALE  # wider if the counter needs it
    for t, frame in enumerate(frames):
        for i in range(N):
            if t < T_IN:  # the observed frame in every panel
                expected = [grey(inputs[i, t])] * columns
            else:
                later = [targets[i, t - T_IN]] if with_targets else []
                expected = [grey(x) for x in (inputs[i, -1], *later, preds[i, t - T_IN])]
            for j, want in enumerate(expected):
                np.testing.assert_array_equal(panel(frame, i, j), want, err_msg=f"frame {t}, row {i}, column {j}")
    header = [frame[: frame.shape[0] - (N * (H + 1) + 1) * SCALE] for frame in frames]
    assert all(h.max() > 200 for h in header), "no header text"
    assert len({h.tobytes() for h in header}) == len(frames), "the frame counter does not change"


def test_the_first_frame_of_the_gif_is_the_first_image_with_content(tmp_path):
    """What a viewer that shows one frame displays (a page before the GIF plays, a thumbnail): the first
    image of `forecast_frames` exactly, each panel the first input frame, none of it a blank grey."""
    torch.manual_seed(1)
    inputs, preds = torch.rand(N, T_IN, 1, H, W), torch.rand(N, T_OUT, 1, H, W)
    forecast_gif(tmp_path / "f.gif", inputs, preds, preds, scale=SCALE, duration=120)
    first = read_gif(tmp_path / "f.gif", "RGB")[0]
    np.testing.assert_array_equal(first, np.asarray(forecast_frames(inputs, preds, preds, SCALE)[0].convert("RGB")))
    for i in range(N):
        for j in range(3):
            np.testing.assert_array_equal(panel(first[..., 0], i, j), grey(inputs[i, 0]))


def test_gif_counter_gives_the_inputs_times_and_the_lead_times():
    """The field's convention, as the figures: inputs at t = -2 .. 0, forecasts at +1 .. +T, in the
    data's time step where known."""
    inputs, preds = torch.rand(1, T_IN, 1, H, W), torch.rand(1, T_OUT, 1, H, W)
    assert LeadTime([]).inputs(T_IN) + LeadTime([]).leads(T_OUT) == ["-2", "-1", "0", "+1", "+2"]
    minutes = LeadTime([5.0, 10.0], "min")
    assert minutes.inputs(T_IN) + minutes.leads(3) == ["-10 min", "-5 min", "0 min", "+5 min", "+10 min", "+15 min"]
    plain, timed = (forecast_frames(inputs, preds, None, SCALE, lead) for lead in (None, minutes))
    assert [a.tobytes() != b.tobytes() for a, b in zip(plain, timed)] == [True] * (T_IN + T_OUT)


def test_gif_shows_three_channels_in_colour_and_others_in_grey(tmp_path):
    inputs = torch.zeros(N, 2, 3, H, W)
    inputs[:, :, 0] = 1  # red
    preds = torch.zeros(N, 1, 2, H, W)
    preds[:, :, 0], preds[:, :, 1] = 0.4, 1  # shown as the first channel: grey 0.4
    forecast_gif(tmp_path / "c.gif", inputs, preds, scale=SCALE, duration=120)
    last = read_gif(tmp_path / "c.gif", "RGB")[-1]
    for row in range(N):
        assert (panel(last, row, 0) == (255, 0, 0)).all()
        assert (panel(last, row, 1) == (102, 102, 102)).all()


@pytest.mark.parametrize("preds, targets", [
    (torch.rand(2, 2, 1, 5, 6), torch.rand(2, 3, 1, 5, 6)),  # targets of another T
    (torch.rand(2, 2, 1, 5, 6), torch.rand(2, 2, 3, 5, 6)),  # targets of another C
    (torch.rand(1, 2, 1, 5, 6), None),                       # another N
    (torch.rand(2, 2, 1, 5, 5), None),                       # another W
    (torch.rand(2, 1, 5, 6), None),                          # 4-D
])
def test_gif_rejects_mismatched_shapes(tmp_path, preds, targets):
    with pytest.raises(ValueError, match="forecast_gif expects"):
        forecast_gif(tmp_path / "x.gif", torch.rand(2, 3, 1, 5, 6), preds, targets)
    assert not (tmp_path / "x.gif").exists()
