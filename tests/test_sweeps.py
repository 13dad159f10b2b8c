"""Sweeps and launchers: hparams_search=optuna (hydra-optuna-sweeper), hydra/launcher=submitit_local and
submitit_slurm (hydra-submitit-launcher), trainer=ddp_multinode: configs that compose, and one two-trial
Optuna sweep whose two jobs run at once through the local submitit launcher."""

import json
import os
import subprocess
import sys

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT, tiny


def compose_hydra(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_optuna_search_composes():
    cfg = compose_hydra(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert set(sweeper.params) == {"model.optimizer.lr", "model.net.hidden_sizes.0", "model.net.hidden_sizes.1",
                                   "model.net.hidden_sizes.2", "model.loss"}
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.monitor == "val/mse"


@pytest.mark.parametrize("launcher,target", [("submitit_local", "LocalLauncher"), ("submitit_slurm", "SlurmLauncher")])
def test_submitit_launchers_compose(launcher, target):
    cfg = compose_hydra([f"hydra/launcher={launcher}", "trainer=ddp_multinode", "hydra.launcher.nodes=2",
                         "hydra.launcher.tasks_per_node=4"])
    assert cfg.hydra.launcher._target_.endswith(target)
    assert (cfg.hydra.launcher.nodes, cfg.hydra.launcher.tasks_per_node) == (2, 4)
    assert (cfg.trainer.strategy, cfg.trainer.num_nodes, cfg.trainer.devices) == ("ddp", 2, "auto")


@pytest.mark.slow
def test_optuna_sweep_of_two_trials_through_submitit(tmp_path, cache_dir):
    """Two Optuna trials launched at once as two local submitit jobs; each trains (with checkpointing
    through time), the study's best value is the lower of the two trials' val/mse."""
    sweep = tmp_path / "sweep"
    overrides = [o for o in tiny("train") if not o.startswith("model.net.hidden_sizes")]
    command = [sys.executable, "scripts/train.py", "-m", "hparams_search=optuna", "hydra/launcher=submitit_local",
               "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra.launcher.timeout_min=10", *overrides,
               "model.net.hidden_sizes=[4,4,4]", "model.net.checkpoint_every=2", f"paths.cache_dir={cache_dir}",
               f"hydra.sweep.dir={sweep}", f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    jobs = sorted(sweep.glob("[0-9]*"), key=lambda job: int(job.name.split("+")[0]))  # 0+lr-0.001234+...
    assert [job.name.split("+")[0] for job in jobs] == ["0", "1"]
    assert all("+lr-" in job.name and "+loss-" in job.name for job in jobs)  # named by the values it was given
    trials = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert results["best_value"] == pytest.approx(min(t["val/mse"] for t in trials))
    assert [(row["state"], row["folder"]) for row in results["trials"]] == [  # the summary (convgru's sweeper)
        ("complete", str(jobs[0])), ("complete", str(jobs[1]))]
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.net.hidden_sizes.0",
                                           "model.net.hidden_sizes.1", "model.net.hidden_sizes.2", "model.loss"}
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # both ran as submitit jobs
    study = optuna.load_study(study_name="convgru", storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # as the README
    assert len(study.trials_dataframe()) == 2 and study.best_value == results["best_value"]
    for job in jobs:
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["model"]["net"]["checkpoint_every"] == 2 and len(config["model"]["net"]["hidden_sizes"]) == 3
