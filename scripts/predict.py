"""Forecast new sequences with a trained checkpoint.

python scripts/predict.py CKPT INPUT.npy OUTPUT.npy [--future M] [--png OUT.png] [--gif OUT.gif] [--force]
INPUT: (T, C, H, W) or (N, T, C, H, W) frames, uint8 (0..255) or float in [0, 1]; H and W
multiples of 2**(levels - 1).
OUTPUT: float32 predictions in [0, 1], (M, C, H, W) or (N, M, C, H, W); M defaults to the
checkpoint's future. --png / --gif: input and prediction of up to 4 sequences, as rows of a
picture / as an animation.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from convgru.data import ArrayFile
from convgru.training import CheckpointError, load_module
from convgru.training.animation import forecast_gif
from convgru.training.cli import output_error, positive_int, trained_on
from convgru.training.images import sequence_grid
from convgru.training.predict import as_batch, forecast


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path, metavar="CKPT", help="checkpoint written by scripts/train.py")
    parser.add_argument("input", type=Path, metavar="INPUT", help=".npy file of input frames")
    parser.add_argument("output", type=Path, metavar="OUTPUT", help=".npy file for the predicted frames")
    parser.add_argument("--future", type=positive_int, help="frames to forecast (default: the checkpoint's)")
    parser.add_argument("--png", type=Path, help="also save a picture: rows input, prediction of up to 4 sequences")
    parser.add_argument("--gif", type=Path, help="also save an animation: input | prediction of up to 4 sequences")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    if not args.ckpt.is_file():
        parser.error(f"CKPT {args.ckpt}: file not found")
    if not args.input.is_file():
        parser.error(f"INPUT {args.input}: file not found")
    for option, path in (("OUTPUT", args.output), ("--png", args.png), ("--gif", args.gif)):
        if path is not None and (error := output_error(path, args.force, option)):
            parser.error(error)
    try:
        module = load_module(args.ckpt).to(args.device)
    except CheckpointError as error:
        parser.error(str(error))
    try:  # memory-mapped; never unpickled
        frames = ArrayFile(args.input).array
    except (OSError, ValueError) as error:
        parser.error(f"INPUT {error}" if str(error).startswith(str(args.input)) else f"INPUT {args.input}: {error}")
    trained_size = trained_on(module)[1]
    if trained_size and frames.ndim >= 2 and tuple(frames.shape[-2:]) != trained_size:
        print(f"warning: {args.ckpt} was trained on {trained_size[0]}x{trained_size[1]} frames, {args.input} "
              f"holds {frames.shape[-2]}x{frames.shape[-1]} frames; the forecast may be poor", file=sys.stderr)
    try:
        pred = forecast(module, frames, args.batch_size, args.future)
    except ValueError as error:
        parser.error(f"INPUT {args.input}: {error}")
    with open(args.output, "wb") as file:  # np.save(path) would add .npy to other names
        np.save(file, pred)
    print(f"Wrote predictions {pred.shape} to {args.output}")
    if args.png or args.gif:
        inputs = as_batch(frames if frames.ndim == 4 else frames[:4], module.net.in_channels)[0]
        preds = torch.from_numpy(pred[None] if pred.ndim == 4 else pred[:4])
        if args.png:
            save_image(sequence_grid([seq for pair in zip(inputs, preds) for seq in pair]), args.png)
            print(f"Wrote {args.png}")
        if args.gif:
            forecast_gif(args.gif, inputs, preds)
            print(f"Wrote {args.gif}")


if __name__ == "__main__":
    main()
