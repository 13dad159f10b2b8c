"""Whether convgru runs from a source checkout (a clone, or an editable install) or from a wheel: `checkout`.
It decides where runs write (convgru.training.paths) and how a command is printed for pasting
(`python scripts/train.py` or `convgru train`, convgru.training.paste)."""

import os
from pathlib import Path

_MARKERS = ("pyproject.toml", "convgru/conf")


def _is_root(folder: Path) -> bool:
    return all((folder / marker).exists() for marker in _MARKERS)


def checkout() -> Path | None:
    """$PROJECT_ROOT if set, else the source checkout this package is imported from (a folder holding
    pyproject.toml and convgru/conf), else None: convgru is installed from a wheel."""
    if os.environ.get("PROJECT_ROOT"):
        return Path(os.environ["PROJECT_ROOT"]).expanduser().resolve()
    package_checkout = Path(__file__).resolve().parents[2]
    return package_checkout if _is_root(package_checkout) else None
