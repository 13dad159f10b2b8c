"""Error-sweep cases: checkpoints from someone else (configs that would run code, pickles, NaN weights),
resuming, run folders in use and full disks. tests/test_safety.py runs the attacks through every entry point."""

import errno
import subprocess
import sys
import zipfile
from pathlib import Path
from unittest import mock

import torch
from omegaconf import OmegaConf

from conftest import compose_config, tiny
from convgru.training import AtomicCheckpointIO, ForecastModule, cli, train
from convgru.training.checkpoint import stamp
from sweep import Case, assert_kept, checkpoint_run, digest, eval_with, raised, tiny_checkpoint

TARGET = "victim.txt"  # a file of the user's that a malicious checkpoint aims at


def with_hparams(**changes):
    """A tiny checkpoint whose hyperparameters get `changes` (a value None deletes the key)."""
    def write(path: Path) -> None:
        tiny_checkpoint(path)
        checkpoint = torch.load(path, weights_only=True)
        for key, value in changes.items():
            value = value(path.parent) if callable(value) else value
            checkpoint["hyper_parameters"][key] = value
        torch.save(checkpoint, path)
    return write


def truncating_data(folder: Path) -> dict:
    """The data config of issue 13: instantiating it would open the user's file for writing (truncate it)."""
    (folder / TARGET).write_text("the user's notes\n")
    return {"_target_": "builtins.open", "file": str(folder / TARGET), "mode": "w"}


def appending_data(folder: Path) -> dict:
    """Instantiating it would append a line to the user's file (a shell start-up file, say)."""
    (folder / TARGET).write_text("the user's notes\n")
    return {"_target_": "convgru.data.ArrayDataModule", "files": [str(folder / "a.npy")],
            "batch_size": {"_target_": "builtins.print", "_args_": ["echo pwned"],
                           "file": {"_target_": "builtins.open", "file": str(folder / TARGET), "mode": "a"}}}


def env_data(folder: Path) -> dict:
    """A real data config whose cache folder is taken from the environment."""
    return {"_target_": "convgru.data.MovingMNISTDataModule", "image_size": 32, "num_digits": 1,
            "cache_dir": "${oc.env:HOME}/elsewhere"}


def unknown_path_data(folder: Path) -> dict:
    """A real data config whose digit bank names a key that the paths config lacks (`${paths.nope}`)."""
    return {"_target_": "convgru.data.MovingMNISTDataModule", "image_size": 32, "num_digits": 1,
            "digit_bank": "${paths.nope}/digits.npz"}


def forged_key_data(folder: Path) -> dict:
    """A real data config with an extra key holding a line break (a forged error line) and a terminal colour code."""
    return {"_target_": "convgru.data.MovingMNISTDataModule", "image_size": 32, "num_digits": 1,
            "x\nerror: forged \x1b[31m": 1}


SYSTEM_OPTIMIZER = {"name": "adam", "lr": {"_target_": "os.system", "_args_": ["touch pwned"]}}


def config_checkpoint(path: Path) -> None:
    """A checkpoint of the model that tests/conftest.py's tiny train config builds (so resuming it fits)."""
    cfg = compose_config("train", path.parent.parent / "ref", tiny("train"), path.parent.parent / "cache")
    hparams = OmegaConf.to_container(cfg.model, resolve=True)
    hparams.pop("_target_")
    module = ForecastModule(**hparams)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)


def other_weights(path: Path) -> None:
    """The tiny config's checkpoint with weights of another size (edited, or of another version)."""
    config_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    name = next(k for k in checkpoint["state_dict"] if k.endswith("conv_h.weight"))
    checkpoint["state_dict"][name] = torch.zeros(3, 3, 3, 3)
    torch.save(checkpoint, path)


def nan_weights(path: Path) -> None:
    tiny_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    name = next(k for k in checkpoint["state_dict"] if k.endswith("conv_h.weight"))
    checkpoint["state_dict"][name][0, 0, 0, 0] = float("nan")
    torch.save(checkpoint, path)


def other_world_size(path: Path) -> None:
    """The tiny config's checkpoint of a OneCycle run on 2 processes (1 step per epoch each; 2 on one)."""
    config_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint.update(lr_schedulers=[{"total_steps": 1}], convgru=stamp(world_size=2), epoch=0, global_step=1,
                      **{"pytorch-lightning_version": "2.6.0"})
    torch.save(checkpoint, path)


def zip_not_checkpoint(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip archive of something else")


def callback_outside(path: Path) -> None:
    tiny_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["callbacks"] = {"ModelCheckpoint{'monitor': 'val/mse'}": {
        "dirpath": str(path.parent), "best_model_path": str(path), "last_model_path": "/home/user/.bashrc",
        "best_k_models": {}, "kth_best_model_path": "", "best_model_score": None}}
    torch.save(checkpoint, path)


def resume_with(action_overrides=()):
    """train.py ckpt_path=<path> with the tiny model it was saved with."""
    def action(path: Path):
        overrides = cli.quote_non_ascii(tiny("train", [f"ckpt_path={path}", *action_overrides]))
        return train(compose_config("train", path.parent.parent / "run", overrides, path.parent.parent / "cache"))
    return action


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds `folder`'s run lock (as scripts/train.py experiment=quickstart would)."""
    code = ("import sys, time; sys.argv = ['scripts/train.py', 'experiment=quickstart']; "
            "from convgru.training.run_folder import RunLock; "
            f"RunLock({str(folder)!r}).acquire(); print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def folder_in_use(folder: Path) -> str:
    """A second run started into the folder of a run that is still going."""
    run = folder / "run"
    run.mkdir()
    holder = hold_lock(run)
    try:
        before = digest(folder)
        message = raised(lambda: train(compose_config("train", run, tiny("train"), folder.parent / "cache")))
        assert_kept(folder, before)
    finally:
        holder.kill()
        holder.wait()
    return message.replace(str(holder.pid), "<pid>")


def disk_full(folder: Path) -> str:
    """A checkpoint written to a full disk: the write fails part-way, the previous checkpoint stays whole."""
    path = folder / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = digest(folder)

    def full(obj, file):
        Path(file).write_bytes(b"PK\x03\x04 part of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch.object(torch, "save", full), mock.patch("convgru.atomic.free_disk", return_value=1000):
        message = raised(lambda: io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path))
    assert_kept(folder, before)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    return message


CASES = [
    Case("ckpt-config-truncates", "a checkpoint whose data config would open a file for writing",
         "ckpt_path=/data/model.ckpt", checkpoint_run(with_hparams(data=truncating_data), eval_with("num_images=1")),
         r"refused .*model.ckpt: hyper_parameters.data._target_ holds 'builtins.open', not one of convgru's data "
         r"modules"),
    Case("ckpt-config-appends", "a checkpoint whose data config would append to a file",
         "ckpt_path=/data/model.ckpt", checkpoint_run(with_hparams(data=appending_data), eval_with("num_images=1")),
         r"refused .*model.ckpt: hyper_parameters.data.batch_size._target_ holds the Hydra key _target_ "
         r"\(.*'builtins.print'.*\), which would build or call an object"),
    Case("ckpt-config-env", "a checkpoint whose data config reads the environment",
         "ckpt_path=/data/model.ckpt", checkpoint_run(with_hparams(data=env_data), eval_with("num_images=1")),
         r"refused .*model.ckpt: hyper_parameters.data.cache_dir holds the interpolation "
         r"'\$\{oc.env:HOME\}/elsewhere' \(only convgru's own \$\{paths.root_dir\}, .* are kept\)"),
    Case("ckpt-config-unknown-path", "a checkpoint whose data config names a paths key that does not exist",
         "ckpt_path=/data/model.ckpt", checkpoint_run(with_hparams(data=unknown_path_data), eval_with("num_images=1")),
         r"refused .*model.ckpt: hyper_parameters.data.digit_bank holds the interpolation "
         r"'\$\{paths.nope\}/digits.npz' \(only convgru's own \$\{paths.root_dir\}, .* are kept\)"),
    Case("ckpt-config-forged-key", "a checkpoint whose data config holds a key with a line break (and a forged error "
         "line)", "ckpt_path=/data/model.ckpt",
         checkpoint_run(with_hparams(data=forged_key_data), eval_with("num_images=1")),
         r"^the data config stored in .*model.ckpt \(with the command line's data.\* on top\) does not build: "
         r"'data.x\\nerror: forged \\x1b\[31m': not an option of .*MovingMNISTDataModule. Drop it with "
         r"~'data.x\\nerror: forged \\x1b\[31m' on the command line"),
    Case("ckpt-config-system", "a checkpoint whose optimizer config would run a command",
         "ckpt_path=/data/model.ckpt", checkpoint_run(with_hparams(optimizer=SYSTEM_OPTIMIZER), resume_with()),
         r"refused .*model.ckpt: hyper_parameters.optimizer.lr._target_ holds the Hydra key _target_"),
    Case("ckpt-callback-outside", "a checkpoint whose ModelCheckpoint state names files elsewhere",
         "ckpt_path=/data/model.ckpt", checkpoint_run(callback_outside, resume_with()),
         r"refused .*model.ckpt: callbacks.ModelCheckpoint.* names '/home/user/.bashrc', not a .ckpt file in its "
         r"checkpoint folder"),
    Case("ckpt-zip-not-torch", "a zip archive that is not a checkpoint", "ckpt_path=/data/model.ckpt",
         checkpoint_run(zip_not_checkpoint), r"cannot read checkpoint .*model.ckpt: it is a zip archive but not a "
         r"PyTorch checkpoint \(no data.pkl in it"),
    Case("ckpt-nan-weights", "a checkpoint whose weights hold NaN", "ckpt_path=/data/model.ckpt",
         checkpoint_run(nan_weights), r"refused .*model.ckpt: weight net\.\S+conv_h.weight holds NaN \(1 of \d+ "
         r"values\); the run diverged"),
    Case("resume-other-weights", "resuming from a checkpoint whose weights do not fit the model",
         "ckpt_path=/data/model.ckpt", checkpoint_run(other_weights, resume_with()),
         r"the weights in .*model.ckpt do not fit the model: Error\(s\) in loading state_dict for ForecastModule: "
         r"size mismatch for net\.\S+conv_h.weight"),
    Case("resume-other-world-size", "resuming a OneCycle run on another number of processes",
         "ckpt_path=/data/model.ckpt trainer.devices=1 (trained on 2)", checkpoint_run(other_world_size, resume_with()),
         r"OneCycle schedule lasts 1 steps, this run 2: the checkpoint trained on 2 processes and this run has 1 "
         r"\(world size: trainer.devices x trainer.num_nodes\)"),
    Case("run-folder-in-use", "a second run started into the folder of a run that is still going",
         "hydra.run.dir=/data/run (in use)", folder_in_use,
         r"run is in use by another run \(process <pid>: scripts/train.py experiment=quickstart\); two runs in one "
         r"folder would mix"),
    Case("disk-full", "a checkpoint written to a full disk", "paths.log_dir=/data (full)", disk_full,
         r"cannot write the checkpoint last.ckpt in .*: not enough disk space \(it needs 12 bytes, 1000 bytes "
         r"\(1.0 kB\) free\); the previous checkpoints are kept whole"),
]
