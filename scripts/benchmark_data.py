"""Moving MNIST generation throughput (sequences/s) on the CPU cores this process may use.

One core:  taskset -c 0 python scripts/benchmark_data.py
Digits from IDX (e.g. MNIST's test set):
    python scripts/benchmark_data.py --idx ../shared/data/mnist/t10k-images-idx3-ubyte.gz
"""

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from convgru.data import EpochKeySampler, MovingMNISTStream, generate, read_idx
from convgru.data.digits import load_digit_bank


def rate(fn, sequences: int, repeats: int) -> float:
    """Best sequences/s of `repeats` timed calls of fn()."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return sequences / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idx", help="IDX digit images to use instead of the bundled bank")
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-digits", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    digits = read_idx(args.idx) if args.idx else load_digit_bank()
    n = args.sequences
    half = args.frames // 2
    stream = MovingMNISTStream(digits, n, half, args.frames - half, args.num_digits)
    loader = DataLoader(stream, batch_size=args.batch_size, sampler=EpochKeySampler(stream), num_workers=0)

    print(f"digits {digits.shape}, {args.num_digits} per sequence, {args.frames} frames of 64x64, "
          f"CPU cores usable: {len(os.sched_getaffinity(0))}, torch threads: {torch.get_num_threads()}")
    results = {
        f"generate(): {n} uint8 sequences in one call": lambda: generate(
            digits, n, np.random.default_rng(0), args.frames, args.num_digits),
        f"training DataLoader (num_workers=0, batch {args.batch_size}): float32 (x, y) batches": lambda: [
            batch for batch in loader],
    }
    for name, fn in results.items():
        print(f"{rate(fn, n, args.repeats):10.0f} sequences/s  {name}")


if __name__ == "__main__":
    main()
