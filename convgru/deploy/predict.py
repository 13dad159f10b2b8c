"""The predict command (what scripts/predict.py runs): one parser for every kind of input (arrays,
videos, gridded fields), the checks of its files, and the writers of its outputs."""

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from convgru._checks import shown_name, shown_path
from convgru.atomic import FAILED, atomic_write
from convgru.data import ArrayFile
from convgru.data.arrays import check_path
from convgru.data.fields import is_field_path
from convgru.data.video import ENCODERS, is_video
from convgru.deploy.fields import (
    forecast_fields,
    output_inside_input,
    read_fields,
    write_field_forecast,
)
from convgru.deploy.forecast import (
    as_batch,
    bad_data_config,
    check_values,
    forecast,
    trained_on,
    wrong_input,
)
from convgru.deploy.video import read_clip, write_forecast
from convgru.domain.units import check_value_range
from convgru.training.animation import forecast_gif
from convgru.training.checkpoint import CheckpointError
from convgru.training.cli import output_error, positive_int
from convgru.training.images import lead_times, sequence_grid, time_lines
from convgru.training.restore import load_module

FIELD_OUTPUTS = (".nc", ".nc4", ".netcdf")
NOT_FOR_FIELDS = ("value_range", "start", "side_by_side")


USAGE = """Forecast new sequences with a trained checkpoint.

convgru predict CKPT INPUT.npy OUTPUT.npy [--future M] [--value-range LOW HIGH]
                       [--png OUT.png] [--gif OUT.gif] [--force]
INPUT: (T, C, H, W) or (N, T, C, H, W) frames, uint8 (0..255) or float in [0, 1]; H and W
multiples of 2**(levels - 1). Other integer dtypes, and floats outside [0, 1] (e.g. radar in
dBZ), need --value-range LOW HIGH, the values that map to 0 and 1 as training's data.value_range
(values outside are clipped, as data.clip does); they are refused otherwise, as are NaN and inf.
OUTPUT: float32 predictions in [0, 1] whatever --value-range (LOW + (HIGH - LOW) * OUTPUT gives
the input's units), (M, C, H, W) or (N, M, C, H, W); M defaults to the checkpoint's future. It
is written to a temporary file beside it and renamed into place: an error never leaves a partial
OUTPUT nor harms an existing one. A forecast holding NaN or inf is an error, never written.
--png / --gif: input and prediction of up to 4 sequences, as rows of a picture / as an animation; a
checkpoint trained on radar (data.units) draws them in its units on pysteps' precipitation colour scale
(--colors: another of pysteps' scales or a matplotlib colour map such as cividis), others in grey or RGB.
INPUT may be a video (.mp4, .avi, .mkv, .webm, .mov, ...; needs pip install -e ".[video]"): decoded as
the checkpoint's data config does (channels, image_size, crop, frame_step), its last frames_in frames
(or those from --start; with --side-by-side, those that leave the forecast's frames of the clip as the
truth) are the input. OUTPUT may then be a video (.mp4, .mkv, .mov, .webm, .avi) at
the clip's frame rate (after frame_step); --side-by-side shows the input, the truth where the clip
continues, and the forecast.
No output may be CKPT, INPUT or another output (also through a link); --force replaces existing
output files.

convgru predict CKPT INPUT.nc OUTPUT.nc [--init TIME] [--future M] [--force]
Gridded fields (a checkpoint trained with data=fields): INPUT is NetCDF (a glob of files) or a Zarr
store with the checkpoint's variables and at least data.frames_in steps up to --init (default: its
last step); OUTPUT is NetCDF in physical units on the input's grid, with its variable names, units
and attributes, dimensions init_time and lead_time, and the valid time as a coordinate. An INPUT on
the checkpoint's grid in another order (latitudes descending, longitudes -180..180 or 0..360) is
aligned to it and its forecast written in the INPUT's order; times are dates of the INPUT's calendar
(noleap, 360_day, ...). A fields CKPT takes only NetCDF / Zarr, any other only frames. --png: maps of
the input steps and the forecast in each variable's units (one file per variable, OUT_<name>.png, when
there are several); --gif: an animation of the first variable.
"""


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file (through links too), or would once written."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def clash(inputs, outputs) -> str | None:
    """Why an output (option, path) would be written over an input or another output, or None."""
    for i, (option, path) in enumerate(outputs):
        for other, source in inputs:
            if same_file(path, source):
                what = "the input frames (read as it is written)" if other == "INPUT" else "the checkpoint"
                return (f"{option} {shown_path(path)} is the same file as {other} {shown_path(source)}: writing it "
                        f"would destroy {what}; "
                        f"choose another {option} file")
        for other, earlier in outputs[:i]:
            if same_file(path, earlier):
                return (f"{option} {shown_path(path)} is the same file as {other} {shown_path(earlier)}: "
                        f"choose another {option} file")
    return None


def parser() -> argparse.ArgumentParser:
    """The predict command's arguments, for every kind of input."""
    parser = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path, metavar="CKPT", help="checkpoint written by scripts/train.py")
    parser.add_argument("input", metavar="INPUT",
                        help=".npy file of input frames, a video, or NetCDF file(s) (a glob) / a Zarr store of fields")
    parser.add_argument("output", type=Path, metavar="OUTPUT",
                        help=".npy file for the predicted frames, in [0, 1]; a video for a video INPUT; NetCDF (.nc) "
                             "for fields")
    parser.add_argument("--future", type=positive_int, help="frames to forecast (default: the checkpoint's)")
    parser.add_argument("--value-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="input values that map to 0 and 1, as training's data.value_range (required for "
                             "integers other than uint8 and floats outside [0, 1]; OUTPUT stays in [0, 1])")
    parser.add_argument("--png", type=Path, help="also save a picture: rows input, prediction of up to 4 sequences")
    parser.add_argument("--gif", type=Path, help="also save an animation: input | prediction of up to 4 sequences")
    parser.add_argument("--colors", default="pysteps",
                        help="radar --png / --gif: pysteps' colour scale (pysteps, STEPS-BE, BOM-RF3) or a matplotlib "
                             "colour map on its levels, e.g. cividis (readable with a colour vision deficiency)")
    parser.add_argument("--start", type=int, help="video INPUT: first input frame (default: the last frames_in)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="video OUTPUT: input | truth (where the clip continues) | forecast; the default "
                             "--start then leaves the forecast's frames of the clip as the truth")
    parser.add_argument("--init", help="fields INPUT: initialization time (the last input step), e.g. "
                                       "2018-01-01T00 (or 2018-01: the month's step of monthly data); default: "
                                       "the input's last time step")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def main(argv=None) -> None:
    """Forecast with a checkpoint: `convgru predict CKPT INPUT OUTPUT [options]` (`argv`: its arguments,
    default sys.argv[1:]; options in USAGE and `parser`). INPUT .npy (T, C, H, W) or (N, T, C, H, W) frames,
    a video or NetCDF / Zarr fields (`predict_fields`); OUTPUT the forecast in [0, 1] (.npy, a video) or in
    the variables' units (NetCDF), written atomically. Every bad argument or file exits with status 2 and
    one `error:` line naming it (SystemExit); nothing existing is overwritten without --force."""
    parse = parser()
    args = parse.parse_args(sys.argv[1:] if argv is None else list(argv))
    if is_field_path(args.input):
        return predict_fields(parse, args)
    if args.init is not None:
        parse.error(f"--init needs a fields INPUT (NetCDF or Zarr), found {shown_path(args.input)}")
    return predict_frames(parse, args)


def predict_fields(parser: argparse.ArgumentParser, args) -> None:
    """CKPT INPUT.nc OUTPUT.nc [--init TIME] [--future M] [--force]: the forecast from the `frames_in`
    steps up to --init (default: the input's last step) as NetCDF on the input's grid."""
    given = [f"--{name.replace('_', '-')}" for name in NOT_FOR_FIELDS if getattr(args, name) not in (None, False)]
    if given:
        parser.error(f"{' '.join(given)}: not for a fields INPUT ({shown_path(args.input)}); a forecast of fields is "
                     f"NetCDF in "
                     "the variables' units")
    if args.output.suffix.lower() not in FIELD_OUTPUTS:
        parser.error(f"OUTPUT {shown_path(args.output)}: expected a NetCDF file (.nc) for a forecast of fields, "
                     f"found the extension {args.output.suffix or '(none)'!r}")
    outputs = [(option, path) for option, path in (("OUTPUT", args.output), ("--png", args.png), ("--gif", args.gif))
               if path is not None]
    if error := clash([("CKPT", args.ckpt)], outputs):
        parser.error(error)
    for option, path in outputs:
        if error := output_error(path, args.force, option):
            parser.error(error)
    try:
        if output_inside_input(args.output, args.input):
            parser.error(f"OUTPUT {shown_path(args.output)} is INPUT or inside it (a Zarr store's folder): writing "
                         f"it would "
                         "damage the input; choose an OUTPUT outside the input")
    except (OSError, ValueError) as error:
        parser.error(str(error))
    module = load_checked(parser, args)
    try:
        source, frames, end = read_fields(module, args.input, args.init, say)
        prediction = forecast_fields(module, source, frames, args.future, args.batch_size, args.ckpt)
    except (OSError, ValueError) as error:
        parser.error(input_error(args.input, error))
    if not np.isfinite(prediction).all():
        parser.error(f"the forecast of CKPT {shown_path(args.ckpt)} holds NaN or inf; nothing was written")
    try:
        write_field_forecast(args.output, source, prediction, end)
    except OSError as error:
        parser.error(cannot_write("OUTPUT", args.output, error))
    except ValueError as error:  # a name NetCDF refuses, or the writer's own refusal
        parser.error(f"OUTPUT {shown_path(args.output)}: {error}; nothing was written there")
    init = source.calendar.label(source.times[end], unit="m")
    print(f"Wrote the forecast ({prediction.shape[1]} lead times of {source.step.text} from {init}) of "
          f"{', '.join(map(shown_name, source.names))} to {shown_path(args.output)}", file=sys.stdout)
    if args.png or args.gif:
        from convgru.training.figures import LeadTime, colorize, fields_rendering  # matplotlib

        rendering = fields_rendering(source, np.asarray, LeadTime(*source.step.leads(prediction.shape[1])))
        save_pictures(parser, args, torch.from_numpy(frames[None]), torch.from_numpy(prediction), rendering,
                      colorize)


def say(line: str, warning: bool = False) -> None:
    """A line about the input: on stderr, as `warning: ...` when it is one."""
    print(f"warning: {line}" if warning else line, file=sys.stderr)


def load_checked(parser: argparse.ArgumentParser, args):
    """The module of CKPT on --device, refused (one parser error) when unsafe or not for INPUT's kind."""
    try:
        module = load_module(args.ckpt).to(args.device)
    except CheckpointError as error:
        parser.error(str(error))
    if error := bad_data_config(module, args.ckpt) or wrong_input(module, args.ckpt, args.input):
        parser.error(error)
    return module


def predict_frames(parser: argparse.ArgumentParser, args) -> None:
    """CKPT INPUT.npy|video OUTPUT.npy|video [options]: forecasts in [0, 1] of arrays or a video's frames."""
    args.input = Path(args.input)
    try:
        check_value_range(args.value_range, "--value-range LOW HIGH")
    except ValueError as error:
        parser.error(str(error))
    for option, path in (("CKPT", args.ckpt), ("INPUT", args.input)):
        try:
            check_path(path, "file")
        except OSError as error:
            parser.error(f"{option} {error}")
        if not path.is_file():
            parser.error(f"{option} {shown_path(path)}: file not found")
    outputs = [(option, path) for option, path in (("OUTPUT", args.output), ("--png", args.png), ("--gif", args.gif))
               if path is not None]
    if error := clash([("CKPT", args.ckpt), ("INPUT", args.input)], outputs):
        parser.error(error)
    for option, path in outputs:
        if error := output_error(path, args.force, option):
            parser.error(error)
    video_in, video_out = is_video(args.input), args.output.suffix.lower() in ENCODERS
    if not video_out and args.output.suffix.lower() != ".npy":
        kinds = f".npy or a video ({', '.join(ENCODERS)})" if video_in else ".npy"
        parser.error(f"OUTPUT {shown_path(args.output)}: expected {kinds}, found the extension "
                     f"{args.output.suffix or '(none)'!r}")
    if video_out and not video_in:
        parser.error(f"OUTPUT {shown_path(args.output)}: a video OUTPUT needs a video INPUT (its frame rate); write "
                     f"a .npy")
    if args.side_by_side and not video_out:
        parser.error(f"--side-by-side needs a video OUTPUT ({', '.join(ENCODERS)}), found {shown_path(args.output)}")
    if args.start is not None and not video_in:
        parser.error(f"--start needs a video INPUT, found {shown_path(args.input)}")
    module = load_checked(parser, args)
    try:  # memory-mapped; never unpickled
        if video_in:
            frames, truth, rate = read_clip(module, args.input, args.start, args.future, args.side_by_side)
        else:
            frames = ArrayFile(args.input).array
        check_values(frames, args.value_range, "--value-range LOW HIGH" + range_hint(module))
    except (OSError, ValueError, ImportError) as error:
        parser.error(input_error(args.input, error))
    trained_frames, trained_size = trained_on(module)
    if trained_size and frames.ndim >= 2 and tuple(frames.shape[-2:]) != trained_size:
        print(f"warning: {shown_path(args.ckpt)} was trained on {trained_size[0]}x{trained_size[1]} frames, "
              f"{shown_path(args.input)} "
              f"holds {frames.shape[-2]}x{frames.shape[-1]} frames; the forecast may be poor", file=sys.stderr)
    if not video_in and trained_frames and frames.ndim in (4, 5) and frames.shape[-4] != trained_frames:
        print(f"warning: {shown_path(args.ckpt)} was trained on {trained_frames} input frames, "
              f"{shown_path(args.input)} holds {frames.shape[-4]} per sequence; the model reads all of them "
              f"(the last {trained_frames}: slice the array) and the forecast may be poor", file=sys.stderr)
    try:
        pred = forecast(module, frames, args.batch_size, args.future, args.value_range, check=False)
    except ValueError as error:
        parser.error(f"INPUT {shown_path(args.input)}: {error}")
    if bad := int(pred.size - np.count_nonzero(np.isfinite(pred))):
        parser.error(f"the forecast of CKPT {shown_path(args.ckpt)} for INPUT {shown_path(args.input)} holds {bad} "
                     f"NaN or inf value"
                     f"{'s' * (bad > 1)} (of {pred.size}); nothing was written. The checkpoint's weights are "
                     "damaged or diverged in training, or the input is far from the training data")

    if args.side_by_side and truth is None:
        print(f"note: --side-by-side shows no truth column: {shown_path(args.input)} has no frames after the input "
              f"frames"
              + (f" (--start {args.start}); an earlier --start leaves frames of the clip to compare with"
                 if args.start is not None else f" (it holds only the {len(frames)} input frames)"), file=sys.stderr)
    if video_out:
        save_output(parser, "OUTPUT", args.output, lambda name: write_forecast(name, pred, rate, args.output.suffix, *(
            (frames, truth) if args.side_by_side else ())))
    else:
        save_output(parser, "OUTPUT", args.output, lambda name: save_npy(name, pred), pred.nbytes)
    print(f"Wrote predictions {pred.shape} to {shown_path(args.output)}")
    if args.png or args.gif:
        inputs = as_batch(frames if frames.ndim == 4 else frames[:4], module.net.in_channels, args.value_range)[0]
        preds = torch.from_numpy(pred[None] if pred.ndim == 4 else pred[:4])
        rendering = radar_rendering(module, args.value_range, args.colors, parser)
        if rendering is not None:
            from convgru.training.figures import colorize  # matplotlib

            save_pictures(parser, args, rendering.physical(inputs), rendering.physical(preds), rendering, colorize,
                          (inputs, preds))
            return
        lead = lead_times(module.hparams.get("data"), preds.shape[1])
        if args.png:
            grid = sequence_grid([seq for pair in zip(inputs, preds) for seq in pair],
                                 ["input", "prediction"] * len(inputs),
                                 time_lines(inputs.shape[1], preds.shape[1], "prediction", lead))
            save_output(parser, "--png", args.png, lambda name: save_image(grid, name))
            print(f"Wrote {shown_path(args.png)}")
        if args.gif:
            save_output(parser, "--gif", args.gif, lambda name: forecast_gif(name, inputs, preds, lead=lead))
            print(f"Wrote {shown_path(args.gif)}")


def input_error(path, error: Exception) -> str:
    """The error line of INPUT `path` that could not be read: `error`'s message, naming `path` once."""
    name = shown_path(path)
    return f"INPUT {error}" if str(error).startswith(name) else f"INPUT {name}: {error}"


def cannot_write(option: str, path, error: OSError) -> str:
    """The error line of output `path` (given as `option`) that could not be written."""
    if error.errno in FAILED:  # the message names the file and why
        return f"{option} {shown_path(path)}: {error}; nothing was written there"
    return f"{option} {shown_path(path)}: cannot write it ({error.strerror or error}); nothing was written there"


def save_output(parser: argparse.ArgumentParser, option: str, path: Path, write, needed: int = 0) -> None:
    """`write`(temporary name) then rename to `path` (`atomic_write`); a failure is one parser error
    naming `option`, with nothing written there."""
    try:
        with atomic_write(path, f"{option} file", needed) as tmp:
            write(tmp)
    except ValueError as error:  # a frame size the video encoder cannot take
        parser.error(f"{option} {error}; nothing was written there")
    except OSError as error:
        parser.error(cannot_write(option, path, error))


def radar_rendering(module, value_range, colors: str, parser: argparse.ArgumentParser):
    """The figures' `Rendering` of a checkpoint trained on radar (data.units and data.value_range), with
    inputs scaled from `value_range` (--value-range) when given; None for other checkpoints."""
    data = module.hparams.get("data")
    if not (isinstance(data, Mapping) and isinstance(data.get("units"), str) and data.get("value_range")):
        return None
    from dataclasses import replace

    from convgru.domain.units import to_physical
    from convgru.training.figures import check_colors, rendering_of  # matplotlib

    try:
        check_colors(colors, "--colors")
    except ValueError as error:
        parser.error(str(error))
    rendering = rendering_of(module, colors=colors)
    if value_range is None:
        return rendering
    return replace(rendering, physical=lambda t: to_physical(np.asarray(t, dtype=np.float32), value_range))


def save_pictures(parser, args, inputs, preds, rendering, colorize, scaled=None) -> None:
    """--png: the forecast maps of `inputs` and `preds` (N, T, C, H, W in physical units) on the figures'
    colour scales (several variables: one file per variable, <stem>_<name>.png); --gif: the animation of
    `scaled` (inputs and preds as the model sees them; default: the physical ones), coloured."""
    from convgru.training.figures import forecast_panels, save  # matplotlib

    if args.png:
        panels, note = forecast_panels(np.asarray(inputs), None, np.asarray(preds), rendering)
        if note:
            print(f"note: {note}", file=sys.stderr)
        for name, figure in panels.items():
            path = args.png if len(panels) == 1 else args.png.with_name(f"{args.png.stem}_{name.split('_', 1)[1]}.png")
            save_output(parser, "--png", path, lambda tmp, figure=figure: save(figure, tmp))
            print(f"Wrote {shown_path(path)}")
    if args.gif:
        x, y = scaled if scaled is not None else (inputs, preds)
        coloured = colorize(torch.cat([x, y], 1), rendering).split([x.shape[1], y.shape[1]], 1)  # one scale
        save_output(parser, "--gif", args.gif, lambda tmp: forecast_gif(tmp, *coloured, lead=rendering.lead))
        print(f"Wrote {shown_path(args.gif)}")


def save_npy(name: str, array: np.ndarray) -> None:
    with open(name, "wb") as file:  # np.save(path) would add .npy to other names
        np.save(file, array)


def range_hint(module) -> str:
    """` (the checkpoint's data.value_range is [low, high])` when the checkpoint records one."""
    data = module.hparams.get("data")
    value_range = data.get("value_range") if isinstance(data, Mapping) else None
    if isinstance(value_range, (list, tuple)) and len(value_range) == 2 and \
            all(isinstance(v, (int, float)) for v in value_range):
        return f" (the checkpoint was trained with data.value_range [{value_range[0]:g}, {value_range[1]:g}])"
    return ""
