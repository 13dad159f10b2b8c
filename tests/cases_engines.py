"""Error-sweep cases: the settings of the engines, checked before a run or sweep launches (convgru.training.launch):
the distributed environment variables, the Optuna sweeper's options, search space and storage."""

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from unittest import mock

from conftest import CONF
from convgru.training import cli, launch, overrides
from sweep import Case, raised

DDP = ["trainer=ddp", "trainer.accelerator=cpu"]
OPTUNA = ["-m", "hparams_search=optuna"]


def launched(args, env=None, prepare=None):
    """check_command_line of scripts/train.py on `args` ({dir}: the folder) with the environment `env` added."""
    def run(folder: Path) -> str:
        if prepare:
            prepare(folder)
        clean = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK",
                                                                  "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_NTASKS")}
        with mock.patch.dict(os.environ, {**clean, **(env or {})}, clear=True):
            return raised(lambda: overrides.check_command_line(
                CONF, "train", cli.quote_non_ascii([a.replace("{dir}", str(folder)) for a in args])))
    return run


def corrupt_db(folder: Path) -> None:
    (folder / "optuna.db").write_bytes(b"SQLite format 3\x00" + b"\x00\x10" + b"garbage" * 200)


def not_a_db(folder: Path) -> None:
    (folder / "optuna.db").write_text("my notes, not a database")


def users_db(folder: Path) -> None:
    """The user's own SQLite database (a table of notes), not Optuna's."""
    with closing(sqlite3.connect(folder / "notes.db")) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('precious')")


def old_optuna_db(folder: Path) -> None:
    """A database of Optuna's in a schema older than this Optuna's (an earlier Optuna's study)."""
    with closing(sqlite3.connect(folder / "optuna.db")) as db, db:
        db.execute("CREATE TABLE studies (study_id INTEGER)")
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        db.execute("INSERT INTO alembic_version VALUES ('v1.3.0.a')")


def read_only(folder: Path) -> None:
    (folder / "ro").mkdir()
    (folder / "ro").chmod(0o555)


def read_only_run(args):
    """`launched` in a read-only folder (as root, whom permissions do not stop, os.access is made to say so)."""
    inner = launched(args, prepare=read_only)

    def run(folder: Path) -> str:
        with mock.patch("convgru.training.launch.os.access", lambda *a: False):
            return inner(folder)
    return run


CASES = [
    Case("env-master-port", "a master port that is not a number", "MASTER_PORT=notaport ... trainer=ddp",
         launched(DDP, {"MASTER_PORT": "notaport"}),
         r"MASTER_PORT: expected an integer from 1 to 65535 .*found 'notaport'"),
    Case("env-node-rank", "a node rank beyond the nodes", "NODE_RANK=5 ... trainer=ddp_multinode trainer.num_nodes=2",
         launched(["trainer=ddp_multinode", "trainer.num_nodes=2", "trainer.accelerator=cpu"], {"NODE_RANK": "5"}),
         r"NODE_RANK: expected an integer from 0 to 1 \(this node's rank, of trainer.num_nodes=2\), found '5'"),
    Case("env-local-rank", "a local rank beyond the devices", "LOCAL_RANK=2 ... trainer=ddp trainer.devices=2",
         launched(DDP, {"LOCAL_RANK": "2"}), r"LOCAL_RANK: expected an integer from 0 to 1"),
    Case("env-world-size", "a world size that is not a number", "WORLD_SIZE=two ... trainer=ddp",
         launched(DDP, {"WORLD_SIZE": "two"}), r"WORLD_SIZE: expected an integer >= 1"),
    Case("env-rank", "a rank beyond the world size", "WORLD_SIZE=2 RANK=2 ... trainer=ddp",
         launched(DDP, {"WORLD_SIZE": "2", "RANK": "2"}), r"RANK: expected an integer from 0 to 1 \(WORLD_SIZE=2\)"),
    Case("env-master-addr", "an empty master address", "MASTER_ADDR= ... trainer=ddp",
         launched(DDP, {"MASTER_ADDR": ""}), r"MASTER_ADDR: expected the host name"),
    Case("env-slurm-procid", "a SLURM task id beyond the tasks", "SLURM_NTASKS=2 SLURM_PROCID=3 ... trainer=ddp",
         launched(DDP, {"SLURM_NTASKS": "2", "SLURM_PROCID": "3"}), r"SLURM_PROCID: expected an integer from 0 to 1"),
    Case("sweep-model-depth", "the search space's third level on a model of two", "-m hparams_search=optuna "
         "experiment=quickstart", launched([*OPTUNA, "experiment=quickstart"]),
         r"hydra.sweeper.params.model.net.hidden_sizes.2: the search space sets model.net.hidden_sizes.2, but "
         r"model.net.hidden_sizes has 2 entries"),
    Case("sweep-direction", "an unknown direction", "-m hparams_search=optuna hydra.sweeper.direction=up",
         launched([*OPTUNA, "hydra.sweeper.direction=up"]), r"hydra.sweeper.direction: expected minimize or maximize"),
    Case("sweep-n-trials", "no trials", "-m hparams_search=optuna hydra.sweeper.n_trials=0",
         launched([*OPTUNA, "hydra.sweeper.n_trials=0"]), r"hydra.sweeper.n_trials: expected an integer >= 1, found 0"),
    Case("sweep-failure-rate", "a failure rate over 1", "-m hparams_search=optuna hydra.sweeper.max_failure_rate=2",
         launched([*OPTUNA, "hydra.sweeper.max_failure_rate=2"]), r"max_failure_rate: expected a number from 0 to 1"),
    Case("sweep-search-space", "a log interval from 0", "-m hparams_search=optuna 'model.optimizer.lr=tag(log, "
         "interval(0, 1))'", launched([*OPTUNA, "model.optimizer.lr=tag(log, interval(0, 1))"]),
         r"hydra.sweeper.params.model.optimizer.lr: expected a search space Optuna can sample .*larger than 0",
         exact=False),
    Case("sweep-storage-folder", "a storage in a missing folder",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/nope/optuna.db",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/nope/optuna.db"]),
         r"hydra.sweeper.storage: expected sqlite:///FILE in an existing folder, .*does not exist"),
    Case("sweep-storage-is-folder", "a storage that is a folder",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}"]),
         r"hydra.sweeper.storage: expected sqlite:///FILE, found .*, a folder; to keep the sweep's database in it, "
         r"pass 'hydra.sweeper.storage=.*/optuna.db'"),
    Case("sweep-storage-forged-name", "a storage in a missing folder whose name holds a line break (and a forged "
         "error line)", "-m hparams_search=optuna 'hydra.sweeper.storage=sqlite:////data/x<LF>error: forged/o.db'",
         lambda folder: raised(lambda: launch._check_storage(f"sqlite:///{folder}/x\nerror: forged/o.db")),
         r"^hydra.sweeper.storage: expected sqlite:///FILE in an existing folder, found 'sqlite:///.*/x\\nerror: "
         r"forged/o.db' \(the folder '.*/x\\nerror: forged' does not exist"),
    Case("sweep-storage-not-db", "a storage file that is not a database",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/optuna.db",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/optuna.db"], prepare=not_a_db),
         r"hydra.sweeper.storage: .*not an SQLite database; the sweep does not write into it: give the sweep a "
         r"database of its own, 'hydra.sweeper.storage=.*/optuna-2.db'"),
    Case("sweep-storage-corrupt", "a damaged storage database",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/optuna.db",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/optuna.db"], prepare=corrupt_db),
         r"hydra.sweeper.storage: .*damaged", exact=False),
    Case("sweep-storage-read-only", "a storage in a read-only folder",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/ro/optuna.db",
         read_only_run([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/ro/optuna.db"]),
         r"hydra.sweeper.storage: expected a database Optuna can write, .*read-only"),
    Case("sweep-storage-users-db", "a storage that is the user's own database (other tables, not Optuna's)",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/notes.db",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/notes.db"], prepare=users_db),
         r"hydra.sweeper.storage: expected an SQLite database of Optuna's \(or a new file\), found .*notes.db: a "
         r"database of other tables \(notes\) without Optuna's studies and alembic_version"),
    Case("sweep-storage-users-db-options", "the user's own database named with SQLAlchemy's driver and options "
         "(which SQLAlchemy reads as the same file)",
         "-m hparams_search=optuna 'hydra.sweeper.storage=sqlite+pysqlite:////data/notes.db?timeout=30'",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite+pysqlite:///{dir}/notes.db?timeout=30"], prepare=users_db),
         r"hydra.sweeper.storage: expected an SQLite database of Optuna's \(or a new file\), found .*notes.db\?timeout="
         r"30: a database of other tables \(notes\) without Optuna's studies"),
    Case("sweep-storage-old-schema", "a storage database of an older Optuna's schema",
         "-m hparams_search=optuna hydra.sweeper.storage=sqlite:////data/optuna.db",
         launched([*OPTUNA, "hydra.sweeper.storage=sqlite:///{dir}/optuna.db"], prepare=old_optuna_db),
         r"hydra.sweeper.storage: expected an SQLite database of Optuna's \(or a new file\), found .*optuna.db: "
         r"Optuna's tables of schema v1.3.0.a, and this Optuna \(.*\) reads schema .* \(upgrade an older one with: "
         r"optuna storage upgrade --storage .*optuna.db.?\); the sweep does not write into it", exact=False),
    Case("sweep-storage-not-url", "a storage that is not a database URL", "-m hparams_search=optuna "
         "hydra.sweeper.storage=/data/optuna.db", launched([*OPTUNA, "hydra.sweeper.storage={dir}/optuna.db"]),
         r"hydra.sweeper.storage: expected a database URL such as sqlite:///FILE \(or postgresql://HOST/NAME\), "
         r"found .*/optuna.db"),
]
