"""Error-sweep cases of the command line checked before Hydra runs (convgru.training.overrides): a key the
config lacks, `+` on a key it has, an option a group lacks, a group choice that an experiment overrides,
a GPU trainer on a machine without a GPU, and a --config-dir that is not a folder that can be read (with one, the
same checks); each stops before Hydra creates a run folder."""

import io
import os
from contextlib import nullcontext, redirect_stderr
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from conftest import CONF
from convgru import commands
from convgru.training import overrides
from sweep import Case, predict_run, raised, script_run, tiny_checkpoint, video


def command_line(args, gpu: bool = False):
    """check_command_line of scripts/train.py on `args` ({dir}: the folder), as on a machine with(out) a GPU."""
    def run(folder: Path) -> str:
        with mock.patch("torch.cuda.is_available", return_value=gpu):
            return raised(lambda: overrides.check_command_line(
                CONF, "train", [a.replace("{dir}", str(folder)) for a in args]))
    return run


def convgru_command(args):
    """The `convgru` command with `args`, in-process: the message of its one `error:` line (exit status 2)."""
    def run(folder: Path) -> str:
        err = io.StringIO()
        with redirect_stderr(err):
            try:
                commands.main(args)
            except SystemExit as exit_info:
                assert exit_info.code == 2, exit_info.code
        lines = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, err.getvalue()
        return lines[0][len("error: "):]
    return run


def no_run_folder(args):
    """script_run of `args` with hydra.run.dir={dir}/run; the run folder must not have been created."""
    script = script_run([*args, "hydra.run.dir={dir}/run"])

    def run(folder: Path) -> str:
        message = script(folder)
        assert not (folder / "run").exists(), "a run folder was left behind"
        return message
    run.slow = True
    return run


def config_dir_command(args, make=None, unreadable: bool = False):
    """`convgru_command(args)` ({dir}: the folder) after `make(folder)`; `unreadable`: the folder {dir}/mine
    without read and search permission (as root, whom permissions do not stop, os.access is made to say so)."""
    def run(folder: Path) -> str:
        if make is not None:
            make(folder)
        command = convgru_command([a.replace("{dir}", str(folder)) for a in args])
        if not unreadable:
            return command(folder)
        (folder / "mine").chmod(0o000)
        try:
            with mock.patch.object(overrides.os, "access", lambda *a: False) if os.access(folder / "mine", os.R_OK) \
                    else nullcontext():
                return command(folder)
        finally:
            (folder / "mine").chmod(0o755)
    return run


def own_experiment(folder: Path) -> None:
    """A user's config folder {dir}/mine holding experiment/mine.yaml (the quickstart with one more epoch)."""
    (folder / "mine" / "experiment").mkdir(parents=True)
    (folder / "mine" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - quickstart\ntrainer:\n  max_epochs: 2\n")


FORGED = "v\nerror: forged"  # a name that would print a line of its own


def deploy_files(*names, checkpoint=tiny_checkpoint):
    """A tiny checkpoint (written by `checkpoint`) and frames in the folder; `names` ({dir}: the folder) as
    the arguments after CKPT."""
    def prepare(folder: Path) -> list:
        checkpoint(folder / "model.ckpt")
        np.save(folder / "in.npy", video(n=1, t=3))
        return [folder / "model.ckpt", *(name.replace("{dir}", str(folder)) for name in names)]
    return prepare


def not_utf8_experiment(folder: Path) -> None:
    """{dir}/mine/experiment/mine.yaml in Latin-1 (a comment with an é)."""
    (folder / "mine" / "experiment").mkdir(parents=True)
    (folder / "mine" / "experiment" / "mine.yaml").write_bytes(b"trainer:\n  max_epochs: 2  # caf\xe9\n")


def stored_image_size(size):
    """A tiny checkpoint whose stored data config (data=moving_mnist) has image_size `size`."""
    def write(path: Path) -> None:
        tiny_checkpoint(path)
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["hyper_parameters"]["data"] = {"_target_": "convgru.data.MovingMNISTDataModule", "frames_in": 3,
                                                  "image_size": size}
        torch.save(checkpoint, path)
    return write


CASES = [
    Case("cli-missing-key", "a key the config lacks, without +", "trainer.num_sanity_val_steps=0",
         command_line(["trainer.num_sanity_val_steps=0"]),
         r"^trainer.num_sanity_val_steps=0: the config has no key .*write \+trainer.num_sanity_val_steps=0 "
         r"\(or \+\+trainer.num_sanity_val_steps=0"),
    Case("cli-interpolation-missing-key", "an interpolation to a key the config lacks",
         "'data.cache_dir=${paths.nope}/c'",
         command_line(["data.cache_dir=${paths.nope}/c"]),
         r"^data.cache_dir=\$\{paths.nope\}/c: the interpolation \$\{paths.nope\} refers to paths.nope, a key the "
         r"config does not have; did you mean \$\{paths.output_dir\}\?"),
    Case("cli-missing-key-typo", "a misspelt key, without +", "data.frame_in=3", command_line(["data.frame_in=3"]),
         r"no key data.frame_in \(did you mean data.frames_in\?\)"),
    Case("cli-add-existing-key", "+ on a key the config has", "+trainer.max_epochs=3",
         command_line(["+trainer.max_epochs=3"]), r"already has trainer.max_epochs; write trainer.max_epochs=3"),
    Case("cli-unknown-option", "a group option that does not exist (command line)", "model=convgru9",
         command_line(["model=convgru9"]), r"^model=convgru9: model has no option 'convgru9'; its options are "),
    Case("cli-missing-key-in-sweep", "a key the config lacks, in a sweep", "-m trainer.max_epoch=1,2",
         command_line(["-m", "trainer.max_epoch=1,2"]), r"the config has no key trainer.max_epoch "),
    Case("cli-sweep-without-m", "a sweep without -m", "model=convgru1,convgru2",
         command_line(["model=convgru1,convgru2"]),
         r"^model=convgru1,convgru2: a sweep of several values runs with -m \(--multirun\)"),
    Case("cli-choice-overridden", "a data option whose frames the experiment sets", "experiment=quickstart data=radar",
         command_line(["experiment=quickstart", "data=radar"]),
         r"^data=radar: experiment=quickstart sets data.frames_in=5, data.frames_out=5, overriding radar's 13, 12"),
    Case("cli-choice-overridden-sweep", "a sweep of data options, one of them overridden by the experiment",
         "-m experiment=quickstart data=arrays,radar",
         command_line(["-m", "experiment=quickstart", "data=arrays,radar"]),
         r"^data=radar: experiment=quickstart sets data.frames_in=5"),
    Case("cli-gpu-without-gpu", "trainer=gpu on a machine without a GPU", "trainer=gpu", command_line(["trainer=gpu"]),
         r"^trainer.accelerator=gpu \(trainer=gpu\): no GPU was found on this machine .*add trainer=cpu"),
    Case("cli-gpu-experiment-without-gpu", "experiment=shi2017 (a GPU recipe) without a GPU", "experiment=shi2017",
         command_line(["experiment=shi2017"]), r"\(trainer=gpu of experiment=shi2017\): no GPU was found"),
    Case("cli-missing-key-script", "a key the config lacks (scripts/train.py: one line, no run folder)",
         "trainer.num_sanity_val_steps=0", no_run_folder(["trainer.num_sanity_val_steps=0"]),
         r"write \+trainer.num_sanity_val_steps=0"),
    Case("cli-config-dir-missing", "--config-dir naming a folder that does not exist",
         "convgru train --config-dir /data/mine experiment=mine",
         config_dir_command(["train", "--config-dir", "{dir}/mine", "experiment=mine"]),
         r"^--config-dir .*/mine: expected a folder of your configs \(DIR/<group>/<option>.yaml, such as "
         r"DIR/experiment/mine.yaml\), found nothing there$"),
    Case("cli-config-dir-file", "--config-dir naming a file", "convgru train --config-dir=/data/mine.yaml",
         config_dir_command(["train", "--config-dir={dir}/mine.yaml"],
                            lambda folder: (folder / "mine.yaml").write_text("a: 1\n")),
         r"^--config-dir .*/mine.yaml: expected a folder of your configs .*, found a file$"),
    Case("cli-config-dir-unreadable", "--config-dir naming a folder that cannot be read",
         "convgru train -cd /data/mine experiment=mine (chmod 000)",
         config_dir_command(["train", "-cd", "{dir}/mine", "experiment=mine"], own_experiment, unreadable=True),
         r"^--config-dir .*/mine: expected a folder of your configs .*, found a folder that cannot be read"),
    Case("cli-config-dir-missing-key", "a key the config lacks, with an experiment from --config-dir",
         "convgru train --config-dir /data/mine experiment=mine trainer.max_epoch=1",
         config_dir_command(["train", "--config-dir", "{dir}/mine", "experiment=mine", "trainer.max_epoch=1"],
                            own_experiment),
         r"^trainer.max_epoch=1: the config has no key trainer.max_epoch \(did you mean trainer.max_epochs\?\)"),
    Case("cli-unknown-command", "a command the convgru command lacks", "convgru trian experiment=quickstart",
         convgru_command(["trian", "experiment=quickstart"]),
         r"^expected a command, one of train, eval, predict, export; found 'trian'$"),
    Case("predict-input-forged-name", "predict with an INPUT whose name holds a line break (and a forged error line)",
         "convgru predict model.ckpt $'/data/v\\nerror: forged.mp4' out.npy",
         predict_run(deploy_files(f"{{dir}}/{FORGED}.mp4", "{dir}/out.npy")),
         r"^INPUT '.*/v\\nerror: forged.mp4': file not found$"),
    Case("predict-output-forged-name", "predict to an OUTPUT in a folder whose name holds a line break",
         "convgru predict model.ckpt in.npy $'/data/v\\nerror: forged/out.npy'",
         predict_run(deploy_files("{dir}/in.npy", f"{{dir}}/{FORGED}/out.npy")),
         r"^OUTPUT '.*/v\\nerror: forged/out.npy': the folder '.*/v\\nerror: forged' does not exist$"),
    Case("export-output-forged-name", "export to an OUT in a folder whose name holds a line break",
         "convgru export model.ckpt $'/data/v\\nerror: forged/x.onnx'",
         predict_run(deploy_files(f"{{dir}}/{FORGED}/x.onnx"), command="export"),
         r"^OUT '.*/v\\nerror: forged/x.onnx': the folder '.*/v\\nerror: forged' does not exist$"),
    Case("export-stored-image-size", "export a checkpoint whose stored data.image_size is not a frame size",
         "convgru export model.ckpt x.onnx (data.image_size: [48])",
         predict_run(deploy_files("{dir}/x.onnx", checkpoint=stored_image_size([48])), command="export"),
         r"^CKPT .*model.ckpt: its stored data.image_size: expected an int >= 1 or a pair \(H, W\) of them, "
         r"got \[48\]$"),
    Case("predict-stored-image-size", "predict with a checkpoint whose stored data.image_size is an interpolation",
         "convgru predict model.ckpt in.npy out.npy (data.image_size: '${paths.data_dir}')",
         predict_run(deploy_files("{dir}/in.npy", "{dir}/out.npy", checkpoint=stored_image_size("${paths.data_dir}"))),
         r"^CKPT .*model.ckpt: its stored data.image_size: expected an int >= 1 or a pair \(H, W\) of them, "
         r"got '\$\{paths.data_dir\}'$"),
    Case("cli-help-config-not-utf8", "--help GROUP with a config in --config-dir that is not UTF-8",
         "convgru train --help experiment --config-dir /data/mine",
         config_dir_command(["train", "--help", "experiment", "--config-dir", "{dir}/mine"], not_utf8_experiment),
         r"^.*/mine/experiment/mine.yaml: expected a YAML config in UTF-8, found bytes that are not UTF-8 "
         r"\(invalid continuation byte at byte 31\)$"),
    Case("cli-help-config-dir-file", "--help GROUP with a --config-dir that is a file",
         "convgru train --help experiment --config-dir=/data/mine.yaml",
         config_dir_command(["train", "--help", "experiment", "--config-dir={dir}/mine.yaml"],
                            lambda folder: (folder / "mine.yaml").write_text("a: 1\n")),
         r"^--config-dir .*/mine.yaml: expected a folder of your configs .*, found a file$"),
    Case("cli-help-topic-forged", "--help with a TOPIC holding a line break (and a forged error line)",
         "convgru train --help $'x\\nerror: forged'", convgru_command(["train", "--help", "x\nerror: forged"]),
         r"^--help 'x\\nerror: forged': expected a config group \(one of .*\), GROUP=OPTION .*; "
         r"found 'x\\nerror: forged'$"),
]
