"""Reading windows of a Zarr store chunked along time (data=fields), with and without whole-chunk reads.

Writes a store of t2m (a year of 6-hourly 32x64 fields by default) twice: the whole series in one chunk
along time, and one step per chunk; then reads `--windows` random windows of frames_in + frames_out
steps as training does (a FieldDataset, a fresh copy per pass as a DataLoader worker gets it), side by
side and interleaved (A B B A ...): the whole-chunk store read through FieldSource's chunk cache (now),
the same store read window by window (the cache off: before), and the store of one step per chunk.

    python scripts/benchmark_fields.py                    # ~1 min on 2 cores
    python scripts/benchmark_fields.py --steps 2920 --height 64 --width 128
"""

import argparse
import pickle
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from convgru.data import fields
from convgru.data.field_module import FieldDataset


def write_store(path: Path, steps: int, height: int, width: int, chunk: int) -> Path:
    """t2m (K) at `steps` 6-hourly times on a height x width grid, `chunk` steps per chunk along time."""
    import xarray as xr

    times = np.datetime64("2001-01-01", "ns") + np.arange(steps) * np.timedelta64(6, "h")
    values = 280 + np.random.default_rng(0).normal(0, 5, (steps, height, width)).astype(np.float32)
    data = xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": times, "lat": np.linspace(-87, 87, height), "lon": np.linspace(0, 357, width)})
    data.to_zarr(path, encoding={"t2m": {"chunks": (chunk, height, width)}}, zarr_format=2, consolidated=True)
    return path


def read_windows(dataset: FieldDataset, order: np.ndarray, cache: bool) -> float:
    """Seconds to read the windows `order` of a fresh copy of `dataset`, with the chunk cache on or off."""
    fields.CACHE_BYTES = (1 << 28) if cache else 0
    copy = pickle.loads(pickle.dumps(dataset))
    start = time.perf_counter()
    for i in order:
        copy[int(i)]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1460)
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--window", type=int, default=24, help="frames_in + frames_out")
    parser.add_argument("--windows", type=int, default=64, help="random windows read per pass")
    parser.add_argument("--repeats", type=int, default=3, help="A B B A rounds")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="benchmark_fields_"))
    stores = {"whole": write_store(folder / "whole.zarr", args.steps, args.height, args.width, args.steps),
              "step": write_store(folder / "step.zarr", args.steps, args.height, args.width, 1)}
    datasets = {}
    for name, path in stores.items():
        source = fields.FieldSource([path], ["t2m"])
        starts = fields.window_starts(source.times, source.step, args.window)
        datasets[name] = FieldDataset(source, starts, args.window // 2, args.window - args.window // 2, [280.0], [5.0])
    order = np.random.default_rng(1).permutation(len(datasets["whole"]))[:args.windows]
    runs = {"whole chunk, cached (now)": ("whole", True), "whole chunk, per window (before)": ("whole", False),
            "one step per chunk": ("step", True)}
    times = {name: [] for name in runs}
    names = list(runs)
    for _ in range(args.repeats):
        for name in names + names[::-1]:
            store, cache = runs[name]
            times[name].append(read_windows(datasets[store], order, cache))
    print(f"{platform.processor() or platform.machine()}, {args.steps} steps of {args.height}x{args.width}, "
          f"{args.windows} random windows of {args.window} steps, {2 * args.repeats} passes each (interleaved)")
    base = statistics.median(times["whole chunk, cached (now)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<34} median {median:7.3f} s  spread {min(values):.3f}..{max(values):.3f} s  "
              f"({median / base:5.1f}x the cached read)")


if __name__ == "__main__":
    main()
