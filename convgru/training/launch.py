"""The settings of the engines, checked before a run or a sweep launches (scripts/train.py and eval.py, through
`convgru.training.overrides.check_command_line`): each mistake is one `OptionError` naming the variable or option,
what was expected and what was found, at once, where Lightning, torch.distributed, Optuna or SQLAlchemy would fail
later with a traceback, or wait for half an hour for nodes that never come.

- `check_distributed_environment`: MASTER_ADDR, MASTER_PORT, NODE_RANK / GROUP_RANK against trainer.num_nodes,
  WORLD_SIZE, RANK, LOCAL_RANK against trainer.devices, and SLURM's task variables, for a distributed trainer.
- `check_sweeper`: hydra.sweeper's direction, n_trials, n_jobs, max_failure_rate, search space and storage
  (hparams_search=optuna).
"""

import os
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from omegaconf import DictConfig, OmegaConf

from convgru._checks import OptionError, shown_name, shown_path
from convgru.training.paste import paste_command

DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
SQLITE = "sqlite:///"
OPTUNA_TABLES = ("studies", "alembic_version")  # in every database of Optuna's RDB storage
SQLITE_HEADER = b"SQLite format 3\x00"


def _integer(env: Mapping, name: str, low: int, high: int | None = None, why: str = "") -> int | None:
    """The integer value of `env[name]` (None if unset); OptionError unless low <= value <= high."""
    text = env.get(name)
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        span = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise OptionError(name, f"expected {span}{why}, found {text!r}")
    return value


def _distributed(cfg: DictConfig) -> bool:
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto")).lower()
    nodes, devices = (OmegaConf.select(cfg, f"trainer.{k}", default=1) for k in ("num_nodes", "devices"))
    return (strategy.startswith(DISTRIBUTED) or (isinstance(nodes, int) and nodes > 1)
            or (isinstance(devices, int) and devices > 1))


def check_distributed_environment(cfg: DictConfig, env: Mapping | None = None) -> None:
    """OptionError naming the environment variable that a distributed run (trainer.strategy=ddp, several
    devices or nodes) on Hydra's basic launcher would read and cannot use; other runs ignore them."""
    env = os.environ if env is None else env
    launcher = OmegaConf.select(cfg, "hydra.runtime.choices.hydra/launcher", default="basic")
    if launcher not in (None, "basic") or not _distributed(cfg):
        return  # a single process, or SLURM's nodes set their own variables
    if "MASTER_ADDR" in env and not env["MASTER_ADDR"].strip():
        raise OptionError("MASTER_ADDR", "expected the host name or IP address of the node of rank 0, found ''")
    _integer(env, "MASTER_PORT", 1, 65535, " (a TCP port on the node of rank 0)")
    nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
    devices = OmegaConf.select(cfg, "trainer.devices", default=None)
    for name in ("NODE_RANK", "GROUP_RANK"):
        _integer(env, name, 0, nodes - 1 if isinstance(nodes, int) else None,
                 f" (this node's rank, of trainer.num_nodes={nodes})" if isinstance(nodes, int) else "")
    world = _integer(env, "WORLD_SIZE", 1, None, " (processes in all: trainer.devices x trainer.num_nodes)")
    _integer(env, "RANK", 0, world - 1 if world else None, f" (WORLD_SIZE={world})" if world else "")
    _integer(env, "LOCAL_RANK", 0, devices - 1 if isinstance(devices, int) else None,
             f" (of trainer.devices={devices} on this node)" if isinstance(devices, int) else "")
    if "SLURM_NTASKS" in env:
        tasks = _integer(env, "SLURM_NTASKS", 1)
        _integer(env, "SLURM_PROCID", 0, tasks - 1, f" (SLURM_NTASKS={tasks})")
        for name in ("SLURM_LOCALID", "SLURM_NODEID"):
            _integer(env, name, 0)


def check_sweeper(cfg: DictConfig, arguments=()) -> None:
    """OptionError naming the hydra.sweeper option of an Optuna sweep (hparams_search=optuna) that Optuna or
    its storage would refuse with a traceback: the direction, n_trials, n_jobs, max_failure_rate, a search
    space Optuna cannot sample, or a storage (sqlite:///FILE) in a missing or read-only folder, or not a
    database. `arguments`: the command line's overrides, whose sweeps the sweeper adds to the search space."""
    sweeper = OmegaConf.select(cfg, "hydra.sweeper")
    if not isinstance(sweeper, DictConfig) or not str(sweeper.get("_target_", "")).endswith("OptunaSweeper"):
        return
    directions = sweeper.get("direction")
    for direction in directions if OmegaConf.is_list(directions) else [directions]:
        if str(direction).lower() not in ("minimize", "maximize"):
            raise OptionError("hydra.sweeper.direction", f"expected minimize or maximize, found {direction!r}")
    for name in ("n_trials", "n_jobs"):
        value = sweeper.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise OptionError(f"hydra.sweeper.{name}", f"expected an integer >= 1, found {value!r}")
    rate = sweeper.get("max_failure_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise OptionError("hydra.sweeper.max_failure_rate", f"expected a number from 0 to 1, found {rate!r}")
    _check_search_space([*(f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()), *arguments])
    _check_storage(sweeper.get("storage"))


def _check_search_space(overrides: list[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    for text in overrides:
        try:
            override = OverridesParser.create().parse_override(text)
            create_optuna_distribution_from_override(override)
        except Exception as error:  # the grammar's, and Optuna's ValueError or AssertionError on the range
            key, _, value = text.partition("=")
            reason = " ".join(str(error).split()) or type(error).__name__
            raise OptionError(key if key.startswith("hydra.") else f"hydra.sweeper.params.{key}",
                              "expected a search space Optuna can sample (choice(...), range(...), interval(...), "
                              f"tag(log, interval(...))), found {value!r}: {reason}") from None


def _check_storage(storage) -> None:
    """A storage (hydra.sweeper.storage) that is a database URL of SQLAlchemy's, as Optuna opens it; for SQLite (a
    file: `sqlite:///FILE`, also with a driver, `sqlite+pysqlite:///`, options, `?timeout=30`, or a URI filename,
    `?uri=true`) FILE's folder exists and is writable, and FILE (if there) is an SQLite database of Optuna's."""
    if storage is None:
        return  # in memory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    option, shown = "hydra.sweeper.storage", shown_path(str(storage))
    try:
        url = make_url(str(storage))
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise OptionError(option, f"expected a database URL such as {SQLITE}FILE (or postgresql://HOST/NAME), found "
                          f"{shown}") from None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return  # a database server that only the run can reach, or in memory
    path = Path(url.database)
    if str(url.query.get("uri", "")).lower() in ("true", "1") and url.database.startswith("file:"):
        path = Path(unquote(urlparse(url.database).path))  # SQLite's URI filename: file:NAME, file:///PATH
    if not path.parent.is_dir():
        raise OptionError(option, f"expected sqlite:///FILE in an existing folder, found {shown} (the folder "
                          f"{shown_path(path.parent)} does not exist; create it first)")
    if path.is_dir():
        raise OptionError(option, f"expected sqlite:///FILE, found {shown}, a folder; to keep the sweep's "
                          f"database in it, pass {_new_storage(path)}")
    for written in (path, path.parent):  # SQLite writes its journal beside the file
        if written.exists() and not os.access(written, os.W_OK):
            raise OptionError(option, f"expected a database Optuna can write, found {shown}, read-only "
                              f"({shown_path(written)} cannot be written)")
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
        problem = None if header == SQLITE_HEADER else "not an SQLite database"
        if problem is None:
            try:
                with closing(sqlite3.connect(f"file:{quote(_absolute(path))}?mode=ro", uri=True)) as db:
                    result = db.execute("PRAGMA quick_check").fetchone()
                    tables = sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))
                    schema = db.execute("SELECT version_num FROM alembic_version").fetchone() \
                        if set(OPTUNA_TABLES) <= set(tables) else None
                problem = None if result and result[0] == "ok" else f"damaged ({result[0] if result else 'no answer'})"
                if problem is None and tables and not set(OPTUNA_TABLES) <= set(tables):
                    problem = (f"a database of other tables ({', '.join(map(shown_name, tables[:5]))}"
                               f"{', ...' * (len(tables) > 5)}) without Optuna's {' and '.join(OPTUNA_TABLES)}, "
                               "which the sweep would add its tables to")
                elif problem is None and tables:
                    problem = _other_schema(schema, storage)
            except sqlite3.DatabaseError as error:
                problem = f"damaged ({error})"
        if problem:
            raise OptionError(option, f"expected an SQLite database of Optuna's (or a new file), found {shown}: "
                              f"{problem}; the sweep does not write into it: give the sweep a database of its own, "
                              f"{_new_storage(path.parent)}")


def _other_schema(row, storage) -> str | None:
    """Why Optuna would refuse a database of its own whose schema version (`row` of its alembic_version table) is not
    this Optuna's, at the sweep's start with a traceback; None if it is."""
    import alembic.config
    import alembic.script
    import optuna
    from optuna.storages._rdb import storage as rdb

    folder = Path(rdb.__file__).parent
    config = alembic.config.Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder / "alembic"))
    head = alembic.script.ScriptDirectory.from_config(config).get_current_head()
    found = row[0] if row else None
    if found == head:
        return None
    upgrade = paste_command(("optuna", "storage", "upgrade", "--storage", str(storage)))
    return (f"Optuna's tables of schema {shown_name(str(found))}, and this Optuna ({optuna.__version__}) reads schema "
            f"{head} (upgrade an older one with: {upgrade})")


def _new_storage(folder: Path) -> str:
    """The override of hydra.sweeper.storage (as `paste_command` writes it) naming a new SQLite file in `folder`:
    optuna.db, or optuna-2.db, optuna-3.db, ..., the first that does not exist."""
    names = (f"optuna{'-' + str(n) if n > 1 else ''}.db" for n in range(1, 1000))
    free = next((folder / name for name in names if not (folder / name).exists()), folder / "optuna-new.db")
    return paste_command(None, [("hydra.sweeper.storage", f"{SQLITE}{free}")])


def _absolute(path: Path) -> str:
    """`path` absolute, with one leading slash (`//x` is `/x` on Linux, but an authority in a file: URI)."""
    return "/" + str(path.resolve()).lstrip("/")
