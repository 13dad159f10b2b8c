"""A failed trial of a sweep (a diverged training, any user error in a job) is told to Optuna as failed, with
its reason in the log, and the sweep goes on (hparams_search=optuna: max_failure_rate 1.0). In-process, with a
task that fails as train.py's does (`cli.user_errors`), through Hydra's Optuna sweeper and basic launcher."""

import sys
from unittest import mock

import hydra
import optuna
import pytest
import yaml
from omegaconf import DictConfig

from conftest import CONF
from convgru.training.cli import TrialFailed, user_errors


def task(cfg: DictConfig) -> float:
    with user_errors():
        if cfg.lr > 1:
            raise FloatingPointError(f"training loss is nan at epoch 0, step 1 (lr {cfg.lr})")
    return float(cfg.lr)


@pytest.mark.slow
def test_failed_trial_is_told_to_optuna_and_the_sweep_goes_on(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "defaults": ["_self_", {"override hydra/sweeper": "optuna"}, {"override hydra/sweeper/sampler": "grid"}],
        "lr": 0.1,
        "hydra": {"sweeper": {"n_trials": 3, "max_failure_rate": 1.0, "storage": f"sqlite:///{tmp_path / 'o.db'}",
                              "study_name": "s", "params": {"lr": "choice(0.1,100.0,0.01)"}},
                  "sweep": {"dir": str(tmp_path / "sweep")}}}))
    main = hydra.main(config_path=str(tmp_path), config_name="config", version_base="1.3")(task)
    with mock.patch.object(sys, "argv", ["task.py", "-m"]):
        main()
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    states = {t.params["lr"]: t.state for t in study.trials}
    assert states == {0.1: optuna.trial.TrialState.COMPLETE, 100.0: optuna.trial.TrialState.FAIL,
                      0.01: optuna.trial.TrialState.COMPLETE}
    assert study.best_value == 0.01
    err = capsys.readouterr().err
    assert "error: job" in err and "lr=100.0): training loss is nan" in err and "Traceback" not in err


def test_a_sweep_stopped_by_its_failures_says_why_in_one_line():
    assert issubclass(TrialFailed, hydra.errors.CompactHydraException)  # Hydra prints its message alone


def test_optuna_search_tolerates_failed_trials():
    assert "max_failure_rate: 1.0" in (CONF / "hparams_search" / "optuna.yaml").read_text()
