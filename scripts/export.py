"""Export a trained checkpoint to ONNX and check the file with onnxruntime.

python scripts/export.py CKPT OUT.onnx [--frames-in N] [--future M] [--height H --width W] [--force]
The file takes x: (B, N, C, H, W) float32 frames in [0, 1] and returns y: (B, M, C, H, W), the
forecast clamped to [0, 1], for any batch B and any H, W that are multiples of 2**(levels - 1).
N and H, W default to the checkpoint's data config (required for checkpoints without one), M to the
checkpoint's future; the graph is traced at H x W. Needs pip install 'convgru[export]'.
"""

import argparse
from pathlib import Path

from convgru.training import CheckpointError, load_module
from convgru.training.cli import output_error, positive_int
from convgru.training.deploy import export_module, trained_on


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        parser.error(f"CKPT {args.ckpt}: file not found")
    if error := output_error(args.output, args.force, "OUT"):
        parser.error(error)
    try:
        module = load_module(args.ckpt)
    except CheckpointError as error:
        parser.error(str(error))
    frames_in, size = trained_on(module)
    height, width = size or (None, None)
    frames_in, height, width = args.frames_in or frames_in, args.height or height, args.width or width
    missing = [flag for flag, value in (("--frames-in", frames_in), ("--height", height), ("--width", width))
               if value is None]
    if missing:
        parser.error(f"{args.ckpt} stores no data config (frames_in, image_size; convgru 0.1.0 checkpoints "
                     f"have none): pass {' '.join(missing)}")
    try:
        diff = export_module(module, args.output, frames_in, args.future, height, width, opset=args.opset)
    except (ImportError, ValueError) as error:
        parser.error(str(error))
    future, net = args.future or module.hparams.future, module.net
    print(f"Wrote {args.output}: x (B, {frames_in}, {net.in_channels}, H, W) -> y (B, {future}, "
          f"{net.head[-1].out_channels}, H, W), H and W multiples of {2 ** (len(net.hidden_sizes) - 1)}")
    print(f"onnxruntime vs PyTorch on a new input: max abs difference {diff:.2e}")


if __name__ == "__main__":
    main()
