"""Video decoding throughput and the data time of one epoch with and without the decode-once cache.

python scripts/benchmark_video.py [--clips 24] [--frames 100] [--size 120 160] [--workers 1 2]

Writes `--clips` KTH-like clips (grayscale squares moving over noise, MPEG-4 part 2 .avi, 25
frames/s) into a temporary folder, then times:
- decoding them into the cache (`convgru.data.video_cache.ensure_clips`, 128x128 luma as
  experiment=kth) with each number of threads in `--workers`: frames/s;
- one epoch of data=video's training set (windows of 10 + 20 frames every 10 frames, batch 16,
  num_workers=0, no model) read from the cache, against the same epoch decoding every clip again
  (what a loader without the cache does each epoch).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from convgru.data import VideoDataModule
from convgru.data.video import decode_clip, write_video
from convgru.data.video_cache import ensure_clips

OPTIONS = dict(channels=1, image_size=128, crop="none", frame_step=1)


def make_clips(folder: Path, clips: int, frames: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(clips):
        video = rng.integers(0, 60, (frames, *size), dtype=np.uint8)
        for t in range(frames):
            left = (3 * t + 7 * k) % (size[1] - 20)
            video[t, 40:60, left:left + 20] = 230
        paths.append(folder / f"person{k % 25 + 1:02d}_walking_d{k // 25 + 1}_uncomp.avi")
        write_video(paths[-1], video, 25)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, nargs=2, default=(120, 160), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker; decoding threads are --workers
    print(f"CPU cores usable: {len(os.sched_getaffinity(0))}, torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        paths = make_clips(tmp / "clips", args.clips, args.frames, tuple(args.size))
        total = args.clips * args.frames
        print(f"{args.clips} clips of {args.frames} frames of {args.size[0]}x{args.size[1]} (.avi, MPEG-4), "
              f"decoded to 128x128 luma")
        decode_clip(paths[0], **OPTIONS)  # warm up (imports, first allocations)
        for workers in args.workers:
            start = time.perf_counter()
            ensure_clips(paths, tmp / f"cache{workers}", **OPTIONS, workers=workers, progress=False)
            seconds = time.perf_counter() - start
            print(f"decode into the cache, {workers} thread(s): {total / seconds:8.0f} frames/s ({seconds:.2f} s)")

        data = VideoDataModule(files=[str(tmp / "clips")], frames_in=10, frames_out=20, stride=10, **OPTIONS,
                               cache_dir=tmp / f"cache{args.workers[0]}", num_workers=0, batch_size=16)
        data.setup("fit")
        loader = data.train_dataloader()
        start = time.perf_counter()
        batches = sum(1 for _ in loader)
        cached = time.perf_counter() - start
        train = data.datasets["train"]
        train_clips = {train.arrays[i].file.path for i in set(train.windows[:, 0].tolist())}
        sources = [p for p in paths if any(c.name.startswith(p.stem + "_") for c in train_clips)]
        start = time.perf_counter()
        for path in sources:
            decode_clip(path, **OPTIONS)
        assert sum(1 for _ in loader) == batches
        uncached = time.perf_counter() - start
        print(f"one epoch of the training set ({len(sources)} clips, {len(data.datasets['train'])} windows, "
              f"{batches} batches of 16, no model): from the cache {cached:.2f} s, decoding every clip again "
              f"{uncached:.2f} s ({uncached / cached:.0f}x)")


if __name__ == "__main__":
    main()
