"""Where the configs are and where a run reads and writes: the packaged config folder (CONFIG_DIR) and
the `${project_root:}` and `${cache_dir:}` resolvers that convgru/conf/paths/default.yaml uses, and
`${run_dir:}`, the run folder that convgru/conf/hydra/default.yaml names.

From a checkout (a clone, or an editable install), `paths.root_dir` is the checkout: runs write
logs/ and data/cache there, as they always did. From a wheel, it is the folder the command runs in
(logs/ there) and the caches go to the user's cache folder (`convgru.data.cache.user_cache_dir`).
$PROJECT_ROOT names the root in both cases; paths.log_dir and paths.cache_dir override each folder.
"""

from pathlib import Path

from omegaconf import OmegaConf

from convgru.data.cache import user_cache_dir
from convgru.training.checkout import checkout
from convgru.training.run_folder import config_subdir, run_dir

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"  # train.yaml, eval.yaml and the config groups


def find_project_root() -> str:
    """`paths.root_dir`: the checkout (`checkout`), or the current folder for a wheel's install."""
    return str(checkout() or Path.cwd().resolve())


def default_cache_dir(data_dir: str) -> str:
    """`paths.cache_dir`: <data_dir>/cache in a checkout (or with $PROJECT_ROOT), else the user's cache
    folder ($XDG_CACHE_HOME/convgru, else ~/.cache/convgru)."""
    return str(Path(data_dir) / "cache") if checkout() else str(user_cache_dir())


def register_resolvers() -> None:
    """Register `${project_root:}`, `${cache_dir:<data_dir>}`, `${run_dir:...}` (the run folder's
    name, convgru/conf/hydra/default.yaml) and `${config_subdir:...}` (where Hydra writes the run's config
    in it) with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", find_project_root)
    if not OmegaConf.has_resolver("cache_dir"):
        OmegaConf.register_new_resolver("cache_dir", default_cache_dir)
    if not OmegaConf.has_resolver("run_dir"):
        OmegaConf.register_new_resolver("run_dir", run_dir)
    if not OmegaConf.has_resolver("config_subdir"):
        OmegaConf.register_new_resolver("config_subdir", config_subdir)
