"""A trained ForecastModule on a video: the input frames read from a clip as the checkpoint's data
config decodes them, and the forecast written back as a video (what scripts/predict.py runs for
video files; `convgru.data.video` reads and writes them)."""

from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import torch

from convgru.data.video import decode_clip
from convgru.deploy.forecast import trained_on
from convgru.training.animation import BLANK, forecast_video

VIDEO_MODULE = "convgru.data.VideoDataModule"


def clip_options(module) -> dict:
    """decode_clip's options for `module`: the checkpoint's channels, image_size, crop and frame_step
    when it was trained on data=video; otherwise the model's input channels, the frame size it was
    trained on (the clip's own when unknown), centre crop, every frame."""
    data = module.hparams.get("data")
    data = data if isinstance(data, Mapping) else {}
    if data.get("_target_") == VIDEO_MODULE:
        return {k: data[k] for k in ("channels", "image_size", "crop", "frame_step") if k in data}
    size = trained_on(module)[1]
    return dict(channels=module.net.in_channels, image_size=list(size) if size else None, crop="center",
                frame_step=1)


def read_clip(module, path, start: int | None = None, future: int | None = None, truth: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None, Fraction]:
    """(inputs (frames_in, C, H, W) uint8, truth (<= future, C, H, W) uint8 or None, frame rate) of the
    video `path` decoded with `clip_options(module)`: the `frames_in` frames from `start`, the frames that
    follow them (up to `future`, default the module's) where the clip continues, and the rate after
    frame_step. Default `start`: the last `frames_in` frames (a forecast past the clip's end) or, with
    `truth` (a side-by-side video), the frames that leave `future` frames of the clip to compare with
    (as many as the clip has when shorter). ValueError when the clip is too short, `start` out of range,
    or the checkpoint stores no frames_in; BadVideo (a ValueError) for a bad file."""
    frames_in = trained_on(module)[0]
    if not isinstance(frames_in, int):
        raise ValueError("the checkpoint stores no data config (convgru 0.1.0), so its number of input frames "
                         "is unknown; pass the frames as a .npy of (T, C, H, W) instead")
    options = clip_options(module)
    frames, rate = decode_clip(path, **options)
    step = options.get("frame_step", 1)
    if len(frames) < frames_in:
        raise ValueError(f"{len(frames)} frames (every {step}. frame, as the checkpoint was trained), the model "
                         f"takes {frames_in}; expected a clip of at least {frames_in * step} frames")
    future = future or module.hparams.future
    if start is None:
        start = max(len(frames) - frames_in - future, 0) if truth else len(frames) - frames_in
    if not 0 <= start <= len(frames) - frames_in:
        raise ValueError(f"--start {start}: expected 0 to {len(frames) - frames_in} (the clip has {len(frames)} "
                         f"frames{f' after frame_step={step}' if step > 1 else ''}, the model takes {frames_in})")
    end = start + frames_in
    after = frames[end:end + future]
    return frames[start:end], after if len(after) else None, rate


def write_forecast(path, preds: np.ndarray, rate, suffix: str | None = None, inputs: np.ndarray | None = None,
                   truth: np.ndarray | None = None) -> None:
    """Write the forecast `preds` (T_out, C, H, W) in [0, 1] as a video at `rate` frames/s; with
    `inputs` (T_in, C, H, W) uint8, side by side with them and the `truth` where given (frames past
    its end grey), as `convgru.training.animation.forecast_video` lays them out. The encoder is the one of
    `suffix` (default: the path's: .mp4, .mkv, .mov, .webm, .avi); ValueError naming the file for another
    suffix or a frame size the encoder cannot take (`convgru.data.video.write_video`)."""
    from convgru.data.video import write_video

    if inputs is None:
        pixels = np.round(np.clip(preds, 0, 1) * 255).astype(np.uint8)
        write_video(path, pixels[:, 0] if pixels.shape[1] != 3 else pixels.transpose(0, 2, 3, 1), rate, suffix)
        return
    pred = torch.from_numpy(preds)[None].float()
    x = torch.from_numpy(np.asarray(inputs))[None].float() / 255
    target = None
    if truth is not None:
        target = torch.full_like(pred, BLANK)
        target[0, :len(truth)] = torch.from_numpy(np.asarray(truth)).float() / 255
    forecast_video(path, x, pred, target, rate, scale=max(1, 256 // max(pred.shape[-2:])), suffix=suffix)
