"""The code blocks of README.md and docs/*.md. Every Python block runs as written, from a folder other than
the repository, each in a namespace of its own (porting.md's blocks in one holding the project's modules
that they port, as its text describes them). Every shell block that trains, evaluates, predicts or exports
is run with tiny overrides by a test it names, or says why it is not run, in a comment line right before it:

    <!-- run by: tests/test_x.py::test_name[, tests/test_y.py::fixture_name] -->
    <!-- not run: the reason -->

(an HTML comment: invisible on GitHub and in the site). The blocks named here are run here, tiny."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import convgru
from conftest import ROOT, tiny
from convgru import commands

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console", ""}
COMMAND = re.compile(r"(scripts/(train|eval|predict|export)\.py|\bconvgru (train|eval|predict|export)\b)")
MARKER = re.compile(r"^<!-- (run by|not run): (.*?) -->$")
RUN_BY = re.compile(r"^(tests/[\w/]+\.py)::(\w+)$")
# files that blocks read, written by the command before them: the fixture (tests/conftest.py) that holds one
WRITTEN_BEFORE = {"model.onnx": "exported_model"}  # what scripts/export.py writes (one export per test run)


@dataclass(frozen=True)
class Block:
    page: str      # relative to the repository: README.md, docs/x.md
    line: int      # of the opening fence
    lang: str
    text: str
    marker: tuple[str, str] | None  # ("run by" | "not run", what follows) from the comment right before it
    section: str   # the heading above it

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks() -> list[Block]:
    found = []
    for path in PAGES:
        lines, section, i = path.read_text().split("\n"), "", 0
        while i < len(lines):
            if lines[i].startswith("#") and not found_fence(lines[i]):
                section = lines[i].lstrip("#").strip()
            fence = found_fence(lines[i])
            if fence is None:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence[0]))
            before = next((line for line in reversed(lines[:i]) if line.strip()), "")
            marker = MARKER.match(before)
            found.append(Block(str(path.relative_to(ROOT)), i + 1, fence[1], "\n".join(lines[i + 1:end]) + "\n",
                               marker.groups() if marker else None, section))
            i = end + 1
    return found


def found_fence(line: str):
    match = re.match(r"^(`{3,})\s*([^\s`]*)", line)
    return (match.group(1), match.group(2)) if match else None


BLOCKS = code_blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
TRAINING = [b for b in BLOCKS if b.lang in SHELL and any(  # --help and --cfg print; they run nothing
    COMMAND.search(line) and not re.search(r"\s(--help|-h|--cfg)\b", line) for line in b.text.splitlines())]


def block_run_by(test_name: str) -> Block:
    """The one block whose marker names this file's `test_name`."""
    named = [b for b in TRAINING if b.marker == ("run by", f"tests/test_docs_blocks.py::{test_name}")]
    assert len(named) == 1, f"{len(named)} blocks say they are run by {test_name}"
    return named[0]


def shell_commands(block: Block) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments dropped."""
    joined = block.text.replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def test_the_docs_have_python_and_training_blocks():
    pages = {b.page for b in PYTHON}
    assert {"README.md", "docs/library.md", "docs/deploy.md", "docs/nowcasting.md", "docs/porting.md"} <= pages
    assert any("onnxruntime" in b.text for b in PYTHON) and len(TRAINING) >= 20


@pytest.mark.parametrize("block", TRAINING, ids=lambda b: b.id)
def test_every_training_block_is_run_or_says_why_not(block):
    assert block.marker, (f"{block.id}: a block that runs {COMMAND.search(block.text).group(0)} needs "
                          "'<!-- run by: tests/test_x.py::test_name -->' or '<!-- not run: the reason -->' "
                          "right before it")
    kind, what = block.marker
    if kind == "not run":
        assert len(what.split()) >= 3, f"{block.id}: say why it is not run"
        return
    for name in (n.strip() for n in what.split(",")):
        match = RUN_BY.match(name)
        assert match, f"{block.id}: {name!r} is not tests/<file>.py::<test or fixture>"
        source = ROOT / match.group(1)
        assert source.is_file() and re.search(rf"^def {match.group(2)}\(", source.read_text(), re.M), \
            f"{block.id}: {name} does not exist"


# The characters a code box shows without scrolling sideways, measured in the built site with headless Chromium at
# 1280 pixels and wider (the PyData theme's article is 60em at most; 14-pixel DejaVu Sans Mono): 102 on a page
# (100 kept), 68 on a gallery page, whose section sidebar narrows it; GitHub shows the README's boxes narrower
# (90). Text boxes (```text, output) wrap instead (docs/_static/convgru.css).
BOX = {"page": 100, "gallery": 68, "README.md": 90}


def gallery_code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of the code an example shows: after its docstring, outside `sphinx_gallery_*_ignore`,
    not the comment lines (the text between code cells)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if i and line.startswith('"""')) + 1
    shown, ignored = [], False
    for n, line in enumerate(lines[start:], start + 1):
        if "sphinx_gallery_start_ignore" in line or "sphinx_gallery_end_ignore" in line:
            ignored = "start" in line
        elif not ignored and not line.startswith("#"):
            shown.append((n, line))
    return shown


def test_code_boxes_fit_without_scrolling():
    """Every line of a code block (Python, shell, plain: ```text wraps) of the README, the docs' pages, the config
    reference's commands (the configs' comments) and the gallery's code fits its box (`BOX`)."""
    from convgru.training.config_docs import reference_markdown
    from convgru.training.paths import CONFIG_DIR

    long = [f"{b.id}: {line}" for b in BLOCKS if b.lang not in ("text", "none")
            for line in b.text.splitlines() if len(line) > BOX.get(b.page, BOX["page"])]
    reference = re.findall(r"```bash\n(.*?)```", reference_markdown(CONFIG_DIR), re.S)
    long += [f"configs: {line}" for block in reference for line in block.splitlines() if len(line) > BOX["page"]]
    long += [f"{path.name}:{n}: {line}" for path in sorted((ROOT / "examples").glob("plot_*.py"))
             for n, line in gallery_code_lines(path) if len(line) > BOX["gallery"]]
    assert not long, "\n".join(long)


def test_markers_stand_right_before_a_block():
    for path in PAGES:
        lines = path.read_text().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("<!-- run by") or line.startswith("<!-- not run"):
                after = next(x for x in lines[i + 1:] if x.strip())
                assert MARKER.match(line) and found_fence(after), f"{path.name}:{i + 1}: a marker not before a block"


def porting_namespace(section: str) -> dict:
    """The objects porting.md's blocks take from the project, shaped as the text describes them: hidden
    size C (32: one jhhuang96 group), X input channels, on (B, *, H, W) maps; `gru` holds RAFT's, DROID-SLAM's,
    MVSNet's and pytorch_convgru's modules under their names, `cgru` jhhuang96's, and R-MVSNet's TensorFlow
    variables are arrays (HWIO kernels)."""
    from convgru import ConvGRUCell
    from convgru.porting import concat_state_dict, gate_context, load_concat_weights

    torch.manual_seed(0)
    b, c, x_channels, h, w = 2, 32, 3, 6, 5

    def conv(cin, cout, kernel=3):
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        return nn.Conv2d(cin, cout, k, padding=(k[0] // 2, k[1] // 2))

    both = c + x_channels
    gru = SimpleNamespace(
        convr=conv(both, c), convz=conv(both, c), convq=conv(both, c),                       # RAFT
        convr1=conv(both, c, (1, 5)), convz1=conv(both, c, (1, 5)), convq1=conv(both, c, (1, 5)),
        convr2=conv(both, c, (5, 1)), convz2=conv(both, c, (5, 1)), convq2=conv(both, c, (5, 1)),
        w=conv(c, c, 1), convr_glo=conv(c, c, 1), convz_glo=conv(c, c, 1), convq_glo=conv(c, c, 1),  # DROID-SLAM
        gate_conv=conv(both, 2 * c), output_conv=conv(both, c), reset_gate_norm=nn.GroupNorm(1, c, 1e-6),
        update_gate_norm=nn.GroupNorm(1, c, 1e-6), output_norm=nn.GroupNorm(1, c, 1e-6),      # MVSNet
        reset_gate=conv(both, c), update_gate=conv(both, c), out_gate=conv(both, c))            # pytorch_convgru
    cgru = SimpleNamespace(conv1=nn.Sequential(conv(both, 2 * c), nn.GroupNorm(2 * c // 32, 2 * c)),
                           conv2=nn.Sequential(conv(both, c), nn.GroupNorm(c // 32, c)))
    x, state = torch.randn(b, x_channels, h, w), torch.randn(b, c, h, w)
    arrays = {name: torch.randn(*shape).numpy() for name, shape in {
        "gates_kernel": (3, 3, both, 2 * c), "output_kernel": (3, 3, both, c), "gates_bias": (2 * c,),
        "output_bias": (c,), "reset_gamma": (c,), "reset_beta": (c,), "update_gamma": (c,), "update_beta": (c,),
        "output_gamma": (c,), "output_beta": (c,)}.items()}
    frames = "CGRU_cell" in section  # jhhuang96 loops over frames; DROID-SLAM concatenates input maps
    return {"torch": torch, "ConvGRUCell": ConvGRUCell, "gate_context": gate_context,
            "concat_state_dict": concat_state_dict, "load_concat_weights": load_concat_weights,
            "gru": gru, "cgru": cgru, "convr": gru.convr, "convz": gru.convz, "convq": gru.convq,
            "x": x, "h": state, "inp": x, "net": state, "state": state, "x_list": [x[:, :1], x[:, 1:]],
            "inputs": [x, x] if frames else [x[:, :1], x[:, 1:]], "cr": torch.randn(b, c, h, w),
            "cz": torch.randn(b, c, h, w), "cq": torch.randn(b, c, h, w),
            "cost": torch.randn(b, h, w, x_channels), **arrays}


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block_runs_from_another_folder(block, tmp_path, monkeypatch, request):
    namespace = porting_namespace(block.section) if block.page == "docs/porting.md" else {}
    for name, fixture in WRITTEN_BEFORE.items():
        if f'"{name}"' in block.text and "export_onnx" not in block.text:
            shutil.copyfile(request.getfixturevalue(fixture)[1], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, f"{block.id} (python block)", "exec"), namespace)
    if block.page == "docs/porting.md":  # a ConvGRUCell built; the steps taken left states of the project's shape
        states = [namespace[k] for k in ("h", "net", "state")]
        assert any(isinstance(v, convgru.ConvGRUCell) for v in namespace.values())
        assert all(s.shape == (2, 32, 6, 5) and s.dtype == torch.float32 for s in states)


def run_command(argv: list[str]):
    """`python scripts/X.py ...` or `convgru X ...` of a block, in-process, as the convgru command."""
    if argv[0] == "python":
        argv = [Path(argv[1]).stem, *argv[2:]]
    elif argv[0] == "convgru":
        argv = argv[1:]
    return commands.main(argv)


TINY_RUN = [*(o for o in tiny("train") if not o.startswith("data.train_size")), "data.train_size=32"]


@pytest.mark.slow
def test_capped_quickstart(tmp_path, cache_dir, monkeypatch):
    """get-started.md's capped run, on tiny frames and a tiny model: 32 sequences in batches of 4 would be 8
    steps; trainer.limit_train_batches=5 stops the epoch at 5."""
    (command,) = shell_commands(block_run_by("test_capped_quickstart"))
    assert "trainer.limit_train_batches=5" in command and "trainer.max_epochs=1" in command
    monkeypatch.chdir(tmp_path)
    run_command([*command, *TINY_RUN, f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={cache_dir}"])
    (last,) = tmp_path.glob("logs/**/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 5
    assert json.loads((last.parents[1] / "metrics.json").read_text())["test/mse"] > 0


FIELDS_TINY = ["model.net.hidden_sizes=[4,4]", "model.net.stem_channels=4", "model.net.kernel_size=3",
               "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
               "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
               "callbacks.prediction_images.num_sequences=2", "figures.enabled=false"]


@pytest.mark.slow
def test_fields_without_a_download(tmp_path, monkeypatch):
    """weather.md's recipe: its Python block writes era5.nc, its shell block trains the quickstart on it (tiny)
    and forecasts from 2000-05-20 into forecast.nc."""
    xarray = pytest.importorskip("xarray")
    block = block_run_by("test_fields_without_a_download")
    (write,) = [b for b in PYTHON if b.page == block.page and b.section == block.section]
    monkeypatch.chdir(tmp_path)
    exec(compile(write.text, f"{write.id} (python block)", "exec"), {})
    train, predict = shell_commands(block)
    run_command([*train, *FIELDS_TINY, f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache"])
    (last,) = tmp_path.glob("logs/**/checkpoints/last.ckpt")
    assert "<date_time>" in predict[2]
    run_command([predict[0], predict[1], str(last), *predict[3:]])
    with xarray.open_dataset(tmp_path / "forecast.nc") as forecast:
        assert forecast["t2m"].sizes["lead_time"] == 5 and forecast["t2m"].attrs["units"] == "K"
