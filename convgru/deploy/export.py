"""A trained model exported: the ONNX file of a checkpoint's network (`export_module`) and the export
command (`main`, what scripts/export.py runs)."""

import argparse
from pathlib import Path

from convgru._checks import shown_path
from convgru.deploy.forecast import bad_data_config, check_forecast_memory, trained_on
from convgru.export import export_onnx
from convgru.training.checkpoint import CheckpointError
from convgru.training.cli import output_error, positive_int
from convgru.training.restore import load_module

USAGE = """Export a trained checkpoint to ONNX and check the file with onnxruntime.

convgru export CKPT OUT.onnx [--frames-in N] [--future M] [--height H --width W] [--force]
The file takes x: (B, N, C, H, W) float32 frames in [0, 1] and returns y: (B, M, C, H, W), the
forecast clamped to [0, 1], for any batch B and any H, W that are multiples of 2**(levels - 1).
N and H, W default to the checkpoint's data config (required for checkpoints without one), M to the
checkpoint's future; the graph is traced at H x W. Needs pip install 'convgru[export]'.
"""


def export_module(module, path, frames_in: int | None = None, future: int | None = None, height: int | None = None,
                  width: int | None = None, opset: int | None = None, check: bool = True) -> float | None:
    """Export a trained ForecastModule's network to ONNX with `convgru.export_onnx`, its forecast
    clamped to [0, 1] as `module.forecast` gives it. `frames_in`, `height`, `width` default to the
    checkpoint's data config (`trained_on`), `future` to ``module.hparams.future``. Raises ValueError
    naming what is missing for a checkpoint with no data config (convgru 0.1.0); returns the max abs
    difference between onnxruntime and PyTorch (see `export_onnx`)."""
    stored_frames, size = trained_on(module)
    frames_in = frames_in or stored_frames
    height, width = height or (size or (None, None))[0], width or (size or (None, None))[1]
    if frames_in is None:
        raise ValueError("frames_in: the checkpoint stores no data config (convgru 0.1.0): give the number of "
                         "input frames")
    if height and width:
        check_forecast_memory(module, 1, frames_in, height, width, future)
    return export_onnx(module.net, path, frames_in, future or module.hparams.future, height, width, opset=opset,
                       check=check, clamp=True)


def main(argv=None) -> None:
    """The export command: `convgru export CKPT OUT.onnx [--frames-in N] [--future M] [--height H] [--width
    W] [--opset V] [--force]` (`argv`: its arguments, default sys.argv[1:]). Writes OUT atomically, checks it
    with onnxruntime and prints the max abs difference; a bad argument or file exits with status 2 and one
    `error:` line naming it (SystemExit)."""
    parser = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path, metavar="CKPT", help="checkpoint written by scripts/train.py")
    parser.add_argument("output", type=Path, metavar="OUT", help="the .onnx file to write")
    parser.add_argument("--frames-in", type=positive_int, help="input frames N (default: the checkpoint's)")
    parser.add_argument("--future", type=positive_int, help="forecast frames M (default: the checkpoint's)")
    parser.add_argument("--height", type=positive_int, help="frame height to trace at (default: the checkpoint's)")
    parser.add_argument("--width", type=positive_int, help="frame width to trace at (default: the checkpoint's)")
    parser.add_argument("--opset", type=positive_int, help="ONNX opset version (default: torch.onnx's)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)

    if not args.ckpt.is_file():
        parser.error(f"CKPT {shown_path(args.ckpt)}: file not found")
    if error := output_error(args.output, args.force, "OUT"):
        parser.error(error)
    try:
        module = load_module(args.ckpt)
    except CheckpointError as error:
        parser.error(str(error))
    if error := bad_data_config(module, args.ckpt):
        parser.error(error)
    frames_in, size = trained_on(module)
    height, width = size or (None, None)
    frames_in, height, width = args.frames_in or frames_in, args.height or height, args.width or width
    missing = [flag for flag, value in (("--frames-in", frames_in), ("--height", height), ("--width", width))
               if value is None]
    if missing:
        parser.error(f"{shown_path(args.ckpt)} stores no data config (frames_in, image_size; convgru 0.1.0 checkpoints "
                     f"have none): pass {' '.join(missing)}")
    try:
        diff = export_module(module, args.output, frames_in, args.future, height, width, opset=args.opset)
    except (ImportError, ValueError) as error:
        parser.error(str(error))
    future, net = args.future or module.hparams.future, module.net
    print(f"Wrote {shown_path(args.output)}: x (B, {frames_in}, {net.in_channels}, H, W) -> y (B, {future}, "
          f"{net.head[-1].out_channels}, H, W), H and W multiples of {2 ** (len(net.hidden_sizes) - 1)}")
    print(f"onnxruntime vs PyTorch on a new input: max abs difference {diff:.2e}")
