"""The `${project_root:}` resolver that the Hydra configs use for `paths.root_dir`."""

import os
from pathlib import Path

from omegaconf import OmegaConf

_MARKERS = ("pyproject.toml", "conf")


def _is_root(folder: Path) -> bool:
    return all((folder / marker).exists() for marker in _MARKERS)


def find_project_root() -> str:
    """Repository root: $PROJECT_ROOT, else the checkout holding this package, else cwd or a parent."""
    if os.environ.get("PROJECT_ROOT"):
        return str(Path(os.environ["PROJECT_ROOT"]).resolve())
    package_checkout = Path(__file__).resolve().parents[2]
    if _is_root(package_checkout):
        return str(package_checkout)
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if _is_root(folder):
            return str(folder)
    raise FileNotFoundError(
        f"Cannot find the convgru repository root (a folder with {' and '.join(_MARKERS)}) above "
        f"{cwd}; set the PROJECT_ROOT environment variable or override paths.root_dir=..."
    )


def register_resolvers() -> None:
    """Register `${project_root:}` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", find_project_root)
