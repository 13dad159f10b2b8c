"""Commands convgru prints for the user to paste (`convgru.training.paste.paste_command`): the SIGTERM resume
command, the slow-run warning's alternative, the model-mismatch advice, the reused run folder's advice and the
tensorboard command run as printed, for run folders with any character."""

import shlex
import subprocess
from types import SimpleNamespace
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from conftest import CONF
from convgru.training.callbacks import SlowRunWarning, resume_command
from convgru.training.paste import hydra_value, paste_command
from convgru.training.run_folder import check_fresh_folder

NASTY = ["runs/a;b", "runs/a`whoami`", "runs/a,b", "runs/it's", 'runs/say "hi"', "runs/a b", "runs/back\\slash\\",
         "runs/$HOME", "runs/${now:%H}", "runs/a\\${now:%H}", "runs/é=1", "runs/[x]", "runs/(x)", "runs/~x", "runs/#1",
         "runs/\\'"]


def parsed(command: str) -> dict:
    """{key: value} of a pasted command as the shell splits it and Hydra reads it (interpolations resolved)."""
    words = shlex.split(command)
    assert words[:2] == ["python", "scripts/train.py"]
    values = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(words[2:])}
    return OmegaConf.to_container(OmegaConf.create({"v": values}), resolve=True)["v"]


@pytest.mark.parametrize("folder", NASTY)
def test_resume_command_runs_as_printed(folder, tmp_path):
    run = str(tmp_path / folder)
    hydra = SimpleNamespace(runtime=SimpleNamespace(output_dir=run), mode=RunMode.RUN,
                            overrides=SimpleNamespace(task=["data.batch_size=2", "hydra.run.dir=old"]))
    with mock.patch.object(HydraConfig, "initialized", return_value=True), \
            mock.patch.object(HydraConfig, "get", return_value=hydra):
        command = resume_command(f"{run}/checkpoints/last.ckpt")
    assert parsed(command) == {"data.batch_size": 2, "hydra.run.dir": run, "ckpt_path": f"{run}/checkpoints/last.ckpt"}


def test_a_sweep_jobs_resume_command_resumes_that_job_alone(tmp_path):
    """A trial of hparams_search=optuna (which sets hydra.mode=MULTIRUN) resumes as one run in its job's folder."""
    job = str(tmp_path / "quickstart+hparams_search-optuna_2026-12-03_16-32-37" / "3+lr-0.002+loss-mse")
    task = ["hparams_search=optuna", "experiment=quickstart", "model.optimizer.lr=0.002", "model.loss=mse"]
    hydra = SimpleNamespace(runtime=SimpleNamespace(output_dir=job), mode=RunMode.MULTIRUN,
                            overrides=SimpleNamespace(task=task))
    with mock.patch.object(HydraConfig, "initialized", return_value=True), \
            mock.patch.object(HydraConfig, "get", return_value=hydra):
        command = resume_command(f"{job}/checkpoints/last.ckpt")
    overrides = shlex.split(command)[2:]
    assert parsed(command) == {"hparams_search": "optuna", "experiment": "quickstart", "model.optimizer.lr": 0.002,
                               "model.loss": "mse", "hydra.run.dir": job, "hydra.mode": "RUN",
                               "ckpt_path": f"{job}/checkpoints/last.ckpt"}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose("train", overrides=overrides, return_hydra_config=True)
    assert config.hydra.mode == RunMode.RUN and config.hydra.run.dir == job


@pytest.mark.parametrize("value", [*NASTY, 1, 2.5, True, None, [4, 8], "1e3", "true", "null", "[x]"])
def test_values_are_read_back(value):
    assert parsed(paste_command("train", [("k", value)])) == {"k": value}
    assert hydra_value(value) == hydra_value(value)  # plain text where the grammar reads it as it is
    assert hydra_value("plain/path-1.ckpt") == "plain/path-1.ckpt" and hydra_value([4, 4]) == "[4,4]"


def test_slow_run_alternative_is_a_command():
    assert SlowRunWarning().alternative.startswith("python scripts/train.py experiment=quickstart ")


@pytest.mark.parametrize("folder", [*NASTY, "runs/a\nerror: forged", "runs/tab\there", "runs/nel\x85x"])
def test_tensorboard_command_runs_as_printed(folder):
    command = paste_command(("tensorboard", "--logdir", folder))
    assert "\n" not in command and command.isprintable()  # one line, nothing forged
    words = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], capture_output=True, text=True, check=True)
    assert words.stdout.split("\0")[:-1] == ["tensorboard", "--logdir", folder]


@pytest.mark.parametrize("folder", NASTY)
def test_reused_run_folder_advice_runs_as_printed(folder, tmp_path):
    checkpoints = tmp_path / folder / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").touch()
    with pytest.raises(ValueError) as error:
        check_fresh_folder(checkpoints, None)
    advice = str(error.value).rpartition("continue that run with ")[2]
    assert parsed("python scripts/train.py " + advice) == {"ckpt_path": str(checkpoints / "last.ckpt")}
