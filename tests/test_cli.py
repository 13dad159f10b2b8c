"""The command line's helpers (convgru.training.cli): paths with spaces and non-ASCII characters work as
typed, user errors end in one `error:` line and exit status 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from convgru.training import cli
from sweep import ARRAYS, FOLDER, ROOT, video


@pytest.mark.slow
def test_paths_with_spaces_and_non_ascii_work(tmp_path):
    """experiment=quickstart with data=arrays, a data file and a run folder with spaces and accents, as typed."""
    folder, run = tmp_path / FOLDER, tmp_path / "sortie é" / "run 1"
    folder.mkdir()
    np.save(folder / "séquences 1.npy", video(dtype=np.uint8))
    command = [sys.executable, "scripts/train.py", "experiment=quickstart", "data=arrays",
               f"data.files=[{folder / 'séquences 1.npy'}]", *ARRAYS[1:], "model.net.hidden_sizes=[4,4]",
               "model.net.stem_channels=4", "callbacks.prediction_images.num_sequences=1",
               "+trainer.fast_dev_run=true", f"hydra.run.dir={run}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/mse" in json.loads((run / "metrics.json").read_text())
    assert OmegaConf.load(run / ".hydra" / "config.yaml").data.files == [str(folder / "séquences 1.npy")]


@pytest.mark.parametrize("override, expected", [
    ("data.files=[/tmp/é a/x.npy,/b/ü.npy]", 'data.files=["/tmp/é a/x.npy","/b/ü.npy"]'),
    ("hydra.run.dir=/tmp/日本/run", 'hydra.run.dir="/tmp/日本/run"'),
    ('data.files=["/tmp/é.npy"]', 'data.files=["/tmp/é.npy"]'),
    ("data.files=[/tmp/my data/x.npy]", "data.files=[/tmp/my data/x.npy]"),
    ("-m", "-m"),
])
def test_quote_non_ascii(override, expected):
    assert cli.quote_non_ascii([override]) == [expected]


def test_user_errors_exit_with_status_2_unless_debugging(capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG, raising=False)
    with pytest.raises(SystemExit) as exit_:
        with cli.user_errors():
            raise FileNotFoundError("array file /data/a.npy not found")
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[1:] == ["error: array file /data/a.npy not found",
                                                        f"(set {cli.DEBUG}=1 for the traceback)"]
    with pytest.raises(KeyError):  # not a user error: a bug, with its traceback
        with cli.user_errors():
            raise KeyError("bug")
    monkeypatch.setenv(cli.DEBUG, "1")
    with pytest.raises(FileNotFoundError):
        with cli.user_errors():
            raise FileNotFoundError("array file /data/a.npy not found")
