"""The lean step: about half the aten ops of 0.1.0 in eager, the gate math in one kernel when compiled."""

import importlib.util

import pytest
import torch

from conftest import ROOT
from convgru import ConvGRUCell

spec = importlib.util.spec_from_file_location("benchmark_step", ROOT / "scripts" / "benchmark_step.py")
benchmark_step = importlib.util.module_from_spec(spec)
with pytest.MonkeyPatch.context() as patch:  # the script imports its sibling benchmark.py
    patch.syspath_prepend(str(ROOT / "scripts"))
    spec.loader.exec_module(benchmark_step)


def test_reference_is_0_1_0():
    """The 0.1.0 step of the benchmark computes what the cell computes, with about 0.1.0's 25 forward ops
    (a bound: the count moves with torch releases)."""
    torch.manual_seed(0)
    cell = ConvGRUCell(4, 8, norm="group", num_groups=2)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    gx, h = benchmark_step.step_inputs(cell, size=6)
    torch.testing.assert_close(benchmark_step.Cell010(cell).step(gx, h), cell.step(gx, h))
    forward, _ = benchmark_step.count_step_ops(benchmark_step.Cell010(cell).step, gx, h)
    assert 20 <= sum(forward.values()) <= 30, forward


@pytest.mark.parametrize("name", list(benchmark_step.PORTS))
def test_ported_benchmark_cells_compute_the_projects_cells(name):
    """--ports times each project's own cell against its port: the same function (tiny sizes here; the
    script checks again at the projects' shapes), channels_last kept."""
    _, cls, *_ = benchmark_step.PORTS[name]
    torch.manual_seed(0)
    theirs = cls(4, 3).double()
    ours = theirs.ported()
    x, h = torch.randn(2, 3, 6, 5, dtype=torch.float64), torch.randn(2, 4, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x, h), theirs(x, h), rtol=0, atol=1e-12)
    last = torch.channels_last
    out = ours.to(memory_format=last)(x.to(memory_format=last), h.to(memory_format=last))
    assert out.is_contiguous(memory_format=last)


def test_eager_step_has_about_half_the_ops_of_0_1_0():
    """Bounds, not exact counts (those move with torch releases): fewer forward ops than 0.1.0 and no more
    backward ops for every option, and with GroupNorm at most 60% of 0.1.0's forward ops (12 of 25 before
    double backward was supported; its saved pre-activations add 2 detaches per direction, no kernel)."""
    rows = {(r["norm"], r["reset"], r["version"]): r for r in benchmark_step.ops_table(channels=8)}
    for norm in (None, "group"):
        for reset in ("after", "before"):
            old, new = rows[norm, reset, "0.1.0"], rows[norm, reset, "now"]
            assert new["forward"] < old["forward"] and new["backward"] <= old["backward"], (norm, reset, old, new)
    old, new = rows["group", "after", "0.1.0"], rows["group", "after", "now"]
    assert new["forward"] <= 0.6 * old["forward"]
    norms = new["forward_ops"].get("native_group_norm", 0), old["forward_ops"].get("native_group_norm", 0)
    assert norms[0] < norms[1] or norms[1] == 0, norms  # r and z share one (2 of 0.1.0's 3; torch may decompose)


@pytest.mark.slow
@pytest.mark.parametrize("norm", [None, "group"])
def test_compiled_gate_math_is_one_kernel(norm):
    """The gate math (sigmoids, tanh, the update) fused: one kernel with inductor today, asserted as a bound
    (at most 2) so that the next torch release's fusion choices do not break it; a kernel per gate does."""
    kernels = benchmark_step.compiled_kernels(ConvGRUCell(8, 8, norm=norm, num_groups=2), "cpu")
    assert 1 <= len(benchmark_step.gate_kernels(kernels)) <= 2, kernels


@pytest.mark.slow
@pytest.mark.gpu
def test_compiled_gate_math_is_one_triton_kernel_without_group_norm():
    """On CUDA without GroupNorm the gate math is one Triton kernel (with it, Triton needs the group
    statistics first: docs/benchmarks.md); a bound, as on the CPU."""
    kernels = benchmark_step.compiled_kernels(ConvGRUCell(8, 8), "cuda")
    assert 1 <= len(benchmark_step.gate_kernels(kernels)) <= 2, kernels
