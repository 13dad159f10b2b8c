"""A trained ForecastModule at work on arrays: input checks, scaling to [0, 1], the memory check of
a forecast, the forecast itself, what a checkpoint says it was trained on (`trained_on`) and the kind of
input it takes (`wrong_input`).

What scripts/predict.py runs for .npy inputs; the checkpoint is loaded with
`convgru.training.restore.load_module`.
"""

from collections.abc import Mapping

import numpy as np
import torch

from convgru._checks import IMAGE_SIZE, check, pair, shown_path
from convgru.data.datasets import default_range
from convgru.data.fields import is_field_path
from convgru.data.resources import check_memory
from convgru.data.video import is_video
from convgru.domain.units import scale

BLOCK = 1 << 26  # bytes of input checked at a time


def _blocks(frames: np.ndarray):
    """`frames` in pieces along the first axis of about BLOCK bytes (memory-mapped inputs stay on disk)."""
    step = max(1, BLOCK // max(1, frames[:1].nbytes))
    for start in range(0, len(frames), step):
        yield np.asarray(frames[start:start + step])


def check_values(frames: np.ndarray, value_range=None, option: str = "value_range=(low, high)") -> None:
    """Raise ValueError unless `frames` can be read as frames in [0, 1]: uint8 (0..255) or bool, float
    in [0, 1], or any integer or float dtype with `value_range` = (low, high), the values that map to 0
    and 1 (as training's data.value_range). NaN and inf are refused. `option` names how to pass a range."""
    dtype = frames.dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == np.bool_):
        raise ValueError(f"expected numbers (uint8, another integer or float), found dtype {dtype}")
    if value_range is None and np.issubdtype(dtype, np.integer) and dtype != np.uint8:
        raise ValueError(f"{dtype} values need {option}, the values that map to 0 and 1 (as training's "
                         "data.value_range); only uint8 (0..255) and float in [0, 1] are read as they are")
    if not np.issubdtype(dtype, np.floating):
        return
    low, high, bad = np.inf, -np.inf, 0
    for block in _blocks(frames):
        finite = np.isfinite(block)
        bad += int(block.size - np.count_nonzero(finite))
        if finite.any():
            values = block[finite]
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    if bad:
        raise ValueError(f"holds {bad} NaN or inf value{'s' * (bad > 1)}; expected finite frames (fill missing "
                         "pixels with 0, as training does for inputs)")
    if value_range is None and (low < 0 or high > 1):
        raise ValueError(f"float values in [{low:g}, {high:g}], outside [0, 1]: pass {option}, the values that "
                         "map to 0 and 1 (as training's data.value_range), or scale the frames to [0, 1]")


def as_batch(frames: np.ndarray, channels: int, value_range=None) -> tuple[torch.Tensor, bool]:
    """(T, C, H, W) or (N, T, C, H, W) array -> float32 (N, T, C, H, W) tensor in [0, 1] and whether the
    input was a single sequence. uint8 is scaled by 1/255, float taken as in [0, 1]; `value_range` =
    (low, high) maps low..high to [0, 1] instead (values outside are clipped, as data.clip does).
    Raises ValueError for another number of dimensions, or a C other than `channels`."""
    if frames.ndim not in (4, 5):
        raise ValueError(
            f"input frames must be (T, C, H, W) or (N, T, C, H, W), got shape {frames.shape}"
        )
    single = frames.ndim == 4
    batch = torch.from_numpy(np.array(frames[None] if single else frames))  # a copy: frames may be read-only
    if batch.shape[2] != channels:
        raise ValueError(f"the model takes {channels} channel(s) per frame, the input has {batch.shape[2]} "
                         f"(shape {frames.shape}, expected (N, T, {channels}, H, W) or (T, {channels}, H, W))")
    low, high = value_range if value_range is not None else default_range(frames.dtype)
    return scale(batch.numpy(), (float(low), float(high)), clip=value_range is not None), single


def check_forecast_memory(module, sequences: int, frames: int, height: int, width: int, future: int | None,
                          batch_size: int = 1) -> None:
    """Raise ValueError before reading or forecasting when the forecast of `sequences` sequences of `frames`
    (H, W) frames, `future` frames ahead (default `module.hparams.future`), would not fit in memory: the
    float32 input and output and, per batch of `batch_size`, the input frames and one step's states of
    every level. The sizes may come from a checkpoint (its `future`, its data config's image size) or
    what a file declares, which must not exhaust the machine."""
    net, future = module.net, future or module.hparams.future
    pixels = height * width
    states = sum(size * pixels // 4 ** level for level, size in enumerate(net.hidden_sizes))
    needed = 4 * (sequences * (future * net.out_channels + frames * net.in_channels) * pixels
                  + batch_size * (frames * net.in_channels * pixels + 2 * states))
    check_memory(needed, f"the forecast of {sequences} sequence(s) of {frames} frames of {height}x{width}, "
                 f"{future} frames ahead", "forecast fewer frames (--future) or smaller frames")


def forecast(module, frames: np.ndarray, batch_size: int = 16, future: int | None = None,
             value_range=None, check: bool = True) -> np.ndarray:
    """Predict `future` frames (default `module.hparams.future`) after each input sequence; float32
    in [0, 1], (future, C, H, W) for one input sequence or (N, future, C, H, W) for a batch.
    `value_range` = (low, high) maps input values low..high to [0, 1] (see `check_values`); the
    forecast stays in [0, 1] (low + (high - low) * forecast gives the input's units). `check=False`
    skips `check_values` (done by the caller).

    frames: (T, C, H, W) or (N, T, C, H, W) numpy array (memory-mapped arrays are read block by block
    for the checks), uint8 (0..255), float in [0, 1], or any numbers with `value_range`; C must be the
    model's input channels and H, W multiples of 2**(levels - 1).

    Raises ValueError (one line naming what was expected and found): another number of dimensions or
    channels (`as_batch`), values that cannot be read as [0, 1] or NaN / inf (`check_values`), or a
    forecast that would not fit in memory (`check_forecast_memory`)."""
    if frames.ndim in (4, 5):  # from the shape the input declares, before it is copied
        sequences = 1 if frames.ndim == 4 else frames.shape[0]
        check_forecast_memory(module, sequences, frames.shape[-4], *frames.shape[-2:], future,
                              min(batch_size, sequences))
    if check:
        check_values(frames, value_range)
    batch, single = as_batch(frames, module.net.in_channels, value_range)
    preds = [module.forecast(chunk, future).cpu() for chunk in batch.split(batch_size)]
    out = torch.cat(preds).numpy()
    return out[0] if single else out


def trained_on(module) -> tuple[int | None, tuple[int, int] | None]:
    """(frames_in, (H, W)) from the checkpoint's data config (hparams["data"]), None where unknown:
    checkpoints of convgru 0.1.0 store no data config. Raises OptionError (a ValueError) naming
    data.frames_in or data.image_size when the stored one is not an int >= 1 (image_size: or a pair)."""
    data = module.hparams.get("data")
    data = data if isinstance(data, Mapping) else {}
    frames_in, size = data.get("frames_in"), data.get("image_size")
    return (None if frames_in is None else check("data.frames_in", frames_in),
            None if size is None else pair(check("data.image_size", size, IMAGE_SIZE)))


def bad_data_config(module, ckpt) -> str | None:
    """Why the frames_in / image_size that checkpoint `ckpt` (its `module`) stores (`trained_on`) are
    unusable, naming it; None when they are fine or absent."""
    try:
        trained_on(module)
    except ValueError as error:
        return f"CKPT {shown_path(ckpt)}: its stored {error}"
    return None


# data= of each data module a checkpoint may record (convgru.training.checkpoint.DATA_MODULES)
DATA_NAMES = {"convgru.data.MovingMNISTDataModule": "moving_mnist", "convgru.data.ArrayDataModule": "arrays",
              "convgru.data.RadarDataModule": "radar", "convgru.data.VideoDataModule": "video",
              "convgru.data.FieldDataModule": "fields"}
INPUTS = {"fields": "NetCDF files or a Zarr store of gridded fields", "video": "a video", "array": "an array of frames"}


def trained_data(module) -> str | None:
    """The data= config the checkpoint was trained with (moving_mnist, arrays, radar, video, fields), None
    when it records none (convgru 0.1.0)."""
    data = module.hparams.get("data")
    return DATA_NAMES.get(data.get("_target_")) if isinstance(data, Mapping) else None


def input_kind(path) -> str:
    """What `path` holds by its name: "fields" (NetCDF, Zarr), "video" or "array" (.npy and the rest)."""
    return "fields" if is_field_path(path) else "video" if is_video(path) else "array"


def input_kinds(module) -> tuple[str, ...]:
    """The kinds of input (`input_kind`) a checkpoint takes: gridded fields for a data=fields checkpoint (its
    variables, normalized with its statistics), frames (arrays or videos) for every other one."""
    return ("fields",) if trained_data(module) == "fields" else ("array", "video")


def wrong_input(module, ckpt, path) -> str | None:
    """Why checkpoint `ckpt` (its `module`) cannot forecast the input `path`, naming what it was trained
    on and what it takes; None when it can."""
    kind = input_kind(path)
    if kind in input_kinds(module):
        return None
    data = trained_data(module)
    if data == "fields":
        variables = module.hparams["data"].get("variables") or []
        trained = f"gridded fields (data=fields: {', '.join(map(str, variables))})"
        expected = "NetCDF files or a Zarr store holding those variables"
    else:
        trained = f"frames (data={data})" if data else "frames (it records no data config: convgru 0.1.0)"
        expected = ".npy frames or a video; gridded fields need a checkpoint trained with data=fields"
    return (f"CKPT {shown_path(ckpt)} was trained on {trained}; INPUT {shown_path(path)} is {INPUTS[kind]}: "
            f"expected {expected}")
