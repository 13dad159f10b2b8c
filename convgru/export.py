"""ONNX export of an EncoderForecaster, checked with onnxruntime (a trained checkpoint's:
`convgru.deploy.export.export_module`, or scripts/export.py).

The file takes ``x`` (B, frames_in, C_in, H, W) float32 and returns ``y`` (B, future, C_out, H, W),
with B and H, W free (H and W multiples of 2**(levels - 1)); frames_in and future are fixed, as the
recurrence is unrolled. Needs onnx, onnxscript and onnxruntime: ``pip install 'convgru[export]'``.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim

from convgru._checks import OptionError

from .atomic import atomic_write
from .forecaster import EncoderForecaster

INSTALL = "pip install 'convgru[export]'"
TOLERANCE = 1e-4


class Forecast(nn.Module):
    """The exported graph: x (B, T_in, C_in, H, W) -> net(x, future), clamped to [0, 1] if clamp."""

    def __init__(self, net: EncoderForecaster, future: int, clamp: bool):
        super().__init__()
        self.net, self.future, self.clamp = net, future, clamp

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x, self.future)
        return y.clamp(0, 1) if self.clamp else y


def export_onnx(net: EncoderForecaster, path, frames_in: int, future: int, height: int | None = None,
                width: int | None = None, opset: int | None = None, check: bool = True,
                clamp: bool = False) -> float | None:
    """Write `net` to the ONNX file `path`: x (B, frames_in, C_in, H, W) -> y (B, future, C_out, H, W),
    ``net(x, future)``, clamped to [0, 1] with `clamp` (as a trained model's predictions).

    A float32 copy is traced in eval mode at batch 2 and `height` x `width` (default 16 * factor,
    with factor = 2**(levels - 1); each a multiple of factor, at least 2 * factor); the file takes
    any batch and any H, W that are multiples of factor, and holds the weights. With `check`,
    onnxruntime and PyTorch run a new random input of another batch and size: returns their max
    abs difference (None without check), or raises RuntimeError above 1e-4 and leaves `path` as it
    was. The file is written atomically (`convgru.atomic.atomic_write`). Raises ValueError for
    arguments out of range, TypeError for a `net` that is not an EncoderForecaster, ImportError
    naming the extra when onnx, onnxscript or onnxruntime is missing.
    """
    for name in ("onnx", "onnxscript", *(["onnxruntime"] if check else [])):
        _require(name)
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    graph = _graph(net, future, clamp)
    frames_in = _check_int("frames_in", frames_in)
    factor = 2 ** (len(graph.net.hidden_sizes) - 1)
    height, width = (_check_size(name, value, factor, len(graph.net.hidden_sizes))
                     for name, value in (("height", height), ("width", width)))
    x = torch.rand(2, frames_in, graph.net.in_channels, height, width)
    size = {"h": Dim("h"), "w": Dim("w")} if factor == 1 else {"h": factor * Dim("h"), "w": factor * Dim("w")}
    program = torch.onnx.export(graph, (x,), dynamo=True, opset_version=opset, input_names=["x"],
                                output_names=["y"], verbose=False,
                                dynamic_shapes={"x": {0: Dim("batch"), 3: size["h"], 4: size["w"]}})
    with atomic_write(path, "ONNX file") as tmp:
        program.save(tmp, external_data=False)
        diff = check_onnx(tmp, graph, torch.rand(3, frames_in, x.shape[2], height + factor, width + 2 * factor,
                                                 generator=torch.Generator().manual_seed(0))) if check else None
    return diff


def check_onnx(path, model: nn.Module, x: Tensor, tolerance: float = TOLERANCE) -> float:
    """Max abs difference between onnxruntime on the file `path` and ``model(x)`` (x: its input
    "x"); raise RuntimeError if above `tolerance`."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model(x)
    if got.shape != tuple(want.shape):
        raise RuntimeError(f"onnxruntime gives shape {got.shape}, PyTorch {tuple(want.shape)} "
                           f"for an input {tuple(x.shape)}")
    diff = float((torch.from_numpy(got) - want).abs().max())
    if not diff <= tolerance:
        raise RuntimeError(f"onnxruntime and PyTorch differ by {diff:.3g} (> {tolerance:g}) "
                           f"on an input {tuple(x.shape)}")
    return diff


def _graph(net, future, clamp: bool) -> Forecast:
    """A float32 eval-mode copy of the network to export, wrapped as Forecast."""
    if not isinstance(net, EncoderForecaster):
        raise TypeError(f"net: expected an EncoderForecaster, found {type(net).__name__} (a trained checkpoint: "
                        "convgru.deploy.export.export_module, or scripts/export.py)")
    future = _check_int("future", future)
    return Forecast(copy.deepcopy(net).to("cpu", torch.float32), future, clamp).eval()


def _check_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(name, f"expected an int >= 1, found {value!r}")
    return value


def _check_size(name: str, value, factor: int, levels: int) -> int:
    """The traced height or width: a multiple of factor, at least 2 * factor (16 * factor if None)."""
    if value is None:
        return 16 * factor
    if not isinstance(value, int) or isinstance(value, bool) or value < 2 * factor or value % factor:
        raise OptionError(name, f"expected a multiple of {factor} (the network has {levels} levels) that is at "
                         f"least {2 * factor}, found {value!r}")
    return value


def _require(name: str):
    """Import and return the package `name`; ImportError naming the extra to install if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"ONNX export needs the {name} package: {INSTALL}") from error
