"""scripts/export.py and scripts/predict.py on a tiny untrained checkpoint: outputs, defaults, one-line errors."""

import importlib.util
import pickle

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from conftest import ROOT, tiny_checkpoint
from convgru.deploy.forecast import forecast, trained_on
from convgru.training import ForecastModule, load_module


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


export_script, predict_script = load_script("export"), load_script("predict")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny checkpoint without a data config."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


@pytest.fixture(scope="module")
def ckpt_with_data(tmp_path_factory):
    """The same checkpoint recording data with frames_in 3 and image_size 8."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_data.ckpt", {"frames_in": 3, "image_size": 8})


def fails(script, argv, capsys) -> str:
    """Run a script's main(argv), expect a usage error; return its one error line."""
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(a) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_checkpoint_loads(ckpt):
    assert isinstance(load_module(ckpt), ForecastModule)


@pytest.mark.slow
def test_export_script_defaults_from_the_data_config(exported_model):
    ckpt, out, printed = exported_model  # `convgru export CKPT model.onnx`, as scripts/export.py runs it
    assert "x (B, 3, 1, H, W) -> y (B, 2, 1, H, W), H and W multiples of 2" in printed
    assert "max abs difference" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 1, 12, 6)  # traced at batch 2 and 8x8, checked by the command at batch 3 and 10x12
    (y,) = session.run(None, {"x": x.numpy()})
    module = load_module(ckpt).eval()
    with torch.no_grad():
        raw = module.net(x, 2)
    assert raw.max() > 1 and y.max() <= 1, "a ForecastModule export clamps to [0, 1]"
    np.testing.assert_allclose(y, raw.clamp(0, 1).numpy(), atol=1e-5)


@pytest.mark.parametrize("argv, error", [
    (["{tmp}/none.ckpt", "{tmp}/m.onnx", "--frames-in", 3], "CKPT {tmp}/none.ckpt: file not found"),
    (["{tmp}/bad.ckpt", "{tmp}/m.onnx", "--frames-in", 3],
     "cannot read checkpoint {tmp}/bad.ckpt: it is not a PyTorch checkpoint"),
    (["{ckpt}", "{tmp}/missing/m.onnx"], "OUT {tmp}/missing/m.onnx: the folder {tmp}/missing does not exist"),
    (["{ckpt}", "{tmp}/old.onnx"], "OUT {tmp}/old.onnx exists; pass --force to replace it"),
    (["{ckpt}", "{tmp}/m.onnx", "--future", 0], "argument --future: expected an integer >= 1, found '0'"),
    (["{ckpt}", "{tmp}/m.onnx", "--frames-in", 0], "argument --frames-in: expected an integer >= 1, found '0'"),
    (["{ckpt}", "{tmp}/m.onnx", "--frames-in", 3], "stores no data config (frames_in, image_size; convgru 0.1.0 "
                                                   "checkpoints have none): pass --height --width"),
    (["{ckpt}", "{tmp}/m.onnx", "--frames-in", 3, "--height", 8, "--width", 9],
     "width: expected a multiple of 2 (the network has 2 levels) that is at least 4, found 9"),
])
def test_export_script_errors(ckpt, tmp_path, capsys, argv, error):
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "old.onnx").write_bytes(b"keep me")
    line = fails(export_script, [str(a).format(tmp=tmp_path, ckpt=ckpt) for a in argv], capsys)
    assert ": error: " in line and error.format(tmp=tmp_path) in line
    assert (tmp_path / "old.onnx").read_bytes() == b"keep me" and not (tmp_path / "m.onnx").exists()


def test_predict_script_future_and_gif(ckpt, tmp_path, capsys):
    frames = np.random.default_rng(0).integers(0, 255, (5, 3, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "in.npy", frames)
    (tmp_path / "out.npy").write_bytes(b"old")
    predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--future", "3",
                         "--gif", str(tmp_path / "out.gif"), "--force"])
    assert "warning" not in capsys.readouterr().err  # no data config: no training size to compare with
    pred = np.load(tmp_path / "out.npy")
    assert pred.shape == (5, 3, 1, 8, 8) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, forecast(load_module(ckpt), frames, future=3), atol=1e-6)
    with Image.open(tmp_path / "out.gif") as gif:
        assert gif.n_frames == 3 + 3 and gif.info["loop"] == 0
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("L"))
    # bottom row of the last frame: the 4th sequence's last input | its 3rd forecast frame (scale 4)
    row = last[-4 * 8 - 4: -4]
    expected = [np.round(x[0] * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
                for x in (frames[3, -1] / 255, pred[3, -1])]
    np.testing.assert_array_equal(row[:, 4: 4 + 32], expected[0])
    np.testing.assert_array_equal(row[:, 4 + 36: 4 + 68], expected[1])


def test_predict_script_warns_about_another_size(ckpt_with_data, tmp_path, capsys):
    ckpt = ckpt_with_data
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((3, 1, 12, 12), dtype=np.float32))
    predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")])
    err = capsys.readouterr().err
    assert f"warning: {ckpt} was trained on 8x8 frames, {tmp_path}/in.npy holds 12x12 frames" in err
    assert np.load(tmp_path / "out.npy").shape == (2, 1, 12, 12)


def test_predict_script_warns_about_another_number_of_input_frames(ckpt_with_data, tmp_path, capsys):
    ckpt = ckpt_with_data
    frames_in, (height, width) = trained_on(load_module(ckpt))
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((frames_in + 2, 1, height, width), dtype=np.float32))
    predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")])
    err = capsys.readouterr().err
    assert (f"warning: {ckpt} was trained on {frames_in} input frames, {tmp_path}/in.npy holds {frames_in + 2} per "
            "sequence") in err and "trained on 8x8" not in err
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((frames_in, 1, height, width), dtype=np.float32))
    predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out2.npy")])
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, error", [
    (["{tmp}/none.npy", "{tmp}/o.npy"], "INPUT {tmp}/none.npy: file not found"),
    (["{tmp}/rgb.npy", "{tmp}/o.npy"], "INPUT {tmp}/rgb.npy: the model takes 1 channel(s) per frame, the input has 3"),
    (["{tmp}/odd.npy", "{tmp}/o.npy"], "INPUT {tmp}/odd.npy: H and W must be divisible by 2 for 2 levels, got H=9"),
    (["{tmp}/pickled.npy", "{tmp}/o.npy"], "INPUT {tmp}/pickled.npy: not a NumPy array file"),
    (["{tmp}/in.npy", "{tmp}/missing/o.npy"], "OUTPUT {tmp}/missing/o.npy: the folder {tmp}/missing does not"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--png", "{tmp}/missing/o.png"], "--png {tmp}/missing/o.png: the folder"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--gif", "{tmp}/missing/o.gif"], "--gif {tmp}/missing/o.gif: the folder"),
    (["{tmp}/in.npy", "{tmp}/old.npy"], "OUTPUT {tmp}/old.npy exists; pass --force to replace it"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--gif", "{tmp}/old.npy"], "--gif {tmp}/old.npy exists; pass --force"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--future", "0"], "argument --future: expected an integer >= 1, found '0'"),
])
def test_predict_script_errors(ckpt, tmp_path, capsys, argv, error):
    for name, shape in (("in", (2, 1, 8, 8)), ("rgb", (2, 3, 8, 8)), ("odd", (2, 1, 9, 8))):
        np.save(tmp_path / f"{name}.npy", np.zeros(shape, np.float32))
    (tmp_path / "old.npy").write_bytes(b"keep me")
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps({"frames": [1, 2]}))
    line = fails(predict_script, [ckpt, *(a.format(tmp=tmp_path) for a in argv)], capsys)
    assert ": error: " in line and error.format(tmp=tmp_path) in line
    assert (tmp_path / "old.npy").read_bytes() == b"keep me" and not (tmp_path / "o.npy").exists()
