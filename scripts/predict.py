"""Forecast new sequences with a trained checkpoint.

python scripts/predict.py CKPT INPUT.npy OUTPUT.npy [--png OUTPUT.png]
INPUT: (T, C, H, W) or (N, T, C, H, W) frames, uint8 (0..255) or float in [0, 1].
OUTPUT: float32 predictions in [0, 1], (T_out, C, H, W) or (N, T_out, C, H, W).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image

from convgru.training import load_module
from convgru.training.images import sequence_grid
from convgru.training.predict import forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path, help="checkpoint written by scripts/train.py")
    parser.add_argument("input", type=Path, help=".npy file of input frames")
    parser.add_argument("output", type=Path, help=".npy file for the predicted frames")
    parser.add_argument("--png", type=Path, help="also save a picture: rows input, prediction of up to 4 sequences")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    if not args.input.is_file():
        parser.error(f"input file not found: {args.input}")
    module = load_module(args.ckpt).to(args.device)
    frames = np.load(args.input, mmap_mode="r")
    pred = forecast(module, frames, args.batch_size)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, pred)
    print(f"Wrote predictions {pred.shape} to {args.output}")
    if args.png:
        inputs = frames[None] if frames.ndim == 4 else frames
        preds = pred[None] if pred.ndim == 4 else pred
        scale = 255.0 if inputs.dtype == np.uint8 else 1.0
        rows = [torch.from_numpy(seq) for i in range(min(4, len(preds))) for seq in (inputs[i] / scale, preds[i])]
        save_image(sequence_grid(rows), args.png)
        print(f"Wrote {args.png}")


if __name__ == "__main__":
    main()
