"""The gallery's examples (examples/plot_*.py). sphinx-gallery executes every one of them when the site is
built (.ci/run builds it with -W and abort_on_example_error, so a broken example fails CI); here the cheap
one also runs as a plain Python script, without building the site, and writes only into its temporary
folder. The two that train (Moving MNIST, the nowcast) are not run twice in CI: the build runs them."""

import runpy
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


def test_the_gallery_has_its_examples():
    assert [p.stem for p in EXAMPLES] == ["plot_moving_mnist", "plot_nowcast", "plot_porting"]


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem == "plot_porting"], ids=lambda p: p.stem)
def test_example_runs(path, tmp_path, monkeypatch):
    """In this process (torch and Lightning imported once, as in the docs' build), from an empty working
    folder, with the temporary folder moved under tmp_path: the example draws its figures, leaves the
    working folder empty and writes nowhere else."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    plt.close("all")
    try:
        runpy.run_path(str(path), run_name="__main__")
        assert plt.get_fignums(), "the example draws no figure"
    finally:
        plt.close("all")
    assert list(cwd.iterdir()) == []
