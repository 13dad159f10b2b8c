"""scripts/predict.py refuses inputs it would misread and outputs that would destroy an input: one
`error:` line, exit status 2, the input byte-identical, no output written; the forecast is written
atomically and never holds NaN; on a trained checkpoint it writes forecasts in [0, 1]."""

import errno
import hashlib
import importlib.util
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch

from conftest import ROOT
from convgru.deploy.forecast import forecast
from convgru.training import ForecastModule, load_module

spec = importlib.util.spec_from_file_location("predict_script", ROOT / "scripts" / "predict.py")
predict_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(predict_script)


def tiny_checkpoint(path, scale: float = 1.0, data=None):
    """An untrained 1-level ForecastModule (future=2); weights times `scale` (1e37: finite weights whose
    forecast is NaN)."""
    torch.manual_seed(0)
    module = ForecastModule(net=dict(hidden_sizes=[4], kernel_size=3, stem_channels=4), future=2, data=data)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(scale)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": "2.6.6", "epoch": 0, "global_step": 0}, path)
    return path


def frames(dtype=np.float32, scale=1.0):
    return (np.random.default_rng(0).random((2, 3, 1, 8, 8)) * scale).astype(dtype)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def run_script(args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "scripts/predict.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def refused(args, folder) -> str:
    """Run predict.py; check it exits with status 2 and one `error:` line, and that no file in `folder`
    changed and none was added; return the message."""
    before = {p: sha(p) for p in folder.iterdir() if p.is_file()}
    result = run_script(args)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error: " in line]
    assert len(lines) == 1, result.stderr
    assert {p: sha(p) for p in folder.iterdir() if p.is_file()} == before, "a file changed or was written"
    return lines[0].split("error: ", 1)[1]


@pytest.mark.slow
@pytest.mark.parametrize("name, data, expected", [
    ("int16", frames(np.int16, 1000), "INPUT {in}: int16 values need --value-range LOW HIGH, the values that map "
                                      "to 0 and 1 (as training's data.value_range)"),
    ("dbz", frames(np.float32, 70), "INPUT {in}: float values in [{low:g}, {high:g}], outside [0, 1]: pass "
                                    "--value-range LOW HIGH"),
])
def test_values_it_would_misread_are_refused(ckpt, tmp_path, name, data, expected):
    np.save(tmp_path / "in.npy", data)
    message = refused([ckpt, tmp_path / "in.npy", tmp_path / "out.npy"], tmp_path)
    expected = expected.format(**{"in": tmp_path / "in.npy"}, low=data.min(), high=data.max())
    assert message.startswith(expected), message


@pytest.mark.slow
def test_output_linked_to_the_input_is_refused(ckpt, tmp_path):
    """--force over INPUT itself, through a symbolic link: the memory-mapped input would be read as written."""
    np.save(tmp_path / "in.npy", frames())
    (tmp_path / "out.npy").symlink_to(tmp_path / "in.npy")
    message = refused([ckpt, tmp_path / "in.npy", tmp_path / "out.npy", "--force", "--png", tmp_path / "p.png"],
                      tmp_path)
    assert message == (f"OUTPUT {tmp_path}/out.npy is the same file as INPUT {tmp_path}/in.npy: writing it would "
                       "destroy the input frames (read as it is written); choose another OUTPUT file")


@pytest.mark.slow
def test_nan_forecast_is_never_written(tmp_path):
    """Finite weights whose forecast is NaN: an error naming the checkpoint and the input; OUTPUT kept."""
    ckpt = tiny_checkpoint(tmp_path / "huge.ckpt", scale=1e37)
    np.save(tmp_path / "in.npy", frames())
    (tmp_path / "out.npy").write_bytes(b"the previous forecast")
    message = refused([ckpt, tmp_path / "in.npy", tmp_path / "out.npy", "--force"], tmp_path)
    assert message.startswith(f"the forecast of CKPT {ckpt} for INPUT {tmp_path}/in.npy holds 256 NaN or inf values "
                              "(of 256); nothing was written")


@pytest.mark.parametrize("argv, error", [
    (["{tmp}/in.npy", "{tmp}/in.npy", "--force"], "OUTPUT {tmp}/in.npy is the same file as INPUT {tmp}/in.npy"),
    (["{tmp}/in.npy", "{tmp}/hard.npy", "--force"], "OUTPUT {tmp}/hard.npy is the same file as INPUT {tmp}/in.npy"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--png", "{tmp}/in.npy", "--force"],
     "--png {tmp}/in.npy is the same file as INPUT {tmp}/in.npy"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--gif", "{tmp}/o.npy"],
     "--gif {tmp}/o.npy is the same file as OUTPUT {tmp}/o.npy"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--png", "{tmp}/p.png", "--gif", "{tmp}/link.png"],
     "--gif {tmp}/link.png is the same file as --png {tmp}/p.png"),
    (["{tmp}/in.npy", "{ckpt}", "--force"], "OUTPUT {ckpt} is the same file as CKPT {ckpt}: writing it would destroy "
                                            "the checkpoint"),
    (["{tmp}/nan.npy", "{tmp}/o.npy"], "INPUT {tmp}/nan.npy: holds 1 NaN or inf value; expected finite frames"),
    (["{tmp}/u16.npy", "{tmp}/o.npy"], "INPUT {tmp}/u16.npy: uint16 values need --value-range LOW HIGH (the "
                                       "checkpoint was trained with data.value_range [0, 70]), the values that map "
                                       "to 0 and 1 (as training's data.value_range); only uint8"),
    (["{tmp}/in.npy", "{tmp}/o.npy", "--value-range", "70", "0"],
     "--value-range LOW HIGH: expected [low, high] with high > low (the physical values that map to 0 and 1), "
     "found [70.0, 0.0]"),
    (["{tmp}/loop.npy", "{tmp}/o.npy"], "INPUT {tmp}/loop.npy: a symbolic link loop"),
    (["{tmp}/in.npy", "{tmp}/o.gif"], "OUTPUT {tmp}/o.gif: expected .npy, found the extension '.gif'"),
    (["{tmp}/in.npy", "{tmp}/o"], "OUTPUT {tmp}/o: expected .npy, found the extension '(none)'"),
])
def test_predict_errors(tmp_path, capsys, argv, error):
    """The same checks in-process (quicker): exit status 2, one error line, nothing written or changed."""
    ckpt = tiny_checkpoint(tmp_path / "tiny.ckpt", data={"value_range": [0, 70]})
    np.save(tmp_path / "in.npy", frames())
    os.link(tmp_path / "in.npy", tmp_path / "hard.npy")
    nan = frames()
    nan[1, 2, 0, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "u16.npy", frames(np.uint16, 1000))
    (tmp_path / "p.png").write_bytes(b"an old picture")
    (tmp_path / "link.png").symlink_to(tmp_path / "p.png")
    (tmp_path / "loop.npy").symlink_to(tmp_path / "loop.npy")
    before = {p: sha(p) for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        predict_script.main([str(ckpt), *(a.format(tmp=tmp_path, ckpt=ckpt) for a in argv)])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error: " in line]
    assert len(lines) == 1 and error.format(tmp=tmp_path, ckpt=ckpt) in lines[0], lines
    assert {p: sha(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_value_range_hint_names_the_checkpoints_range(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "radar.ckpt", data={"value_range": [0, 70]})
    np.save(tmp_path / "in.npy", frames(np.float32, 70))
    with pytest.raises(SystemExit):
        predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "o.npy")])
    assert "(the checkpoint was trained with data.value_range [0, 70])" in capsys.readouterr().err


def test_value_range_maps_inputs_and_output_stays_in_0_1(ckpt, tmp_path):
    data = frames(np.int16, 1000)
    np.save(tmp_path / "in.npy", data)
    predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--value-range", "0", "1000"])
    pred = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(pred, forecast(load_module(ckpt), data.astype(np.float32) / 1000), atol=1e-6)
    assert pred.dtype == np.float32 and 0 <= pred.min() and pred.max() <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]  # no temporary file left


def test_a_failed_write_leaves_the_old_output_and_no_partial_file(ckpt, tmp_path, capsys):
    np.save(tmp_path / "in.npy", frames())
    (tmp_path / "out.npy").write_bytes(b"the previous forecast")

    def full_disk(file, array):
        file.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with mock.patch.object(np, "save", full_disk), pytest.raises(SystemExit) as exit_info:
        predict_script.main([str(ckpt), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--force"])
    assert exit_info.value.code == 2
    assert f"error: OUTPUT {tmp_path}/out.npy: cannot write the OUTPUT file out.npy in {tmp_path}: not enough disk " \
        "space" in capsys.readouterr().err
    assert (tmp_path / "out.npy").read_bytes() == b"the previous forecast"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


@pytest.mark.slow
def test_predict_script_on_a_trained_checkpoint(trained_run, tmp_path):
    """The command as the README gives it, on the checkpoint of a training run: forecasts in [0, 1], a PNG."""
    frames = np.random.default_rng(0).integers(0, 255, (2, 3, 1, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "in.npy", frames)
    command = [sys.executable, "scripts/predict.py", str(trained_run[0] / "checkpoints" / "last.ckpt"),
               str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--png", str(tmp_path / "out.png")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    pred = np.load(tmp_path / "out.npy")
    assert pred.shape == (2, 2, 1, 32, 32) and pred.dtype == np.float32
    assert 0 <= pred.min() and pred.max() <= 1
    assert (tmp_path / "out.png").stat().st_size > 0
