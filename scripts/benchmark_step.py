"""How lean is a ConvGRU step: aten ops, compiled kernels, and time against its own convolutions.

    python scripts/benchmark_step.py --ops        # aten ops per ConvGRUCell.step, 0.1.0 against now
    python scripts/benchmark_step.py --kernels    # kernels of the compiled step (inductor)
    python scripts/benchmark_step.py --time       # fwd+bwd: 0.1.0 eager, eager, compiled, convs alone
    python scripts/benchmark_step.py --time --device cuda --amp
    python scripts/benchmark_step.py --ports [raft r-mvsnet droid-slam]   # ported cells against the
                                                  # projects' own, at their shapes

"0.1.0" is the step as convgru 0.1.0 wrote it (autograd through every element-wise op, separate
r and z GroupNorms), run on the same weights. "convs alone" replays every convolution the model
runs (same shapes, forward and backward) and nothing else: a step's time over it is the cost of
everything that is not a convolution.

"--ports" times one step of ConvGRUCell substituted into RAFT (its default SepConvGRU), R-MVSNet
(the first GRU of its regularisation, as the PyTorch MVSNet ports write it) and DROID-SLAM
(with its pooled context), against each project's own cell written here from its equations, on
the same weights (``ConvGRUCell.from_concat``, docs/porting.md), at each project's shapes:
forward and forward+backward, NCHW and channels_last, the two interleaved (A B B A).
"""

from __future__ import annotations

import argparse
import collections
import copy
import re
import statistics
import time

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark import describe_device, flops_and_saved_bytes, sync, time_side_by_side
from benchmark import step as forward_backward
from convgru import ConvGRU, ConvGRUCell, EncoderForecaster
from convgru.porting import gate_context


class Cell010(nn.Module):
    """ConvGRUCell.step exactly as 0.1.0 computed it, on the weights of a current cell."""

    def __init__(self, cell: ConvGRUCell):
        super().__init__()
        self.cell, c = cell, cell.hidden_size
        self.norm_r = self.norm_z = nn.Identity()
        if cell.norm_rz is not None:
            device = cell.norm_rz.weight.device
            self.norm_r, self.norm_z = (nn.GroupNorm(cell.norm_n.num_groups, c, device=device) for _ in "rz")
            with torch.no_grad():
                for i, norm in enumerate((self.norm_r, self.norm_z)):
                    norm.weight.copy_(cell.norm_rz.weight[i * c:(i + 1) * c])
                    norm.bias.copy_(cell.norm_rz.bias[i * c:(i + 1) * c])
        self.norm_n = cell.norm_n or nn.Identity()

    def step(self, gx: Tensor | None, h: Tensor) -> Tensor:
        cell = self.cell
        xr, xz, xn = gx.chunk(3, 1) if gx is not None else (0, 0, 0)
        if cell.reset == "after":
            hr, hz, hn = cell.conv_h(h).chunk(3, 1)
            r, z = torch.sigmoid(self.norm_r(xr + hr)), torch.sigmoid(self.norm_z(xz + hz))
            n = torch.tanh(self.norm_n(xn + r * hn))
        else:
            hr, hz = cell._conv_h(h, 0, 2).chunk(2, 1)
            r, z = torch.sigmoid(self.norm_r(xr + hr)), torch.sigmoid(self.norm_z(xz + hz))
            n = torch.tanh(self.norm_n(xn + cell._conv_h(r * h, 2, 3)))
        return n + z * (h - n)


def as_010(model: nn.Module) -> nn.Module:
    """A copy of `model` (same weights) whose cells step as in 0.1.0."""
    model = copy.deepcopy(model)
    for cell in [m for m in model.modules() if isinstance(m, ConvGRUCell)]:
        object.__setattr__(cell, "step", Cell010(cell).step)  # not a submodule: the weights stay the cell's
    return model


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while active, by name."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def step_inputs(cell: ConvGRUCell, size: int = 16, batch: int = 2):
    """gx = conv_x(x) (or None) and h on the cell's device, both leaves that require grad."""
    device = cell.conv_h.weight.device
    h = torch.randn(batch, cell.hidden_size, size, size, device=device, requires_grad=True)
    if cell.conv_x is None:
        return None, h
    with torch.no_grad():
        gx = cell.conv_x(torch.randn(batch, cell.input_size, size, size, device=device))
    return gx.requires_grad_(), h


def count_step_ops(step, gx, h) -> tuple[collections.Counter, collections.Counter]:
    """aten ops of one step's forward, and of its backward (from a given output gradient)."""
    with OpCounter() as forward:
        out = step(gx, h)
    grad = torch.randn_like(out)
    with OpCounter() as backward:
        out.backward(grad)
    return forward.ops, backward.ops


def ops_table(channels: int = 16) -> list[dict]:
    """Rows (norm, reset, version, forward ops, backward ops) for the four cell options."""
    rows = []
    for norm in (None, "group"):
        for reset in ("after", "before"):
            torch.manual_seed(0)
            cell = ConvGRUCell(channels, channels, 3, norm=norm, num_groups=2, reset=reset)
            for version, step in (("0.1.0", Cell010(cell).step), ("now", cell.step)):
                fwd, bwd = count_step_ops(step, *step_inputs(cell))
                rows.append(dict(norm=norm, reset=reset, version=version, forward=sum(fwd.values()),
                                 backward=sum(bwd.values()), forward_ops=dict(fwd)))
    return rows


def print_ops() -> None:
    print("aten ops per ConvGRUCell.step (TorchDispatchMode; views and autograd's detach included),\n"
          "one step from precomputed input gates gx = conv_x(x), 16 channels, batch 2, 16x16")
    print(f"{'norm':>6} {'reset':>6} {'version':>8} {'forward':>8} {'backward':>9} {'fwd+bwd':>8}  "
          "forward ops")
    for row in ops_table():
        print(f"{str(row['norm']):>6} {row['reset']:>6} {row['version']:>8} {row['forward']:8d} "
              f"{row['backward']:9d} {row['forward'] + row['backward']:8d}  "
              + " ".join(f"{k}:{v}" for k, v in sorted(row["forward_ops"].items())))


def compiled_kernels(cell: ConvGRUCell, device: str = "cpu", train: bool = False) -> list[str]:
    """Names of the kernels inductor generates for one compiled step (forward, or fwd+bwd)."""
    from torch._inductor.utils import run_and_get_code

    torch._dynamo.reset()
    cell = cell.to(device)
    gx, h = (None if t is None else t.detach().requires_grad_(train) for t in step_inputs(cell))
    step = torch.compile(cell.step, fullgraph=True)

    def run():
        out = step(gx, h)
        if train:
            out.sum().backward()

    with torch.set_grad_enabled(train):
        _, code = run_and_get_code(run)
    pattern = r"\b(cpp_fused_\w+|triton_(?:poi|red|per|tem)_\w+)\b"
    return sorted(set(re.findall(pattern, "\n".join(code))))


def gate_kernels(kernels: list[str]) -> list[str]:
    """The kernels that hold gate math (sigmoid, tanh or the state update)."""
    return [k for k in kernels if re.search("sigmoid|tanh|lerp", k)]


def print_kernels(device: str, resets) -> None:
    print(f"kernels of the compiled step on {device} (inductor, fullgraph); gate kernels hold "
          "sigmoid/tanh/lerp")
    for norm in (None, "group"):
        for reset in resets:
            cell = ConvGRUCell(16, 16, 3, norm=norm, num_groups=2, reset=reset)
            for train in (False, True):
                kernels = compiled_kernels(cell, device, train)
                print(f"  norm={str(norm):5} reset={reset:6} {'fwd+bwd' if train else 'forward':8} "
                      f"{len(kernels)} kernels, {len(gate_kernels(kernels))} with gate math: "
                      + ", ".join(kernels))


def record_convs(run, args) -> list[tuple]:
    """(input shape, input needs grad, weight shape, bias shape or None, *options) of every
    convolution that `run(*args)` runs."""
    calls = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kwargs=None):
            if func.overloadpacket.__name__ == "convolution":
                x, w, b, *options = a
                calls.append((x.shape, x.requires_grad, w.shape, None if b is None else b.shape, *options))
            return func(*a, **(kwargs or {}))

    with Recorder():
        run(*args)
    return calls


class ConvsAlone(nn.Module):
    """Replays recorded convolutions on fresh tensors, forward and backward: a model's convolutions
    and nothing else."""

    def __init__(self, calls: list[tuple], device):
        super().__init__()
        self.params, self.convs = nn.ParameterList(), []
        for x_shape, x_grad, w_shape, b_shape, *options in calls:
            w = nn.Parameter(torch.randn(w_shape, device=device) * 0.01)
            b = None if b_shape is None else nn.Parameter(torch.zeros(b_shape, device=device))
            self.params.extend(p for p in (w, b) if p is not None)
            self.convs.append((torch.randn(x_shape, device=device).requires_grad_(x_grad), w, b, options))

    def forward(self) -> Tensor:
        return sum(torch.ops.aten.convolution(x, w, b, *options).float().mean() for x, w, b, options in self.convs)


def time_against_convs(title: str, model: nn.Module, run, args, device, amp: bool, repeats: int) -> None:
    """Side by side: 0.1.0 eager, eager, compiled (`run(model, *args)` -> output), and the model's
    convolutions alone."""
    old, compiled = as_010(model), torch.compile(model, fullgraph=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        convs = ConvsAlone(record_convs(lambda *a: run(model, *a), args), device)
    candidates = {"0.1.0 eager": (lambda *a: run(old, *a), args), "eager": (lambda *a: run(model, *a), args),
                  "compiled": (lambda *a: run(compiled, *a), args), "convs alone": (convs, ())}
    with torch.no_grad():
        ref = run(model, *args)
        err = max((run(m, *args) - ref).abs().max().item() for m in (old, compiled))
    times = time_side_by_side(candidates, amp, device, repeats)
    base = statistics.median(times["convs alone"])
    print(f"\n{title}: {len(convs.convs)} convolutions, max |difference| to eager {err:.1e}")
    print(f"  {'':12} {'ms/iter':>9} {'/ convs':>8} {'spread':>7}")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:12} {t * 1e3:9.1f} {t / base:8.2f} {statistics.pstdev(values) / t:7.0%}")


# --- ported cells against the projects' own (--ports) ------------------------------------------------------

def same_conv(cin: int, cout: int, kernel) -> nn.Conv2d:
    """A zero-padded 'same' convolution, as the projects write theirs."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Conv2d(cin, cout, (kh, kw), padding=(kh // 2, kw // 2))


class RaftGRU(nn.Module):
    """RAFT's GRU update (Teed & Deng 2020): z, r, q convolutions over [h, x] (q's over [r h, x]),
    h' = (1 - z) h + z q, context terms added to the pre-activations as DROID-SLAM does."""

    def __init__(self, hidden: int, inputs: int, kernel):
        super().__init__()
        self.convz, self.convr, self.convq = (same_conv(hidden + inputs, hidden, kernel) for _ in "zrq")

    def forward(self, h: Tensor, x: Tensor, cz=0, cr=0, cq=0) -> Tensor:
        hx = torch.cat([h, x], 1)
        z = torch.sigmoid(self.convz(hx) + cz)
        r = torch.sigmoid(self.convr(hx) + cr)
        q = torch.tanh(self.convq(torch.cat([r * h, x], 1)) + cq)
        return (1 - z) * h + z * q

    def ported(self) -> ConvGRUCell:
        return ConvGRUCell.from_concat(order="hx", z_keeps="candidate", conv_r=self.convr, conv_z=self.convz,
                                       conv_n=self.convq)


class RaftSepGRU(nn.Module):
    """RAFT's default update (SepConvGRU): a (1, 5) GRU update, then a (5, 1) one."""

    def __init__(self, hidden: int, inputs: int):
        super().__init__()
        self.halves = nn.ModuleList(RaftGRU(hidden, inputs, k) for k in ((1, 5), (5, 1)))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        for half in self.halves:
            h = half(h, x)
        return h

    def ported(self) -> nn.Module:
        return Chain([half.ported() for half in self.halves])


class Chain(nn.Module):
    """Cells applied in turn to the state, each with the same input."""

    def __init__(self, cells: list[ConvGRUCell]):
        super().__init__()
        self.cells = nn.ModuleList(cells)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        for cell in self.cells:
            h = cell(x, h)
        return h


class DroidGRU(RaftGRU):
    """DROID-SLAM's GRU (Teed & Deng 2021): RAFT's, plus a global term pooled from the state,
    mean(σ(w h) h), through 1x1 convolutions into each pre-activation."""

    def __init__(self, hidden: int, inputs: int):
        super().__init__(hidden, inputs, 3)
        self.w, self.convz_glo, self.convr_glo, self.convq_glo = (same_conv(hidden, hidden, 1) for _ in range(4))

    def pooled(self, h: Tensor) -> Tensor:
        return (torch.sigmoid(self.w(h)) * h).mean((2, 3), keepdim=True)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        g = self.pooled(h)
        return super().forward(h, x, self.convz_glo(g), self.convr_glo(g), self.convq_glo(g))

    def ported(self) -> nn.Module:
        return DroidPorted(self, super().ported())


class DroidPorted(nn.Module):
    """DROID-SLAM's step with ConvGRUCell: the pooled term as the cell's (B, 3C, 1, 1) context."""

    def __init__(self, droid: DroidGRU, cell: ConvGRUCell):
        super().__init__()
        self.droid, self.cell = droid, cell  # the droid's pooling and 1x1 convolutions, shared

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        d = self.droid
        g = d.pooled(h)
        return self.cell(x, h, context=gate_context(d.convr_glo(g), d.convz_glo(g), d.convq_glo(g),
                                                    z_keeps="candidate"))


class MVSNetGRU(nn.Module):
    """The GRU cell of the PyTorch MVSNet ports (R-MVSNet's recurrent regularisation, Yao et al. 2019):
    one gates convolution over [x, h] (reset, update stacked), a GroupNorm on each gate and on the
    output, h' = u h + (1 - u) y."""

    def __init__(self, hidden: int, inputs: int, eps: float = 1e-6):
        super().__init__()
        self.gate_conv, self.output_conv = same_conv(inputs + hidden, 2 * hidden, 3), same_conv(inputs + hidden,
                                                                                              hidden, 3)
        self.reset_norm, self.update_norm, self.output_norm = (nn.GroupNorm(1, hidden, eps) for _ in range(3))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        r, u = self.gate_conv(torch.cat([x, h], 1)).chunk(2, 1)
        r, u = torch.sigmoid(self.reset_norm(r)), torch.sigmoid(self.update_norm(u))
        y = torch.tanh(self.output_norm(self.output_conv(torch.cat([x, r * h], 1))))
        return u * h + (1 - u) * y

    def ported(self) -> ConvGRUCell:
        return ConvGRUCell.from_concat(order="xh", z_keeps="h", conv_gates=self.gate_conv, gate_order="rz",
                                       conv_n=self.output_conv, norm_r=self.reset_norm, norm_z=self.update_norm,
                                       norm_n=self.output_norm)


# name: (what is timed, the project's cell, batch, input channels, hidden channels, H, W)
PORTS = {
    "raft": ("RAFT (SepConvGRU), 1/8 of 440x1024", RaftSepGRU, 1, 256, 128, 55, 128),
    "r-mvsnet": ("R-MVSNet (first GRU), 1/4 of 640x512", MVSNetGRU, 1, 32, 16, 128, 160),
    "droid-slam": ("DROID-SLAM (one edge), 1/8 of 384x512", DroidGRU, 1, 320, 128, 48, 64),
}


def interleaved(candidates: dict, args: tuple, backward: bool, repeats: int, device) -> dict[str, list[float]]:
    """Seconds of one call of each candidate (forward, or forward+backward), A B B A ... after a warm-up."""
    def once(fn):
        if backward:
            forward_backward(fn, args, False, device)
        else:
            with torch.no_grad():
                fn(*args)

    times = {name: [] for name in candidates}
    for fn in candidates.values():
        once(fn)
    for i in range(repeats):
        for name, fn in list(candidates.items())[:: 1 if i % 2 == 0 else -1]:
            sync(device)
            start = time.perf_counter()
            once(fn)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def time_ports(device, repeats: int, names) -> None:
    """The substituted cells of the projects `names` (PORTS' keys) against the projects' own: median
    ratio (ours / theirs) of the paired rounds, with the lowest and highest ratio, and the projects'
    median time; x and h require grad, as in training (x comes from the project's encoders). Then
    the FLOPs of a forward+backward and the bytes autograd saves for the backward, both cells."""
    print(f"one step, ConvGRUCell substituted / the project's own cell, median of {repeats} interleaved pairs "
          "[lowest, highest], the project's time")
    print(f"  {'project':40} {'layout':14} {'forward':>24} {'fwd+bwd':>24}")
    costs = []
    for name, cls, batch, inputs, hidden, height, width in (PORTS[n] for n in names):
        torch.manual_seed(0)
        theirs = cls(hidden, inputs).to(device)
        ours = theirs.ported()
        for layout in (torch.contiguous_format, torch.channels_last):
            theirs, ours = (m.to(memory_format=layout) for m in (theirs, ours))
            x, h = (torch.randn(batch, c, height, width, device=device).to(memory_format=layout).requires_grad_()
                    for c in (inputs, hidden))
            with torch.no_grad():
                err = (ours(x, h) - theirs(x, h)).abs().max().item()
            assert err < 1e-4, f"{name}: the ported cell differs by {err:.1e}"
            cells = []
            for backward in (False, True):
                times = interleaved({"ours": ours, "theirs": theirs}, (x, h), backward, repeats, device)
                ratios = sorted(a / b for a, b in zip(times["ours"], times["theirs"]))
                cells.append(f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}, {ratios[-1]:.2f}] "
                             f"{statistics.median(times['theirs']) * 1e3:5.0f} ms")
            print(f"  {name:40} {'channels_last' if layout == torch.channels_last else 'NCHW':14} "
                  f"{cells[0]:>24} {cells[1]:>24}")
        costs.append((name, *(flops_and_saved_bytes(m, (x, h), False, device) for m in (ours, theirs))))
    print(f"  {'project':40} {'GFLOP fwd+bwd, ours / theirs':>30} {'saved MiB, ours / theirs':>26}")
    for name, (f_ours, m_ours), (f_theirs, m_theirs) in costs:
        print(f"  {name:40} {f_ours / 1e9:14.1f} / {f_theirs / 1e9:<13.1f} {m_ours / 2**20:12.1f} / "
              f"{m_theirs / 2**20:<11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", action="store_true", help="aten ops per step, 0.1.0 against now")
    parser.add_argument("--kernels", action="store_true", help="kernels of the compiled step")
    parser.add_argument("--time", action="store_true", help="fwd+bwd time against the convolutions alone")
    parser.add_argument("--ports", nargs="*", choices=list(PORTS), metavar="PROJECT",
                        help="cells ported into RAFT, R-MVSNet, DROID-SLAM against their own, at their shapes "
                        f"(all, or some of {', '.join(PORTS)})")
    parser.add_argument("--resets", nargs="+", default=["after", "before"], help="cells for --kernels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10, help="frames in (and out, for the forecaster)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(describe_device(device), *([f"batch {args.batch}, {args.size}x{args.size}, amp {args.amp}"] if args.time
                                     else []))
    if args.ops:
        print_ops()
    if args.kernels:
        print_kernels(args.device, args.resets)
    if args.ports is not None:
        time_ports(device, args.repeats, args.ports or list(PORTS))
    if args.time:
        torch.manual_seed(0)
        b, t, s = args.batch, args.frames, args.size
        rnn = ConvGRU(64, 64, kernel_size=5, norm="group", num_groups=4).to(device)
        time_against_convs(f"ConvGRU(64, 64, kernel_size=5, norm='group'), {t} frames", rnn,
                           lambda m, x: m(x)[0], (torch.rand(t, b, 64, s, s, device=device),),
                           device, args.amp, args.repeats)
        net = EncoderForecaster(hidden_sizes=(64, 96, 96)).to(device)
        time_against_convs(f"EncoderForecaster(64, 96, 96), {t} in -> {t} out", net,
                           lambda m, x: m(x, t), (torch.rand(b, t, 1, s, s, device=device),),
                           device, args.amp, args.repeats)


if __name__ == "__main__":
    main()
