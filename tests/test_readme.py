"""The README's Python examples run as written from a folder other than the repository, each in a
namespace of its own, so that each defines what it uses. A file that an example reads and that a
command of the README writes before it (model.onnx, of scripts/export.py) is made first, as that
command would make it."""

import re
from pathlib import Path

import pytest

import convgru

README = Path(__file__).resolve().parents[1] / "README.md"
WRITTEN_BEFORE = {"model.onnx": lambda path: convgru.export_onnx(
    convgru.EncoderForecaster(hidden_sizes=(4, 4), kernel_size=3, stem_channels=4), path, frames_in=3, future=2,
    clamp=True, check=False)}


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_examples():
    blocks = python_blocks()
    assert len(blocks) >= 4 and any("onnxruntime" in block for block in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs_from_another_folder(index, tmp_path, monkeypatch):
    block = python_blocks()[index]
    for name, write in WRITTEN_BEFORE.items():
        if f'"{name}"' in block:
            write(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"README.md, python example {index + 1}", "exec"), {})


def test_readme_test_command_is_the_one_ci_runs():
    """The Set up block's test command, the Run times paragraph's and .ci/run's pytest line are one command."""
    ci = next(line for line in (README.parent / ".ci" / "run").read_text().splitlines()
              if line.startswith("python -m pytest"))
    setup = re.search(r"## Set up\n.*?```bash\n(.*?)\n```", README.read_text(), re.S).group(1)
    assert ci.startswith("python -m pytest") and setup.endswith(f" && {ci}"), (setup, ci)
    assert f"command (`{ci}`)" in " ".join(README.read_text().split()), "the Run times paragraph's test command"
