"""The end of an Optuna sweep (hparams_search=optuna): hydra-optuna-sweeper's sweep, with every trial's
outcome in its summary and an all-failed sweep ended in one `error:` line.

`SummarizedOptunaSweeper` is hydra-optuna-sweeper's OptunaSweeperImpl with two additions:
- each failed trial's reason (the job's one-line error, "terminated by SIGTERM ..." for a preempted job, or
  the value it returned that is not a finite number) is stored with the trial in Optuna (user attribute
  `reason`) as it is told;
- each failed trial's error is printed once, as it fails: by the job (`cli.user_errors`) where it ran in
  this process (Hydra's basic launcher), else by the sweeper; Hydra's and hydra-optuna-sweeper's repeats of
  it ("Error executing job with overrides", "Failed experiment: ...") are left out;
- at the end the sweep prints one line per trial (number, job folder, value or "failed: <reason>",
  parameters) and adds them (`trials`) to <sweep dir>/optimization_results.yaml. A sweep in which no trial
  completed, or that stopped because more than hydra.sweeper.max_failure_rate of a batch failed, ends in
  one `error:` line naming the sweep folder and the first failure's reason (exit status 2).
Hydra takes sweepers only from the hydra_plugins package: hydra_plugins/convgru_sweeper (in the wheel)
names this class for hparams_search=optuna.
"""

import logging
import math
import sys
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import OmegaConf

from convgru._checks import shown_name, shown_path
from convgru.atomic import atomic_write
from convgru.training.cli import TrialFailed, error_message, fail
from convgru.training.report import say
from convgru.training.run_folder import SWEEP_RESULTS as RESULTS  # the summary file in the sweep folder

REASON = "reason"  # the user attribute of a failed trial in Optuna's study


def failure_reason(job) -> str | None:
    """Why the JobReturn `job` of a trial failed (one line), or None where it returned a finite number."""
    if job.status == JobStatus.FAILED:
        error = job._return_value
        return error.reason if isinstance(error, TrialFailed) else f"{type(error).__name__}: {error_message(error)}"
    value = job._return_value
    try:  # one number, or one per direction of a multi-objective study
        if all(math.isfinite(float(v)) for v in (value if isinstance(value, (list, tuple)) else [value])):
            return None
    except (TypeError, ValueError):
        pass
    return f"the run returned {value!r}, not a finite number (no validation ran, or the monitored metric is missing)"


class _ToldJobReturn(JobReturn):
    """A failed trial's JobReturn whose error, already printed, Hydra does not print again when the sweeper reads it."""

    @property
    def return_value(self):
        if self.status == JobStatus.COMPLETED:
            return self._return_value
        raise self._return_value

    @return_value.setter
    def return_value(self, value) -> None:
        self._return_value = value


class _OptunaLog(logging.Filter):
    """hydra-optuna-sweeper's log as convgru prints: without "Failed experiment: <error>" for the errors of
    `job_errors` (printed), the user's study name and storage URL escaped (`shown_name`)."""

    def __init__(self, job_errors: list):
        super().__init__()
        self.job_errors = job_errors

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for label in ("Study name: ", "Storage: "):
            if message.startswith(label):
                record.msg, record.args = label + shown_name(message[len(label):], None), ()
        return not any(message == f"Failed experiment: {e}" for e in self.job_errors)


OPTUNA_LOG = logging.getLogger(OptunaSweeperImpl.__module__)
ON_THIS_TERMINAL = ("BasicLauncher", "JoblibLauncher")  # launchers whose jobs print on the sweep's stderr (submitit's:
# in each job's log)


class _TellingLauncher:
    """The sweeper's launcher, storing each failed trial's reason and its job folder in Optuna as the jobs return,
    and printing the error of each failed trial that its job did not print here."""

    def __init__(self, launcher, sweeper: "SummarizedOptunaSweeper"):
        self.launcher, self.sweeper = launcher, sweeper

    def launch(self, job_overrides, initial_job_idx: int):
        jobs = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for trial, job in zip(self.sweeper.asked[-len(jobs):], jobs):
            trial.set_user_attr("folder", str(OmegaConf.select(job.hydra_cfg or {}, "hydra.runtime.output_dir") or ""))
            reason = failure_reason(job)
            if reason is None:
                continue
            trial.set_user_attr(REASON, reason)
            printed = job.status == JobStatus.FAILED and isinstance(job._return_value, TrialFailed) and \
                type(self.launcher).__name__ in ON_THIS_TERMINAL  # the job printed its line here
            if job.status != JobStatus.FAILED:  # NaN: Optuna would not take it, ending the sweep in a traceback
                job.status, job.return_value = JobStatus.FAILED, TrialFailed(f"error: {reason}", reason)
            if not printed:
                number, named = (OmegaConf.select(job.hydra_cfg or {}, f"hydra.job.{k}")
                                 for k in ("num", "override_dirname"))
                say(f"\nerror: job {number} ({named or 'no overrides'}): {reason}", logging.ERROR, sys.stderr)
            job.__class__ = _ToldJobReturn
            self.sweeper.job_errors.append(job._return_value)
        return jobs


class SummarizedOptunaSweeper(OptunaSweeperImpl):
    """hydra-optuna-sweeper's sweeper with every trial in its summary (see the module's docstring)."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _TellingLauncher(self.launcher, self)
        self.asked: list = []  # this sweep's trials (optuna.Trial), in the order they were asked
        self.job_errors: list = []  # the exceptions of its failed jobs
        for told in [f for f in OPTUNA_LOG.filters if isinstance(f, _OptunaLog)]:  # an earlier sweep's, in-process
            OPTUNA_LOG.removeFilter(told)
        OPTUNA_LOG.addFilter(_OptunaLog(self.job_errors))

    def _configure_trials(self, trials, search_space_distributions, fixed_params):
        self.asked += trials
        return super()._configure_trials(trials, search_space_distributions, fixed_params)

    def sweep(self, arguments) -> None:
        try:
            super().sweep(arguments)
        except Exception as error:
            trials = self._summarize()
            failed = [t for t in trials if t.state != optuna.trial.TrialState.COMPLETE]
            if not failed:
                raise
            first = f"trial {failed[0].number}: {_trial_row(failed[0])['reason']}"
            if all(t.state != optuna.trial.TrialState.COMPLETE for t in trials):
                fail(f"all {len(trials)} trials of the sweep in {self._shown} failed; the first, {first} "
                     f"(every trial's reason: {shown_path(self._folder / RESULTS)})")
            if any(error is e for e in self.job_errors):  # raised by the sweeper for its max_failure_rate
                fail(f"the sweep in {self._shown} stopped: more than hydra.sweeper.max_failure_rate="
                     f"{self.max_failure_rate} of a batch of trials failed; the first, {first} "
                     f"(every trial's reason: {shown_path(self._folder / RESULTS)})")
            raise
        self._summarize()

    @property
    def _folder(self) -> Path:
        return Path(self.config.hydra.sweep.dir)

    @property
    def _shown(self) -> str:
        return shown_path(self._folder)

    def _summarize(self) -> list:
        """Print this sweep's trials, add them to optimization_results.yaml; return them (FrozenTrials)."""
        if not self.asked:
            return []
        numbers = {t.number for t in self.asked}
        trials = [t for t in self.asked[0].study.get_trials(deepcopy=False) if t.number in numbers]
        monitor = self.config.get("monitor") or "value"
        rows = [_trial_row(t) for t in trials]
        lines = [f"Trials of the sweep in {self._shown} ({monitor}; {RESULTS}):"]
        for row in rows:
            if "reason" in row:
                outcome = f"{row['state']}: {row['reason']}"
            else:  # one value, or one per direction of a multi-objective study
                outcome = f"{monitor} " + ", ".join(f"{v:.6g}" for v in row.get("values", [row.get("value")]))
            params = " ".join(f"{k}={v}" for k, v in row["params"].items())
            lines.append(f"  trial {row['number']} (job {Path(row['folder']).name or '?'}): {outcome}  [{params}]")
        say("\n".join(lines))
        path = self._folder / RESULTS
        results = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {"name": "optuna"}
        self._folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "the sweep's results") as tmp:
            OmegaConf.save(OmegaConf.create({**results, "trials": rows}), tmp)
        return trials


STATES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.FAIL: "failed",
          optuna.trial.TrialState.PRUNED: "pruned"}  # others: "not told" (the sweep stopped first)


def _trial_row(trial) -> dict:
    row = {"number": trial.number, "folder": trial.user_attrs.get("folder", ""), "params": dict(trial.params),
           "state": STATES.get(trial.state, "not told")}
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return {**row, **({"value": trial.values[0]} if len(trial.values) == 1 else {"values": trial.values})}
    return {**row, "reason": trial.user_attrs.get(REASON, "the sweep stopped before its result was told")}
