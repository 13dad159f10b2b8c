"""Run folders say what the run is (convgru.training.run_folder.run_dir, the `${run_dir:}` of
convgru/conf/hydra/default.yaml): the experiment or the data and the model, the overrides that differ, then
the time; a training with ckpt_path= of a run's checkpoint continues in that run's folder; an evaluation is
named after the run of its checkpoint."""

import fcntl
import os
import re
from datetime import datetime
from pathlib import Path
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import CONF
from convgru.training.cli import OutputDirCheck, as_text
from convgru.training.paste import hydra_value
from convgru.training.run_folder import LOCK, NAME_BYTES, RunFolderInUse, claim, run_dir, run_name, sweep_dir
from convgru.training.run_folder import TIME as TIME_OF_RUN

TIME = r"_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"


def folder(task: str, overrides, key: str = "run.dir") -> str:
    """hydra.<key> (the run folder; output_subdir: where Hydra writes its record in it) of a composed config."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config = compose(task, overrides=["paths.log_dir=/logs", *overrides], return_hydra_config=True)
        return OmegaConf.select(config.hydra, key)


def test_a_run_is_named_by_what_it_is_then_when():
    assert re.fullmatch(rf"/logs/train/runs/moving_mnist-convgru3{TIME}", folder("train", []))
    assert re.fullmatch(rf"/logs/train/runs/quickstart\+max_steps-100\+lr-0.01{TIME}",
                        folder("train", ["experiment=quickstart", "trainer.max_steps=100", "model.optimizer.lr=0.01"]))
    named = folder("train", ["data=radar_small", "model=convgru1", 'data.files=["/d/a b.h5",/d/c.h5]',
                             "~model.baselines.extrapolation", "hydra.job.chdir=false"])
    assert re.fullmatch(rf"/logs/train/runs/radar_small-convgru1\+files-a.b.h5.c.h5\+no-extrapolation{TIME}", named)
    assert folder("train", ["hydra.run.dir=/mine"]) == "/mine"


def test_names_are_safe_and_short():
    overrides = [f"+model.net.option_{i}=[/a/path/{'x' * 30},{i}]" for i in range(12)] + ["model.loss=bmse+bmae"]
    name = run_name({"data": "moving_mnist", "model": "convgru3"}, overrides)
    assert len(name.encode()) <= NAME_BYTES and name.endswith("-more")
    assert re.fullmatch(r"[A-Za-z0-9._+-]+", name)
    floats = run_name({"experiment": "x"}, ["a.b=1e6", "c=0.00012345678", "d=2.5", "e.0=3"])
    assert floats == "x+b-1e06+c-0.0001235+d-2.5+e.0-3"  # floats to 4 digits, a list's item with its list's name
    cut = "moving_mnist-convgru3+image_size-32+num_digits-1+frames_in-3+11-more"  # a run's name, cut short
    assert run_name({}, ["data.test_size=8"], cut) == "moving_mnist-convgru3+image_size-32+num_digits-1+frames_in-3" \
        "+test_size-8+11-more"  # an evaluation of its checkpoint: one count of what is left out
    assert run_name({}, [], "x" * 300) == "x" * NAME_BYTES  # a long checkpoint file name alone: cut, nothing left out
    path = run_dir("/logs/train/runs", "2026-12-03_16-32-37", "train", {"experiment": "x"}, overrides)
    override = OverridesParser.create().parse_override(f"ckpt_path={path}/checkpoints/last.ckpt")
    assert override.value() == f"{path}/checkpoints/last.ckpt"  # typed as it is in an override


def test_resume_continues_in_the_runs_folder_and_eval_is_named_after_it(tmp_path):
    run = tmp_path / "quickstart+max_steps-100_2026-12-03_16-32-37"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("{}")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    resume = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    new_run = rf"/logs/train/runs/quickstart{TIME}"
    assert re.fullmatch(new_run, folder("train", ["experiment=quickstart", *resume]))  # no lock: another app's
    (run / ".convgru.lock").write_text("")  # a convgru run's marks: its lock, .hydra/ and checkpoints/
    assert folder("train", ["experiment=quickstart", *resume]) == str(run)
    with mock.patch.dict(os.environ, {"RUNS": str(tmp_path)}):  # an interpolation in ckpt_path, as the run reads it
        assert folder("train", ["experiment=quickstart", f"ckpt_path=${{oc.env:RUNS}}/{run.name}/checkpoints/last.ckpt"]
                      ) == str(run)
    assert folder("train", [], "output_subdir") == ".hydra"  # a new run's record; a resume's beside the run's own
    assert re.fullmatch(r"\.hydra/resumed" + TIME, folder("train", ["experiment=quickstart", *resume], "output_subdir"))
    (run / "pretrained.ckpt").write_bytes(b"x")  # a checkpoint where runs do not write theirs
    assert re.fullmatch(new_run, folder("train", ["experiment=quickstart", f"ckpt_path={run / 'pretrained.ckpt'}"]))
    (run / "hpc_ckpt_1.ckpt").write_bytes(b"x")  # Lightning's requeue checkpoint
    assert folder("train", ["experiment=quickstart", f"ckpt_path={run / 'hpc_ckpt_1.ckpt'}"]) == str(run)
    assert re.fullmatch(rf"/logs/eval/runs/quickstart\+max_steps-100\+test_size-8{TIME}",
                        folder("eval", [*resume, "data.test_size=8"]))
    (run / ".hydra" / "config.yaml").unlink()  # a checkpoint outside a run folder: a new run starts from it
    assert re.fullmatch(new_run, folder("train", ["experiment=quickstart", *resume]))


def test_names_show_interpolations_as_typed():
    """An override's interpolation names the run as typed, never by its value: an environment variable may hold a
    secret, or a comma or quote that would not parse again as an override (it stopped the run)."""
    with mock.patch.dict(os.environ, {"TOKEN": "s3cret', x,y"}):
        assert re.fullmatch(rf"/logs/train/runs/quickstart\+token-oc.env.TOKEN\+note-oc.decode.a.1{TIME}",
                            folder("train", ["experiment=quickstart", "+model.token=${oc.env:TOKEN}",
                                             """+model.note='${oc.decode:"{a: 1}"}'"""]))


def hold(folder) -> None:
    """Lock `folder` as another run would (a lock of its own, not this process's RunLock)."""
    Path(folder).mkdir(parents=True)
    fcntl.flock(os.open(Path(folder) / LOCK, os.O_RDWR | os.O_CREAT), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_runs_of_one_name_in_one_second_get_their_own_folders(tmp_path):
    """Runs whose generated names agree (same command, or names made equal by shortening) started in the same
    second: each gets its own folder (`-2`, `-3`...); a folder the user named is refused while in use."""
    run = tmp_path / "quickstart_2026-12-03_16-32-37"
    hold(run)  # another run's, still going
    folder, lock = claim(run, named=False)
    assert folder == run.with_name(f"{run.name}-2")
    lock.release()
    (folder / "metrics.json").write_text("{}")  # an ended run's folder is its own
    folder, lock = claim(run, named=False)
    assert folder == run.with_name(f"{run.name}-3")
    lock.release()
    with pytest.raises(RunFolderInUse):
        claim(run, named=True)
    assert TIME_OF_RUN.sub("", f"{run.name}-3") == "quickstart"  # an evaluation is named after the run

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.log_dir={tmp_path}", "experiment=quickstart"],
                      return_hydra_config=True)
        user = compose("train", overrides=[f"hydra.run.dir={run}-9"], return_hydra_config=True)
    generated = cfg.hydra.run.dir
    hold(generated)
    hold(f"{run}-9")
    check = OutputDirCheck()
    check.on_run_start(cfg)
    assert cfg.hydra.run.dir == f"{generated}-2"
    check.on_run_end(cfg)
    with pytest.raises(SystemExit):
        OutputDirCheck().on_run_start(user)


def test_a_single_runs_folder_is_data(tmp_path):
    """A `${` in a run folder's path (here paths.log_dir's) is never interpolated, also when a run of the same name
    and second holds the folder and this run takes `-2` (as for a sweep's folder)."""
    for text in ["/x/${a}", "/x/\\${a}", "/x/\\\\${a:b}", "/x/$", "/x/\\", "/x/${a}\\${b}"]:
        assert OmegaConf.create({"dir": as_text(text)}).dir == text
    logs = tmp_path / "my logs ${now:%H}"  # typed in Hydra's grammar, as any path can be
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.log_dir={hydra_value(str(logs))}", "experiment=quickstart"],
                      return_hydra_config=True)
    generated = cfg.hydra.run.dir
    assert re.fullmatch(re.escape(f"{logs}/train/runs/quickstart") + TIME, generated)
    hold(generated)
    check = OutputDirCheck()
    check.on_run_start(cfg)
    assert cfg.hydra.run.dir == f"{generated}-2" and Path(f"{generated}-2").is_dir()
    check.on_run_end(cfg)


def launch(logs, command, jobs=None) -> list:
    """What a launcher makes of a sweep: the sweep's config as `-m <command>` composes it, after convgru's callback
    (`OutputDirCheck.on_multirun_start`), and the config of each job `n` as the launcher composes it from the
    sweep's, with the job's overrides `jobs[n]` and its number (Hydra's BasicLauncher.launch, jobs not run), all
    with paths.log_dir=`logs`."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import open_dict

    log_dir = f"paths.log_dir={hydra_value(str(logs))}"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        sweep = loader.load_configuration("train", [log_dir, *command], run_mode=RunMode.MULTIRUN)
        check = OutputDirCheck()
        check.on_multirun_start(sweep)
        configs = [sweep]
        for num, overrides in (jobs or {}).items():
            job = loader.load_sweep_config(sweep, [log_dir, *overrides])
            with open_dict(job):
                job.hydra.job.num = num
            configs.append(job)
        check.on_multirun_end(sweep)
        return configs


def test_a_sweep_is_named_by_what_its_jobs_share_and_each_job_by_its_values(tmp_path):
    fixed = ["experiment=quickstart", "trainer.max_steps=2"]
    command = [*fixed, "model.optimizer.lr=0.001,0.002", "data.batch_size=4,8"]
    logs = tmp_path / "my logs é, [x] ${now:%H}"  # typed in Hydra's grammar, as any path can be
    sweep, job = launch(logs, command, {3: [*fixed, "model.optimizer.lr=0.002", "data.batch_size=8"]})
    folder = sweep.hydra.sweep.dir
    assert re.fullmatch(re.escape(f"{logs}/train/multiruns/quickstart+max_steps-2") + TIME, folder)
    assert job.hydra.sweep.dir == folder  # every job in the sweep's folder, which its own values would not name ...
    assert job.hydra.sweep.subdir == "3+lr-0.002+batch_size-8"  # ... in its own, named by its values
    assert job.hydra.job.override_dirname == "data.batch_size=8,model.optimizer.lr=0.002"  # its error line's
    (Path(folder) / "multirun.yaml").write_text("{}")  # what Hydra's sweepers write first
    started = datetime.strptime(folder[-19:], "%Y-%m-%d_%H-%M-%S")
    with mock.patch("hydra.core.utils.datetime", mock.Mock(now=lambda: started)):  # the same second
        [again] = launch(logs, command)
    assert again.hydra.sweep.dir == f"{folder}-2"

    sweep, job = launch(tmp_path, ["model=convgru1,convgru2"], {0: ["model=convgru2"]})  # a swept model: in the name
    assert re.fullmatch(rf"{tmp_path}/train/multiruns/moving_mnist-convgru1.convgru2{TIME}", sweep.hydra.sweep.dir)
    assert job.hydra.sweep.subdir == "0+model-convgru2"
    trial = ["model.optimizer.lr=0.0012345678", "model.net.hidden_sizes.0=32", "model.loss=mse"]
    optuna = ["hparams_search=optuna", "experiment=quickstart"]
    sweep, job = launch(tmp_path, [*optuna, f"hydra.sweep.dir={tmp_path}/mine"], {0: [*optuna, *trial]})  # its space
    assert sweep.hydra.sweep.dir == job.hydra.sweep.dir == f"{tmp_path}/mine"  # a folder the user named
    assert job.hydra.sweep.subdir == "0+lr-0.001235+hidden_sizes.0-32+loss-mse"
    assert sweep_dir("/logs", "T", {"experiment": "quickstart"}, optuna, sweep.hydra.sweeper.params) == \
        "/logs/quickstart+hparams_search-optuna_T"


def test_a_sweep_jobs_checkpoint_resumes_in_its_folder_and_names_its_evaluation(tmp_path):
    job = tmp_path / "quickstart+max_steps-2_2026-12-03_16-32-37" / "3+lr-0.002+batch_size-8"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("{}")
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (job / ".convgru.lock").write_text("")
    resume = [f"ckpt_path={job / 'checkpoints' / 'last.ckpt'}"]
    assert folder("train", ["experiment=quickstart", *resume]) == str(job)
    assert re.fullmatch(rf"/logs/eval/runs/quickstart\+max_steps-2\+lr-0.002\+batch_size-8{TIME}",
                        folder("eval", resume))
    from convgru.training.paste import paste_command
    pasted = paste_command(None, [("hydra.run.dir", str(job))])  # the resume command after SIGTERM
    assert OverridesParser.create().parse_override(pasted).value() == str(job)
