"""Forward+backward throughput of convgru against a textbook per-step ConvGRU, side by side.

The textbook version is what most public ConvGRU code does: at every step, concatenate x and h,
convolve for the gates, concatenate x and r*h, convolve for the candidate (Cho et al.'s reset, so
``reset="before"``). It is built from the weights of our modules, so both compute the same
function with the same FLOPs; the script checks that before timing.

    python scripts/benchmark.py                       # CPU, both models
    python scripts/benchmark.py --device cuda --amp   # GPU, bf16 autocast
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from convgru import ConvGRU, ConvGRUCell, EncoderForecaster


class TextbookCell(nn.Module):
    """conv(cat(x, h)) -> r, z; conv(cat(x, r*h)) -> n, every step; weights taken from ``cell``."""

    def __init__(self, cell: ConvGRUCell):
        super().__init__()
        c, conv = cell.hidden_size, cell.conv_h
        self.gates = self._joint(cell, 0, 2 * c)
        self.candidate = self._joint(cell, 2 * c, 3 * c)
        self.norm_rz, self.norm_n = cell.norm_rz or nn.Identity(), cell.norm_n or nn.Identity()
        self.hidden_size = conv.in_channels

    @staticmethod
    def _joint(cell: ConvGRUCell, lo: int, hi: int) -> nn.Conv2d:
        """One conv over cat(x, h) holding conv_x's and conv_h's output channels lo..hi-1."""
        h = cell.conv_h
        parts = ([cell.conv_x] if cell.conv_x is not None else []) + [h]
        conv = nn.Conv2d(sum(p.in_channels for p in parts), hi - lo, h.kernel_size,
                         padding=h.padding, dilation=h.dilation)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([p.weight[lo:hi] for p in parts], 1))
            conv.bias.copy_(sum(p.bias[lo:hi] for p in parts))
        return conv

    def forward(self, x: Tensor | None, h: Tensor) -> Tensor:
        """x: (B, C_in, H, W) or None, h: (B, C, H, W) -> (B, C, H, W)."""
        xs = [x] if x is not None else []
        r, z = torch.sigmoid(self.norm_rz(self.gates(torch.cat(xs + [h], 1)))).chunk(2, 1)
        n = torch.tanh(self.norm_n(self.candidate(torch.cat(xs + [r * h], 1))))
        return (1 - z) * n + z * h


class TextbookConvGRU(nn.Module):
    """Stacked textbook cells stepped frame by frame: x (T, B, C, H, W) -> (T, B, C_last, H, W)."""

    def __init__(self, model: ConvGRU):
        super().__init__()
        self.cells = nn.ModuleList(TextbookCell(c) for c in model.cells)

    def forward(self, x: Tensor) -> Tensor:
        h = [x.new_zeros(x.shape[1], c.hidden_size, *x.shape[-2:]) for c in self.cells]
        out = []
        for t in range(x.shape[0]):
            inp = x[t]
            for i, cell in enumerate(self.cells):
                h[i] = inp = cell(inp, h[i])
            out.append(inp)
        return torch.stack(out)


class TextbookForecaster(nn.Module):
    """The same encoder-forecaster, every level stepped frame by frame with textbook cells."""

    def __init__(self, net: EncoderForecaster):
        super().__init__()
        self.net = net
        self.encoder = nn.ModuleList(TextbookCell(c) for c in net.encoder)
        self.forecaster = nn.ModuleList(TextbookCell(c) for c in net.forecaster)

    def forward(self, x: Tensor, future: int) -> Tensor:
        net, levels = self.net, range(len(self.encoder))
        h = [None] * len(self.encoder)
        for t in range(x.shape[1]):
            inp = net.stem(x[:, t])
            for i in levels:
                inp = net.downsample[i](inp)
                state = h[i] if h[i] is not None else inp.new_zeros(
                    inp.shape[0], net.hidden_sizes[i], *inp.shape[-2:])
                h[i] = inp = self.encoder[i](inp, state)
        out = []
        for _ in range(future):
            inp = None
            for i in reversed(levels):
                h[i] = inp = self.forecaster[i](inp, h[i])
                inp = net.upsample[i - 1](inp) if i > 0 else inp
            out.append(net.head(inp))
        return torch.stack(out, 1)


def describe_device(device: torch.device) -> str:
    """Device, its name, the torch version and thread count, for the head of a benchmark's output."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return (f"device {device} ({name or platform.machine()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads,")


def sync(device: torch.device) -> None:
    """Wait for queued device work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(fn, args, amp: bool, device: torch.device) -> None:
    """One forward+backward."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        out = fn(*args)
    F.mse_loss(out.float(), torch.zeros_like(out, dtype=torch.float32)).backward()


def flops_and_saved_bytes(fn, args, amp, device) -> tuple[int, int]:
    """FLOPs of one forward+backward (FlopCounterMode), and the bytes of the distinct tensors
    autograd saves for backward (activation memory)."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.device)] = t.untyped_storage().nbytes()
        return t

    with FlopCounterMode(display=False) as counter, \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(fn, args, amp, device)
    return counter.get_total_flops(), sum(seen.values())


def peak_cuda_bytes(fn, args, amp, device) -> int | None:
    """Peak allocated device memory of one forward+backward (CUDA only)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step(fn, args, amp, device)
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def time_side_by_side(candidates: dict, amp, device, repeats: int) -> dict[str, list[float]]:
    """Seconds per forward+backward, the candidates interleaved (A B B A ...) after a warm-up."""
    times = {name: [] for name in candidates}
    for fn, args in candidates.values():
        step(fn, args, amp, device)
    for i in range(repeats):
        for name, (fn, args) in list(candidates.items())[:: 1 if i % 2 == 0 else -1]:
            sync(device)
            start = time.perf_counter()
            step(fn, args, amp, device)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def conv_ceiling(device: torch.device, amp: bool, repeats: int) -> float:
    """GFLOP/s of one large 5x5 conv2d forward: the machine's own conv throughput."""
    x = torch.randn(16, 160, 64, 64, device=device)
    conv = nn.Conv2d(160, 288, 5, padding=2).to(device)
    flop = 2 * x.shape[0] * 288 * 160 * 25 * 64 * 64
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        conv(x)
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            conv(x)
            sync(device)
            times.append(time.perf_counter() - start)
    return flop / statistics.median(times) / 1e9


def compare(title, ours, textbook, batch, amp, device, repeats) -> None:
    """Check both compute the same function, then print a side-by-side table."""
    with torch.no_grad():
        a, b = ours[0](*ours[1]), textbook[0](*textbook[1])
    err = ((a - b).norm() / b.norm()).item()
    print(f"\n{title}\n  same function: relative difference {err:.1e}")
    assert err < (2e-2 if amp else 1e-4), "textbook and ours disagree"
    candidates = {"convgru": ours, "textbook": textbook}
    times = time_side_by_side(candidates, amp, device, repeats)
    print(f"  {'':9} {'seq/s':>8} {'ms/iter':>9} {'GFLOP/iter':>11} {'GFLOP/s':>8} "
          f"{'saved MiB':>10} {'peak MiB':>9}")
    for name, (fn, args) in candidates.items():
        t = statistics.median(times[name])
        f, saved = flops_and_saved_bytes(fn, args, amp, device)
        peak = peak_cuda_bytes(fn, args, amp, device)
        print(f"  {name:9} {batch / t:8.2f} {t * 1e3:9.1f} {f / 1e9:11.1f} {f / t / 1e9:8.1f} "
              f"{saved / 2**20:10.0f} "
              f"{'-' if peak is None else f'{peak / 2**20:.0f}':>9}")
    ratio = statistics.median(times["textbook"]) / statistics.median(times["convgru"])
    spread = max(statistics.pstdev(v) / statistics.median(v) for v in times.values())
    print(f"  speed-up convgru / textbook: {ratio:.2f}x (median of {repeats}, "
          f"largest relative spread {spread:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--models", nargs="+", default=["convgru", "forecaster"],
                        choices=["convgru", "forecaster"])
    args = parser.parse_args()
    device, b = torch.device(args.device), args.batch
    torch.manual_seed(0)
    print(describe_device(device), f"batch {b}, amp {args.amp}, 64x64, 10 in + 10 out")
    print(f"machine conv2d ceiling: {conv_ceiling(device, args.amp, args.repeats):.1f} GFLOP/s "
          "(16x160x64x64 -> 288 channels, 5x5)")
    if "convgru" in args.models:
        model = ConvGRU(1, [64, 64], kernel_size=5, num_layers=2, reset="before").to(device)
        x = torch.rand(20, b, 1, 64, 64, device=device)
        compare("ConvGRU(1, 64, kernel_size=5, num_layers=2), 20 frames",
                (lambda x: model(x)[0], (x,)), (TextbookConvGRU(model).to(device), (x,)),
                b, args.amp, device, args.repeats)
    if "forecaster" in args.models:
        net = EncoderForecaster(hidden_sizes=(64, 96, 96), reset="before").to(device)
        x = torch.rand(b, 10, 1, 64, 64, device=device)
        compare("EncoderForecaster(hidden_sizes=(64, 96, 96)), 10 in -> 10 out",
                (net, (x, 10)), (TextbookForecaster(net).to(device), (x, 10)),
                b, args.amp, device, args.repeats)


if __name__ == "__main__":
    main()
