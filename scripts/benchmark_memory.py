"""Peak memory and time per frame of a training step against the sequence length and the frame size,
for activation checkpointing through time (``checkpoint_every``) off and on, side by side in one run.

    python scripts/benchmark_memory.py                     # CPU: the subset that runs in minutes
    python scripts/benchmark_memory.py --doc docs/benchmarks.md      # and write the table there
    python scripts/benchmark_memory.py --device cuda --amp --hidden 64 96 96 --stem 16 --batch 4 \\
        --budget 0                                         # a GPU: the full grid, Shi et al.'s model

A step is one forward and backward (MSE loss) of an EncoderForecaster on T frames: T/2 in, T/2 out
(T = 10, 50, 200 by default), square frames of --sizes pixels, batch --batch, for checkpoint_every
in --every ("off", 1, 4, 16). The cells of one (size, T) run one after the other, each warmed up
once, then timed --repeats times (median); the cells whose T * size**2 is over --budget are listed
as skipped (the default budget keeps a 2-core CPU to a few minutes; 0 runs every cell).

Peak memory is the most memory in use during the step above what was in use before it:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, less
  ``memory_allocated`` before: torch's caching allocator counts every tensor.
- CPU: torch has no allocator statistics on the CPU, tracemalloc sees only Python's allocator (not
  torch's, which calls the C library's posix_memalign), and saved-tensor hooks miss what
  ``torch.utils.checkpoint`` keeps and the backward pass allocates. So this script asks the
  operating system: the resident set's high-water mark (``VmHWM`` of /proc/self/status), reset
  before each step (``echo 5 > /proc/self/clear_refs``), less the resident set before it. For that to
  count tensors as they come and go, the C library is told to serve every allocation of 64 KiB or
  more by mmap and to return it when freed (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc's
  adaptive threshold), and freed heap memory is returned before each step (``malloc_trim``). Linux
  with glibc only; smaller tensors (under 64 KiB) are counted only as far as the heap grows.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import re
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark import describe_device, sync
from convgru import EncoderForecaster
from convgru.atomic import atomic_write

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 64 * 1024
BEGIN, END = "<!-- benchmark_memory: begin -->", "<!-- benchmark_memory: end -->"


class CpuPeak:
    """Peak resident memory of a call above the resident memory before it (Linux, glibc; see above)."""

    def __init__(self):
        try:
            self.libc = ctypes.CDLL("libc.so.6")
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as error:
            raise SystemExit(f"error: measuring CPU memory needs Linux with glibc ({error}); use --device cuda") \
                from None
        if self.libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
            raise SystemExit("error: mallopt(M_MMAP_THRESHOLD) failed: cannot measure CPU memory here")

    @staticmethod
    def _status(key: str) -> int:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) * 1024

    def measure(self, run) -> int:
        gc.collect()
        self.libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        base = self._status("VmRSS")
        run()
        return self._status("VmHWM") - base


class CudaPeak:
    """Peak allocated CUDA memory of a call above what was allocated before it."""

    def __init__(self, device: torch.device):
        self.device = device

    def measure(self, run) -> int:
        sync(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        run()
        sync(self.device)
        return torch.cuda.max_memory_allocated(self.device) - base


def every_value(text: str) -> int | None:
    """'off' -> None, else an int >= 1."""
    if text == "off":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'off' or an int >= 1, got {text!r}")
    return value


def train_step(net: EncoderForecaster, x: torch.Tensor, future: int, amp: bool) -> None:
    """One forward and backward (MSE loss against zeros); the gradients are dropped first."""
    net.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(x, future)
    F.mse_loss(out.float(), torch.zeros_like(out, dtype=torch.float32)).backward()


def measure_cells(net, meter, device, size: int, frames: int, everys, args) -> dict:
    """{every: (peak bytes, seconds per step)} for one (size, T), the cells side by side."""
    frames_in = frames // 2
    x = torch.rand(args.batch, frames_in, 1, size, size, device=device)
    peaks, times = {k: [] for k in everys}, {k: [] for k in everys}

    def run():
        train_step(net, x, frames - frames_in, args.amp)
        sync(device)

    for every in everys:  # warm-up: one-time allocations (kernels, oneDNN primitives) stay out
        net.checkpoint_every = every
        run()
    for i in range(args.repeats):
        for every in everys[:: 1 if i % 2 == 0 else -1]:  # A B B A
            net.checkpoint_every = every
            start = time.perf_counter()
            peaks[every].append(meter.measure(run))
            times[every].append(time.perf_counter() - start)
    return {k: (statistics.median(peaks[k]), statistics.median(times[k])) for k in everys}


def table(results: dict, everys, sizes, frames) -> list[str]:
    """Markdown rows: one per (size, T), peak MiB and ms per frame for each k, ratios to T=10, k=off."""
    name = {k: "off" if k is None else f"k={k}" for k in everys}
    head = "| frames | T | " + " | ".join(f"{name[k]}: peak MiB, ms/frame" for k in everys) + " |"
    rows = [head, "| ---: | ---: | " + " | ".join("---:" for _ in everys) + " |"]
    for size in sizes:
        for t in frames:
            cells = results.get((size, t))
            if cells is None:
                rows.append(f"| {size}x{size} | {t} | " + " | ".join("skipped" for _ in everys) + " |")
                continue
            rows.append(f"| {size}x{size} | {t} | " + " | ".join(
                f"{cells[k][0] / 2**20:.0f}, {cells[k][1] / t * 1e3:.0f}" for k in everys) + " |")
    return rows


def verdicts(results: dict, everys, sizes, frames) -> list[str]:
    """Per frame size: the longest T against the shortest, with the k of least peak memory at the longest."""
    lines, short, long = [], min(frames), max(frames)
    for size in sizes:
        base, cells = results.get((size, short)), results.get((size, long))
        if base is None or cells is None or None not in base:
            continue
        best = min(everys, key=lambda k: cells[k][0])
        memory = cells[best][0] / base[None][0]
        speed = (cells[best][1] / long) / (base[None][1] / short)
        met = "met" if memory <= 1.5 and speed <= 1.5 else "not met"
        lines.append(f"{size}x{size}: T={long} with k={best} uses {memory:.2f}x the peak memory of T={short} without "
                     f"checkpointing (off at T={long}: {cells[None][0] / base[None][0]:.1f}x), {speed:.2f}x its time "
                     f"per frame; target (<= 1.5x both): {met}")
    return lines


def write_doc(path: Path, text: str) -> None:
    """Put `text` between the markers in `path` (appended with them if they are not there yet)."""
    doc = path.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with atomic_write(path) as tmp:
        Path(tmp).write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--frames", nargs="+", type=int, default=[10, 50, 200], help="T: T/2 in, T/2 out")
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 384])
    parser.add_argument("--every", nargs="+", type=every_value, default=[None, 1, 4, 16],
                        help="checkpoint_every values: off or k")
    parser.add_argument("--hidden", nargs="+", type=int, default=[16, 32, 32], help="hidden_sizes")
    parser.add_argument("--stem", type=int, default=8, help="stem_channels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=int, default=200 * 64 * 64,
                        help="skip cells with T * size**2 over this (0: run every cell)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--doc", type=Path, help="write the table into this markdown file (between markers)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    meter = CudaPeak(device) if device.type == "cuda" else CpuPeak()
    everys = list(dict.fromkeys(args.every))
    if None not in everys:
        everys.insert(0, None)
    torch.manual_seed(0)
    net = EncoderForecaster(hidden_sizes=args.hidden, kernel_size=5, stem_channels=args.stem).to(device)
    header = (f"{describe_device(device)} EncoderForecaster(hidden_sizes={args.hidden}, kernel_size=5, "
              f"stem_channels={args.stem}), batch {args.batch}, {'bf16 autocast' if args.amp else 'float32'}, "
              f"median of {args.repeats} after a warm-up, {datetime.date.today()}")
    print(header, flush=True)
    results = {}
    for size in args.sizes:
        for t in args.frames:
            if args.budget and t * size * size > args.budget:
                continue
            results[size, t] = measure_cells(net, meter, device, size, t, everys, args)
            print("\n".join(table(results, everys, [size], [t])[2:]), flush=True)
    rows = table(results, everys, args.sizes, args.frames)
    lines = verdicts(results, everys, args.sizes, args.frames)
    print("\n" + header + "\n\n" + "\n".join(rows) + "\n\n" + "\n".join(lines))
    if args.doc:
        write_doc(args.doc, "\n".join([f"`{header}`", "", *rows, "", *(f"- {line}" for line in lines)]))


if __name__ == "__main__":
    main()
