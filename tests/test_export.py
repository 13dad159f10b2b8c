"""torch.export of the cell and ConvGRU; ONNX export of the encoder-forecaster, checked with onnxruntime."""

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.export import Dim

from conftest import ROOT
from convgru import ConvGRU, ConvGRUCell, EncoderForecaster, export_onnx
from convgru.export import Forecast, check_onnx


# every pair of (reset, norm, input_size) values once: 4 exports instead of 8
@pytest.mark.parametrize("reset, norm, input_size", [("after", None, 3), ("before", "group", 3), ("after", "group", 0),
                                                     ("before", None, 0)])
def test_torch_export_cell_matches_eager(reset, norm, input_size):
    torch.manual_seed(0)
    cell = ConvGRUCell(input_size, 4, norm=norm, num_groups=2, reset=reset)
    dims = {0: Dim("batch"), 2: Dim("h"), 3: Dim("w")}
    x = torch.randn(2, input_size, 6, 7) if input_size else None
    program = torch.export.export(cell, (x, torch.randn(2, 4, 6, 7)),
                                  dynamic_shapes=(dims if input_size else None, dims))
    x, h = (torch.randn(3, input_size, 5, 9) if input_size else None), torch.randn(3, 4, 5, 9)
    torch.testing.assert_close(program.module()(x, h), cell(x, h), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_torch_export_convgru_matches_eager():
    torch.manual_seed(0)
    rnn = ConvGRU(2, 4, num_layers=2, batch_first=True, bidirectional=True, norm="group", num_groups=2)
    program = torch.export.export(rnn, (torch.randn(2, 2, 2, 6, 6),),  # 2 steps: both directions, both layers
                                  dynamic_shapes=({0: Dim("batch"), 3: Dim("h"), 4: Dim("w")},))
    x = torch.randn(3, 2, 2, 5, 8)
    (output, h_n), (want, want_h) = program.module()(x), rnn(x)
    assert output.shape == (3, 2, 8, 5, 8) and h_n.shape == (4, 3, 4, 5, 8)
    torch.testing.assert_close(output, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h_n, want_h, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def raw_onnx(tmp_path_factory):
    """A 1-level network (no downsampling: any H, W) with outputs above 1, exported raw (frames_in=3, future=2,
    traced at 8x8). 2 levels (H, W multiples of 2) and the clamp: test_scripts.py's export of a checkpoint;
    1 level here traces in half the time (no floor divisions of symbolic sizes)."""
    torch.manual_seed(0)
    net = EncoderForecaster(1, 1, hidden_sizes=[4], kernel_size=3, stem_channels=4)
    with torch.no_grad():
        net.head[-1].bias.fill_(1.0)
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    return path, net, export_onnx(net, path, frames_in=3, future=2, height=8, width=8)


@pytest.mark.slow
def test_onnx_takes_any_batch_and_size(raw_onnx):
    path, net, diff = raw_onnx
    assert 0 <= diff <= 1e-4 and not path.with_name("net.onnx.tmp").exists()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (x_info,), (y_info,) = session.get_inputs(), session.get_outputs()
    assert x_info.name == "x" and x_info.shape[1:3] == [3, 1] and all(isinstance(d, str) for d in x_info.shape[::3])
    assert y_info.name == "y" and y_info.shape[1:3] == [2, 1]
    net.eval()
    for shape in [(1, 3, 1, 5, 12), (5, 3, 1, 20, 7)]:
        x = torch.rand(shape)
        (y,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            want = net(x, 2).numpy()
        assert y.shape == (shape[0], 2, 1, *shape[3:])
        np.testing.assert_allclose(y, want, atol=1e-5)
        assert y.max() > 1, "a raw EncoderForecaster export must not clamp"


@pytest.mark.slow
def test_check_onnx_rejects_other_weights(raw_onnx):
    path, net, _ = raw_onnx
    other = Forecast(EncoderForecaster(1, 1, hidden_sizes=[4], kernel_size=3, stem_channels=4), 2, False).eval()
    with pytest.raises(RuntimeError, match="onnxruntime and PyTorch differ by"):
        check_onnx(path, other, torch.rand(2, 3, 1, 8, 8))


@pytest.mark.parametrize("kwargs, error", [
    (dict(frames_in=0), "frames_in: expected an int >= 1, found 0"),
    (dict(future=0), "future: expected an int >= 1, found 0"),
    (dict(future=None), "future: expected an int >= 1, found None"),
    (dict(height=6), r"height: expected a multiple of 4 \(the network has 3 levels\) that is at least 8, found 6"),
    (dict(width=4), "width: expected a multiple of 4 .* at least 8, found 4"),
])
def test_export_onnx_rejects_bad_arguments(tmp_path, kwargs, error):
    net = EncoderForecaster(1, 1, hidden_sizes=[2, 2, 2], kernel_size=3, stem_channels=2)
    with pytest.raises(ValueError, match=error):
        export_onnx(net, tmp_path / "net.onnx", **{"frames_in": 2, "future": 1, **kwargs})
    with pytest.raises(TypeError, match="net: expected an EncoderForecaster, found ConvGRU"):
        export_onnx(ConvGRU(1, 2), tmp_path / "net.onnx", 2, 1)
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        export_onnx(net, tmp_path / "missing" / "net.onnx", 2, 1)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    net = EncoderForecaster(1, 1, hidden_sizes=[2], kernel_size=3, stem_channels=2)
    with pytest.raises(ImportError, match=r"onnxruntime package: pip install 'convgru\[export\]'"):
        export_onnx(net, tmp_path / "net.onnx", 2, 1)


def test_import_convgru_does_not_import_onnx():
    code = ("import sys, convgru; loaded = [m for m in ('onnx', 'onnxscript', 'onnxruntime', 'convgru.export') "
            "if m in sys.modules]; assert not loaded, loaded; print(convgru.export_onnx.__module__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "convgru.export"
