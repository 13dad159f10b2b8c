"""Animations of forecasts (GIF, video): per time step one row per sequence, panels input | target | prediction."""

import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.utils import make_grid

from convgru.training.images import LeadTime, text_font

BLANK = 0.5  # grey of a video's truth panel past the clip's end
BORDER = 1.0  # white lines between panels


def forecast_gif(path, inputs: Tensor, preds: Tensor, targets: Tensor | None = None, scale: int = 4,
                 duration: int = 250, lead: LeadTime | None = None) -> None:
    """Write a looping GIF of forecasts to `path`: the frames of `forecast_frames`, `duration` ms each,
    the first frame showing the first input frame in every panel (what a viewer that shows one frame of
    a GIF, or a page before it plays, displays).

    inputs: (N, T_in, C_in, H, W); preds and targets (None: no target panel): (N, T_out, C, H, W);
    values in [0, 1]; every pixel becomes a `scale` x `scale` block; `lead`: the data's time step for
    the counter (default: frames). Raises ValueError for mismatched shapes, `scale` < 1 or `duration`
    < 1 (ms).
    """
    if duration < 1:
        raise ValueError(f"duration must be >= 1, got {duration}")
    frames = forecast_frames(inputs, preds, targets, scale, lead)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)


def forecast_video(path, inputs: Tensor, preds: Tensor, targets: Tensor | None, rate, scale: int = 4,
                   suffix: str | None = None, lead: LeadTime | None = None) -> None:
    """Write the frames of `forecast_frames` as a video at `rate` frames/s (one frame per time step,
    so the clip plays at its own speed) with the encoder of `suffix` (default: the path's; see
    `convgru.data.video.write_video`). Frames are padded to even sizes (black) for 4:2:0 chroma. Shapes
    as `forecast_gif`'s; ValueError for mismatched shapes, `scale` < 1 or a suffix of no video encoder."""
    import numpy as np

    from convgru.data.video import write_video

    frames = [np.asarray(frame.convert("RGB")) for frame in forecast_frames(inputs, preds, targets, scale, lead)]
    h, w = frames[0].shape[:2]
    frames = np.pad(np.stack(frames), ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    write_video(path, frames, rate, suffix)


def forecast_frames(inputs: Tensor, preds: Tensor, targets: Tensor | None = None, scale: int = 4,
                    lead: LeadTime | None = None) -> list:
    """The T_in + T_out frames (PIL images) of a forecast animation: per time step one row per
    sequence, panels input | target | prediction (no target panel when `targets` is None).

    inputs: (N, T_in, C_in, H, W); preds and targets: (N, T_out, C, H, W); values in [0, 1]. The
    inputs play in every panel (the observed frames: "input t = -4" .. "input t = 0"), then the forecast
    plays next to the last input frame ("forecast t = +1" .. "+T_out"), times in `lead`'s unit (default:
    frames; `LeadTime`). Panels of 3 channels show in colour, others show their first channel in grey
    (the input's first channel in the other panels while the inputs play); every pixel becomes a
    `scale` x `scale` block.
    """
    columns = {"input": inputs, **({} if targets is None else {"target": targets}), "prediction": preds}
    _check_shapes(columns)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got scale={scale}")
    t_in, t_out, later = inputs.shape[1], preds.shape[1], list(columns.values())[1:]
    lead = lead or LeadTime([])
    steps = [([inputs[:, t]] * (1 + len(later)), f"input t = {time}")
             for t, time in enumerate(lead.inputs(t_in))]
    steps += [([inputs[:, -1]] + [seq[:, k] for seq in later], f"forecast t = {time}")
              for k, time in enumerate(lead.leads(t_out))]
    font = text_font(list(columns), inputs.shape[-1] * scale, minimum=10)  # panels under ~55 px: headers overlap
    width = round(max(font.getlength(counter) for _, counter in steps)) + 2 * scale
    return [_frame(panels, counter, list(columns), scale, font, width) for panels, counter in steps]


def _frame(panels: list[Tensor], counter: str, headers: list[str], scale: int, font, width: int) -> Image.Image:
    """One GIF frame, at least `width` pixels wide: a line with the counter, one with the column
    headers, then the panels (each (N, C, H, W)) side by side, one row per sequence."""
    rgb, w = any(p.shape[1] == 3 for p in panels), panels[0].shape[-1]
    tiles = torch.stack([p if p.shape[1] == 3 else p[:, :1].expand(-1, 3, -1, -1) for p in panels], 1)
    grid = make_grid(tiles.flatten(0, 1).detach().float().cpu().clamp(0, 1), nrow=len(panels), padding=1,
                     pad_value=BORDER)
    pixels = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2).mul(255).round().byte()
    image = Image.fromarray(pixels.permute(1, 2, 0).numpy() if rgb else pixels[0].numpy())
    line = round(font.size * 1.4)
    frame = Image.new(image.mode, (max(image.width, width), image.height + 2 * line), 0)
    frame.paste(image, (0, 2 * line))
    draw = ImageDraw.Draw(frame)
    draw.text((scale, line // 6), counter, fill="white", font=font)
    for j, header in enumerate(headers):
        draw.text((scale * (1 + j * (w + 1)), line + line // 6), header, fill="white", font=font)
    return frame


def _check_shapes(columns: dict) -> None:
    """Raise ValueError unless all are (N, T, C, H, W) with one N, H, W and targets shaped as preds."""
    shapes = {name: tuple(seq.shape) for name, seq in columns.items()}
    n, *_, h, w = shapes["input"]
    ok = all(len(s) == 5 and (s[0], *s[3:]) == (n, h, w) and s[1] >= 1 for s in shapes.values())
    if not ok or shapes.get("target", shapes["prediction"]) != shapes["prediction"]:
        raise ValueError("forecast_gif expects inputs (N, T_in, C_in, H, W) and preds / targets "
                         f"(N, T_out, C, H, W) of one N, H, W, got {shapes}")
