"""The layers hold: library < domain < data < training < deploy < cli < scripts, read from the imports of
every file, and no module imports itself through others (no import circle).

A module may import from its own layer and the layers below it, never above: the library
(`convgru/*.py`: the cell, ConvGRU, the encoder-forecaster, ONNX export, atomic writes) knows nothing
of units or data; the domain (`convgru/domain`: units, thresholds, skill scores) knows no data module;
the data (`convgru/data`) knows no training; training (`convgru/training`) nothing of a trained model's
use (`convgru/deploy`: predict, export); the command line (`convgru/commands.py`, `convgru/__main__.py`:
the `convgru` command) sits on them all, and none of them imports a script.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["library", "domain", "data", "training", "deploy", "cli", "scripts"]
CLI = ("commands", "__main__")  # convgru.commands, convgru.__main__: the `convgru` command
# The package's front door: convgru.load and convgru.export_onnx, imported on first use.
ALLOWED = {("convgru/__init__.py", "training")}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of this project (None for other packages)."""
    parts = module.split(".")
    if parts[0] == "scripts":
        return "scripts"
    if parts[0] != "convgru":
        return None
    if len(parts) > 1 and parts[1] in ("domain", "data", "training", "deploy"):
        return parts[1]
    if len(parts) > 1 and parts[1] in CLI:
        return "cli"
    return "library"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at the top or inside functions, relative imports made absolute."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                found.append(arg.value)
    return found


FILES = sorted([*(ROOT / "convgru").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_imports_go_down_the_layers(path):
    here = layer_of(module_name(path)) if path.parts[-2] != "scripts" else "scripts"
    rel = str(path.relative_to(ROOT))
    upward = [m for m in imports(path)
              if (there := layer_of(m)) and LAYERS.index(there) > LAYERS.index(here) and (rel, there) not in ALLOWED]
    assert not upward, f"{rel} ({here}) imports from a layer above it: {upward}"


def test_the_layer_map_knows_every_package():
    packages = {p.parent.name for p in (ROOT / "convgru").rglob("__init__.py")} - {"convgru"}
    assert packages <= {"domain", "data", "training", "deploy"}, packages


def _module_files() -> dict[str, Path]:
    return {module_name(path): path for path in (ROOT / "convgru").rglob("*.py")}


def test_no_import_circle():
    """Following every import between convgru's modules (at the top or inside functions) never leads
    back to where it started."""
    files = _module_files()

    def targets(name: str) -> set[str]:
        while name and name not in files:  # `from convgru.training.report import say`: the module
            name = name.rpartition(".")[0]
        return {name} if name else set()

    graph = {name: set().union(*(targets(m) for m in imports(path) if m.startswith("convgru"))) - {name}
             for name, path in files.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = path[path.index(other):] + [other] if other in path else [name, other]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_library_domain_and_data_load_neither_lightning_nor_hydra():
    """Nor matplotlib: only the training layer draws figures (convgru/training/figures.py)."""
    code = ("import sys, convgru, convgru.domain, convgru.data, convgru.data.cache, convgru.atomic; "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pytorch_lightning', 'lightning', 'lightning_fabric', 'hydra', 'omegaconf', 'matplotlib')); "
            "print(loaded)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


def test_importing_training_has_no_side_effects():
    """`import convgru.training` registers no OmegaConf resolver: the scripts do, when they start."""
    code = ("import convgru.training; from omegaconf import OmegaConf; "
            "print(OmegaConf.has_resolver('project_root'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
