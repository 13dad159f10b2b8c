"""Where the configs are and where a run reads and writes: the packaged config folder (CONFIG_DIR) and
the `${project_root:}` and `${cache_dir:}` resolvers that convgru/conf/paths/default.yaml uses, and
`${run_dir:}`, `${sweep_dir:}` and `${job_subdir:}`, the run and sweep folders that
convgru/conf/hydra/default.yaml names.

From a checkout (a clone, or an editable install), `paths.root_dir` is the checkout: runs write
logs/ and data/cache there, as they always did. From a wheel, it is the folder the command runs in
(logs/ there) and the caches go to the user's cache folder (`convgru.data.cache.user_cache_dir`).
$PROJECT_ROOT names the root in both cases; paths.log_dir and paths.cache_dir override each folder.
"""

from pathlib import Path

from omegaconf import OmegaConf

from convgru.data.cache import user_cache_dir
from convgru.training.checkout import checkout
from convgru.training.run_folder import config_subdir, job_subdir, run_dir, sweep_dir

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
    name, convgru/conf/hydra/default.yaml), `${config_subdir:...}` (where Hydra writes the run's config
    in it), `${sweep_dir:...}` and `${job_subdir:...}` (a sweep's folder and its jobs') with OmegaConf
    (idempotent)."""
    resolvers = {"project_root": find_project_root, "cache_dir": default_cache_dir, "run_dir": run_dir,
                 "config_subdir": config_subdir, "sweep_dir": sweep_dir, "job_subdir": job_subdir}
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
