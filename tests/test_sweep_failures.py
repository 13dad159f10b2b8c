"""A failed trial of a sweep (a diverged training, any user error in a job, a job terminated by SIGTERM, a
run that returns no number) is told to Optuna as failed with its reason, the sweep goes on (hparams_search=
optuna: max_failure_rate 1.0) and its summary lists every trial; a sweep whose trials all fail ends in one
`error:` line. In-process, with a task that fails as train.py's does (`cli.user_errors`), through convgru's
Optuna sweeper (hydra_plugins.convgru_sweeper) and Hydra's basic launcher."""

import sys
from unittest import mock

import hydra
import optuna
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from conftest import CONF
from convgru.training.cli import Terminated, user_errors

SWEEPER = yaml.safe_load((CONF / "hparams_search" / "optuna.yaml").read_text())["hydra"]["sweeper"]["_target_"]
FATES = {1: "diverged", 2: "terminated", 3: "nan"}  # of the sweep's jobs by number; the others complete


def task(cfg: DictConfig) -> float:
    fate = cfg.fates.get(HydraConfig.get().job.num)
    with user_errors():
        if fate == "diverged":
            raise FloatingPointError("training loss is nan at epoch 0, step 1")
        if fate == "terminated":
            raise Terminated("terminated by SIGTERM at epoch 0, step 3")  # what train() raises on SIGTERM
    return float("nan") if fate == "nan" else float(cfg.lr)


def sweep(tmp_path, trials: int, fates: dict, storage=None, max_failure_rate=1.0) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "defaults": ["_self_", {"override hydra/sweeper": "optuna"}],
        "lr": 0.1, "monitor": "val/mse", "fates": fates,
        "hydra": {"sweeper": {"_target_": SWEEPER, "n_trials": trials, "max_failure_rate": max_failure_rate,
                              "storage": storage, "study_name": "s", "params": {"lr": "interval(0.01, 1.0)"}},
                  "sweep": {"dir": str(tmp_path / "sweep")}}}))
    main = hydra.main(config_path=str(tmp_path), config_name="config", version_base="1.3")(task)
    with mock.patch.object(sys, "argv", ["task.py", "-m"]):
        main()


@pytest.mark.slow  # 6 s: Optuna's SQLite storage
def test_failed_trials_are_told_to_optuna_with_their_reasons_and_listed(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    sweep(tmp_path, 5, FATES, storage)
    folder = tmp_path / "sweep"
    study = optuna.load_study(study_name="s", storage=storage)
    told = [(t.number, t.state.name, t.user_attrs.get("reason")) for t in study.trials]
    assert told == [(0, "COMPLETE", None), (1, "FAIL", "training loss is nan at epoch 0, step 1"),
                    (2, "FAIL", "terminated by SIGTERM at epoch 0, step 3"),
                    (3, "FAIL", "the run returned nan, not a finite number (no validation ran, or the monitored "
                                "metric is missing)"), (4, "COMPLETE", None)]
    assert study.best_value == min(study.trials[0].value, study.trials[4].value)
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and len(results["trials"]) == 5
    assert [(row["number"], row["folder"], row["state"]) for row in results["trials"]] == [
        (i, str(folder / str(i)), "failed" if i in FATES else "complete") for i in range(5)]
    assert results["trials"][4]["value"] == study.trials[4].value and "reason" not in results["trials"][4]
    assert results["trials"][2]["reason"] == "terminated by SIGTERM at epoch 0, step 3"
    captured = capsys.readouterr()
    assert "error: job 1 (lr=" in captured.err and "): training loss is nan" in captured.err
    assert "Traceback" not in captured.err
    summary = captured.out[captured.out.index("Trials of the sweep in"):].splitlines()
    assert len(summary) == 6 and summary[0] == f"Trials of the sweep in {folder} (val/mse; optimization_results.yaml):"
    lr = study.trials[2].params["lr"]
    assert summary[3] == f"  trial 2 (job 2): failed: terminated by SIGTERM at epoch 0, step 3  [lr={lr}]"
    assert summary[5] == f"  trial 4 (job 4): val/mse {study.trials[4].value:.6g}  [lr={study.trials[4].params['lr']}]"


def test_a_sweep_whose_trials_all_fail_ends_in_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        sweep(tmp_path, 2, {0: "terminated", 1: "diverged"})
    assert stop.value.code == 2
    captured = capsys.readouterr()
    err, printed = captured.err, captured.out + captured.err
    folder = tmp_path / "sweep"
    # each trial's error once as it fails (no repeat by Hydra or hydra-optuna-sweeper), once in the summary;
    # the first's once more in the end's error line
    assert printed.count("training loss is nan at epoch 0, step 1") == 2, printed
    assert printed.count("terminated by SIGTERM at epoch 0, step 3") == 3, printed
    assert "Failed experiment" not in printed and "Error executing job" not in printed
    errors = [line for line in err.splitlines() if line.startswith("error: ") and not line.startswith("error: job")]
    assert errors == [f"error: all 2 trials of the sweep in {folder} failed; the first, trial 0: terminated by "
                      f"SIGTERM at epoch 0, step 3 (every trial's reason: {folder / 'optimization_results.yaml'})"], err
    assert "Traceback" not in err
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert [row["state"] for row in results["trials"]] == ["failed", "failed"] and "best_value" not in results


@pytest.mark.slow  # a few seconds, as the all-failed sweep's (the same code path)
def test_a_sweep_stopped_by_max_failure_rate_says_why_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        sweep(tmp_path, 3, {1: "diverged"}, max_failure_rate=0.4)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    folder = tmp_path / "sweep"
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ") and "error: job" not in line]
    assert errors == [f"error: the sweep in {folder} stopped: more than hydra.sweeper.max_failure_rate=0.4 of a batch "
                      "of trials failed; the first, trial 1: training loss is nan at epoch 0, step 1 (every trial's "
                      f"reason: {folder / 'optimization_results.yaml'})"], captured.err
    assert "Traceback" not in captured.err and "trial 0 (job 0): val/mse" in captured.out
    assert len(yaml.safe_load((folder / "optimization_results.yaml").read_text())["trials"]) == 2  # n_jobs 2: one batch


def test_sigterm_outside_a_sweep_still_exits_as_a_terminated_process():
    with pytest.raises(SystemExit) as stop, user_errors():
        raise Terminated("terminated by SIGTERM at epoch 0, step 3")
    assert stop.value.code == 143  # 128 + SIGTERM: what schedulers and the resume message expect


def test_optuna_search_tolerates_failed_trials():
    assert "max_failure_rate: 1.0" in (CONF / "hparams_search" / "optuna.yaml").read_text()


def test_the_sweepers_log_escapes_the_users_study_name_and_storage():
    """hydra-optuna-sweeper logs the study name and storage URL as given: a line break there cannot forge a line."""
    import logging

    from convgru.training.sweeps import _OptunaLog

    told = _OptunaLog([])
    for line in ("Storage: sqlite:////tmp/x\nerror: forged/o.db", "Study name: s\nerror: forged"):
        record = logging.LogRecord("optuna", logging.INFO, __file__, 1, "%s", (line,), None)
        assert told.filter(record) and "\n" not in record.getMessage() and "\\nerror: forged" in record.getMessage()
    record = logging.LogRecord("optuna", logging.INFO, __file__, 1, "Storage: sqlite:////tmp/o.db", (), None)
    assert told.filter(record) and record.getMessage() == "Storage: sqlite:////tmp/o.db"
