"""The `convgru` command (convgru.commands): its help lists the commands, the config groups with their
options and where keys are explained; --version; the paths of a run from a checkout and from a wheel;
the wheel holds the configs and the bundled digits (slow: builds it)."""

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import convgru
from conftest import ROOT
from convgru import commands
from convgru.training import checkout, paths


def test_help_lists_commands_groups_options_and_where_keys_are_explained(capsys):
    commands.main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "eval", "predict", "export"):
        assert f"\n  {command} " in out
    groups = {line.split()[0]: line.split(None, 1)[1] for line in out.split("config groups")[1].split("\n\n")[0]
              .splitlines()[1:]}
    assert {"data", "model", "experiment", "trainer", "callbacks", "logger", "paths", "hparams_search"} <= set(groups)
    assert "hydra" not in groups  # Hydra's settings, not a user's choice
    assert {"quickstart", "shi2017", "weatherbench"} <= set(groups["experiment"].split(", "))
    assert {"fields", "xarray", "video"} <= set(groups["data"].split(", "))
    assert f"Configs: {paths.CONFIG_DIR}" in out and "<configs>/<group>/<option>.yaml" in out
    assert f"convgru {convgru.__version__}" in out


def test_train_help_lists_the_groups_of_a_users_config_dir(capsys, tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 1\n")
    commands.main(["train", "--config-dir", str(tmp_path), "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: convgru train ")
    experiments = next(line for line in out.splitlines() if line.strip().startswith("experiment "))
    assert "mine" in experiments.split(None, 1)[1].split(", ") and "quickstart" in experiments


def test_version_is_the_installed_one():
    result = subprocess.run([sys.executable, "-m", "convgru", "--version"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"convgru {convgru.__version__}"
    assert importlib.metadata.version("convgru") == convgru.__version__  # pyproject reads convgru.__version__


def _paths(folder: Path):
    """convgru/conf/train.yaml's paths (no Hydra run: output_dir left out), run from `folder`."""
    with initialize_config_dir(config_dir=str(paths.CONFIG_DIR), version_base="1.3"):
        cfg = compose("train")
    return {key: cfg.paths[key] for key in ("root_dir", "data_dir", "cache_dir", "log_dir")}


def test_paths_of_a_checkout_and_of_a_wheel(tmp_path, monkeypatch):
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert _paths(tmp_path) == {"root_dir": str(ROOT), "data_dir": f"{ROOT}/data", "cache_dir": f"{ROOT}/data/cache",
                                "log_dir": f"{ROOT}/logs"}
    monkeypatch.setattr(checkout, "_is_root", lambda folder: False)  # as installed from a wheel
    assert _paths(tmp_path) == {"root_dir": str(tmp_path), "data_dir": f"{tmp_path}/data",
                                "cache_dir": f"{tmp_path}/xdg/convgru", "log_dir": f"{tmp_path}/logs"}
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "project"))
    assert _paths(tmp_path)["cache_dir"] == f"{tmp_path}/project/data/cache"


@pytest.mark.slow
def test_the_wheel_holds_the_configs_and_the_bundled_digits(tmp_path):
    """The wheel as `python -m build` makes it, from the sdist, never from a stale build/ folder (CI's
    .ci/wheel_check.sh also runs it from an empty folder)."""
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],  # wheel from sdist
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheel = zipfile.ZipFile(next(tmp_path.glob("convgru-*.whl")))
    names = set(wheel.namelist())
    configs = {f"convgru/conf/{p.relative_to(paths.CONFIG_DIR).as_posix()}" for p in paths.CONFIG_DIR.rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    assert {"convgru/data/bundled/mnist_5k.npz", "convgru/data/bundled/README.md", "convgru/py.typed",
            "convgru/__main__.py", "convgru/commands.py"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "convgru = convgru.commands:main" in wheel.read(entry_points).decode()
