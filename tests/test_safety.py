"""Files from someone else cannot hurt the user: a checkpoint whose configs would run code, write or
read the environment is refused by every entry point before anything runs; run folders are locked;
a stopped run leaves a resumable checkpoint; metrics.json is strict JSON; stored paths travel."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import convgru  # noqa: E402
from cases_checkpoints import (  # noqa: E402
    SYSTEM_OPTIMIZER,
    TARGET,
    appending_data,
    env_data,
    hold_lock,
    truncating_data,
    with_hparams,
)
from conftest import ROOT, compose_config, tiny  # noqa: E402
from convgru.training import CheckpointError, cli, evaluate, train  # noqa: E402
from convgru.training.run_folder import LOCK, RunFolderInUse, RunLock  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import export as export_script  # noqa: E402
import predict as predict_script  # noqa: E402

ATTACKS = {
    "truncate": dict(data=truncating_data),
    "append": dict(data=appending_data),
    "environment": dict(data=env_data),
    "os.system": dict(optimizer=SYSTEM_OPTIMIZER),
}


def _files(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _eval(path: Path, out: Path):
    overrides = cli.quote_non_ascii([f"ckpt_path={path}"])
    return evaluate(compose_config("eval", out, overrides, out / "cache"), overrides)


def _resume(path: Path, out: Path):
    return train(compose_config("train", out, tiny("train", [f"ckpt_path={path}"]), out / "cache"))


def _predict(path: Path, out: Path):
    np.save(path.parent / "inputs.npy", np.zeros((3, 1, 16, 16), np.float32))
    predict_script.main([str(path), str(path.parent / "inputs.npy"), str(out / "pred.npy")])


def _export(path: Path, out: Path):
    export_script.main([str(path), str(out / "model.onnx")])


ENTRY_POINTS = {"eval": _eval, "resume": _resume, "predict": _predict, "export": _export,
                "convgru.load": lambda path, out: convgru.load(path)}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_malicious_checkpoint_is_refused_everywhere(attack, entry, tmp_path, monkeypatch, capsys):
    """Refused before anything runs: the user's file byte for byte as it was, nothing written outside
    the run folder (not even $HOME/elsewhere), no command run."""
    home, user, out = tmp_path / "home", tmp_path / "user", tmp_path / "run"
    home.mkdir(), user.mkdir(), out.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(user)  # where `touch pwned` would land
    path = user / "model.ckpt"
    with_hparams(**ATTACKS[attack])(path)
    np.save(user / "a.npy", np.zeros((4, 6, 8, 8), np.float32))
    before = {**_files(home), **_files(user)}
    if entry in ("predict", "export"):
        with pytest.raises(SystemExit) as exit_:
            ENTRY_POINTS[entry](path, out)
        assert exit_.value.code == 2
        message = capsys.readouterr().err.strip().splitlines()[-1]
    else:
        with pytest.raises(CheckpointError) as error:
            ENTRY_POINTS[entry](path, out)
        message = str(error.value)
    assert "refused" in message and str(path) in message and "\n" not in message
    if entry == "predict":
        (user / "inputs.npy").unlink()
    assert {**_files(home), **_files(user)} == before
    assert not (user / "pwned").exists() and not (home / "elsewhere").exists()
    if (user / TARGET).exists():
        assert (user / TARGET).read_text() == "the user's notes\n"


def test_pickled_object_is_named_whatever_torch_says(tmp_path):
    class Payload:
        def __reduce__(self):
            return os.getcwd, ()

    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"refused to load .*model.ckpt: it holds a pickled posix.getcwd"):
        convgru.load(path)


def test_plain_paths_interpolation_is_kept(trained_run, tmp_path):
    """A real checkpoint's data config keeps ${paths.*}; its cache folder is this machine's, not the stored one."""
    from convgru.training.checkpoint import load_checkpoint
    from convgru.training.restore import stored_data_config
    checkpoint = load_checkpoint(trained_run[0] / "checkpoints" / "last.ckpt")
    data = checkpoint["hyper_parameters"]["data"]
    assert data["mnist_root"] == "${paths.data_dir}/mnist" and data["digit_bank"] is None  # None: the bundled bank
    checkpoint["hyper_parameters"]["data"] = {**data, "cache_dir": "/somewhere/else", "download": True,
                                              "digit_bank": "${paths.data_dir}/mnist_5k.npz"}  # convgru 0.2.0's
    assert stored_data_config(checkpoint)["cache_dir"] == "${paths.cache_dir}"
    assert stored_data_config(checkpoint)["download"] is False
    assert stored_data_config(checkpoint)["digit_bank"] is None  # the bank moved from the clone into the package


@pytest.mark.slow
def test_stored_paths_travel(tmp_path, monkeypatch, cache_dir):
    """Trained with data.files=[d/seq.npy] in one folder, evaluated from another: the checkpoint holds
    the absolute path."""
    work = tmp_path / "work"
    (work / "d").mkdir(parents=True)
    np.save(work / "d" / "seq.npy", (np.random.default_rng(0).random((10, 6, 16, 16)) * 255).astype(np.uint8))
    monkeypatch.chdir(work)
    arrays = ["data=arrays", "data.files=[d/seq.npy]", "data.layout=NTHW", "data.frames_in=3", "data.frames_out=2",
              "data.num_workers=0", "data.batch_size=2", "model.net.hidden_sizes=[4,4]", "model.net.stem_channels=4",
              "model.net.kernel_size=3", "trainer=cpu", "trainer.max_epochs=1", "test=false",
              "callbacks.prediction_images.num_sequences=1"]
    train(compose_config("train", tmp_path / "run", arrays, cache_dir))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data"]
    assert stored["files"] == [str(work / "d" / "seq.npy")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    metrics = evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt_path={ckpt}"], cache_dir),
                       [f"ckpt_path={ckpt}"])
    assert np.isfinite(metrics["mse"])


def test_metrics_json_is_strict(trained_run):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    metrics = json.loads((trained_run[0] / "metrics.json").read_text(), parse_constant=refuse)
    assert all(v is None or isinstance(v, (int, float)) for v in metrics.values())


def test_metrics_json_writes_inf_and_nan_as_null():
    from convgru.training.report import strict_json
    text = strict_json({"a": float("inf"), "b": float("nan"), "c": -float("inf"), "d": 1.5})
    assert json.loads(text) == {"a": None, "b": None, "c": None, "d": 1.5}


def test_run_lock_refuses_a_live_run_and_takes_over_a_dead_ones(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
        with RunLock(folder):  # re-entrant in one process
            pass
    assert (folder / LOCK).read_text() == ""  # released: emptied, not removed
    holder = hold_lock(folder)
    try:
        with pytest.raises(RunFolderInUse, match=f"in use by another run \\(process {holder.pid}: "
                                                 "scripts/train.py experiment=quickstart\\)"):
            RunLock(folder).acquire()
    finally:
        holder.kill()  # killed while holding it: the system drops its lock
        holder.wait()
    assert json.loads((folder / LOCK).read_text())["pid"] == holder.pid  # its record is left behind
    with RunLock(folder):  # taken over
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    (folder / LOCK).write_text('{"pid": 12')  # cut short by a kill while it was written
    with RunLock(folder):
        pass


def test_run_lock_is_taken_by_one_of_many_at_once(tmp_path):
    """Processes that start into one folder together: exactly one gets the lock."""
    code = ("import sys, time; from convgru.training.run_folder import RunLock, RunFolderInUse\n"
            "try:\n    RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(3)\n"
            "except RunFolderInUse:\n    print('refused', flush=True)\n")
    (tmp_path / LOCK).write_text('{"pid": 999999999, "host": "x", "command": "a dead run"}')
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
            for _ in range(4)]
    outcomes = sorted(run.communicate(timeout=120)[0].strip() for run in runs)
    assert outcomes == ["held"] + ["refused"] * 3, outcomes


@pytest.mark.slow
def test_second_run_into_a_busy_folder_is_refused_by_the_command_line(tmp_path, cache_dir):
    """Two train.py processes into one hydra.run.dir: the second stops at once, naming the first,
    and leaves the first's files alone."""
    run = tmp_path / "run"
    command = [sys.executable, "scripts/train.py", *tiny("train"), "data.train_size=400", "trainer.max_epochs=3",
               "test=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        while not (run / LOCK).exists():
            assert first.poll() is None and time.monotonic() - start < 120
            time.sleep(0.05)
        config = (run / ".hydra" / "config.yaml")
        while not (run / ".hydra" / "overrides.yaml").exists() or not config.stat().st_size:
            time.sleep(0.05)  # Hydra writes config.yaml, hydra.yaml, then overrides.yaml
        before = config.read_bytes()
        second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        errors = [line for line in second.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and f"process {first.pid}" in errors[0], second.stderr[-2000:]
        assert config.read_bytes() == before
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint(tmp_path, cache_dir):
    """SIGTERM mid-epoch: last.ckpt at the step it stopped, the resume command printed; the resumed
    run (ckpt_path= alone) continues in its folder from that step, says what the rest of the epoch
    repeats, and completes."""
    run, folder = tmp_path / "stopped", tmp_path / "stopped" / "checkpoints"
    command = [sys.executable, "scripts/train.py", *tiny("train"), "data.train_size=240", "trainer.max_epochs=1",
               "test=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"]
    printed = tmp_path / "stdout.txt"
    with open(printed, "w") as stdout:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        while not re.search(r"Epoch 0: .*\| *[1-9]\d*/\d+", printed.read_text()):  # a step done, by the bar
            assert process.poll() is None and time.monotonic() - start < 180, process.stderr.read()[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    saved = torch.load(folder / "last.ckpt", weights_only=True)
    step = saved["global_step"]
    assert 0 < step < 60, step
    resume = [line.strip() for line in stderr.splitlines() if "scripts/train.py" in line and "ckpt_path=" in line]
    assert resume and resume[-1].endswith(f"ckpt_path={folder / 'last.ckpt'}"), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    logs = tmp_path / "logs"  # ckpt_path= alone, as the README shows it: the run continues in its own folder
    result = subprocess.run([*command[:-1], f"paths.log_dir={logs}", f"ckpt_path={folder / 'last.ckpt'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not logs.exists()  # no new run folder
    assert f"Resuming epoch 0 after {step} of its 60 training batches: the rest of it is {60 - step} batches" \
        in result.stdout, result.stdout[-3000:]
    assert "unreliable" not in result.stdout + result.stderr and "weights_only" not in result.stdout
    final = torch.load(folder / "last.ckpt", weights_only=True)
    assert final["global_step"] == 60 and final["epoch"] == 0


def test_eval_never_writes_a_nan_forecast(trained_run, tmp_path, cache_dir):
    """Finite weights that overflow (a damaged or diverged model): eval stops, writing nothing."""
    checkpoint = torch.load(trained_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    for name, tensor in checkpoint["state_dict"].items():
        if tensor.is_floating_point() and "conv" in name and name.endswith("weight"):
            tensor.mul_(1e30)
    path = tmp_path / "overflow.ckpt"
    torch.save(checkpoint, path)
    out = tmp_path / "eval"
    with pytest.raises(FloatingPointError, match=r"overflow.ckpt forecast \d+ NaN or inf values on the test set; "
                                                 "nothing was written"):
        evaluate(compose_config("eval", out, [f"ckpt_path={path}"], cache_dir), [f"ckpt_path={path}"])
    assert not (out / "metrics.json").exists() and not (out / "predictions.png").exists()


@pytest.mark.parametrize("change, message", [
    (lambda c, d: c.update(callbacks={"ModelCheckpoint{}": {"dirpath": str(d), "last_model_path": f"{d}/.."}}),
     r"callbacks.ModelCheckpoint\{\} names '.*/\.\.', not a .ckpt file in its checkpoint folder"),
    (lambda c, d: c.update(callbacks={"ModelCheckpoint{}": {"dirpath": str(d), "best_model_path": f"{d}/x.txt"}}),
     r"names '.*x.txt', not a .ckpt file"),
    (lambda c, d: c.update(state_dict=[1, 2]), r"its state_dict must map names to tensors, found \[1, 2\]"),
    (lambda c, d: c["hyper_parameters"].update(data=["a"]), r"hyper_parameters.data must be a data config"),
    (lambda c, d: c["hyper_parameters"].update(loss=_deep(5000)), "nested too deeply"),
    (lambda c, d: c.update(convgru={"format": 99, "version": "\x1b[31m9\nerror: fake"}),
     r"written by convgru '\\x1b\[31m9\\nerror: fake'"),
])
def test_checkpoint_structure_is_checked(tmp_path, change, message):
    """Files named outside the checkpoint folder (`..` too), odd types, nesting bombs and terminal
    escapes: one line naming the checkpoint, never a traceback or raw control characters."""
    from sweep import tiny_checkpoint
    path = tmp_path / "model.ckpt"
    tiny_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint, tmp_path / "checkpoints")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # to write the nesting bomb
    try:
        torch.save(checkpoint, path)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(CheckpointError, match=message) as error:
        convgru.load(path)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)


def _deep(levels: int):
    value = []
    for _ in range(levels):
        value = [value]
    return value


def _too_long(c):
    c["hyper_parameters"]["future"] = 10**9


def _too_wide(c):
    c["hyper_parameters"]["data"] = {"frames_in": 2, "image_size": 10**6}


@pytest.mark.parametrize("entry,change,message", [
    ("predict", _too_long, "the model of .*model.ckpt needs about 80.0 GB of memory"),
    ("export", _too_long, "the model of .*model.ckpt needs about 80.0 GB of memory"),
    ("export", _too_wide, "the forecast of 1 sequence.s. of 2 frames of 1000000x1000000, 2 frames ahead needs about"),
    ("predict --future", None, "INPUT .*: the forecast of 1 sequence.s. of 3 frames of 16x16, 1000000000 frames ahead"),
])
def test_sizes_from_a_checkpoint_cannot_exhaust_memory(entry, change, message, tmp_path, capsys):
    """A checkpoint's `future` or image size (or --future) so large that the model, the forecast or the
    export would exhaust the machine is refused, in one line, before anything large is allocated."""
    from sweep import tiny_checkpoint
    path = tmp_path / "model.ckpt"
    tiny_checkpoint(path)
    if change:
        checkpoint = torch.load(path, weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, path)
    with pytest.raises(SystemExit):
        if entry == "predict --future":
            np.save(tmp_path / "inputs.npy", np.zeros((3, 1, 16, 16), np.float32))
            predict_script.main([str(path), str(tmp_path / "inputs.npy"), str(tmp_path / "pred.npy"),
                                 "--future", str(10**9)])
        else:
            ENTRY_POINTS[entry](path, tmp_path)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(f"(.*: )?error: {message}", err), err
    assert not (tmp_path / "pred.npy").exists() and not (tmp_path / "model.onnx").exists()


def test_lightning_reads_checkpoints_through_the_checks(tmp_path):
    """Resume and test hand the checkpoint to Lightning after checking it; Lightning's own read goes through
    the same checks, so a file swapped for a malicious one in between is refused, and its callback states never
    reach ModelCheckpoint."""
    from convgru.training.checkpoint import AtomicCheckpointIO
    from sweep import tiny_checkpoint
    path = tmp_path / "model.ckpt"
    tiny_checkpoint(path)
    assert AtomicCheckpointIO().load_checkpoint(path)["hyper_parameters"]["future"] == 2
    with_hparams(data=truncating_data)(path)
    with pytest.raises(CheckpointError, match="refused .*model.ckpt: hyper_parameters.data"):
        AtomicCheckpointIO().load_checkpoint(path)
    assert (tmp_path / TARGET).read_text() == "the user's notes\n"
    weights = tmp_path / ".temp.ckpt"  # what Lightning's spawn launcher passes between processes: a bare state dict
    torch.save({"w": torch.zeros(2)}, weights)
    assert AtomicCheckpointIO().load_checkpoint(weights)["w"].shape == (2,)


def test_a_copied_run_resumes_and_tests_its_own_checkpoints(trained_run, tmp_path, capsys):
    """`cp -a run1 run2`, then resume run2: its last.ckpt names run1's best, which the test after training must
    not load (here run1's is gone: loading it would fail); the best is chosen among run2's own, as one line says."""
    import shutil

    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    shutil.copytree(trained_run[0] / "checkpoints", run1 / "checkpoints")
    last = torch.load(run1 / "checkpoints" / "last.ckpt", weights_only=True)
    for state in (v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")):  # run1's, as it saved
        moved = {str(run1 / "checkpoints" / Path(f).name): v for f, v in state["best_k_models"].items()}
        state.update({k: str(run1 / "checkpoints" / Path(state[k]).name) for k in
                      ("best_model_path", "last_model_path", "kth_best_model_path") if state.get(k)},
                     dirpath=str(run1 / "checkpoints"), best_k_models=moved)
    torch.save(last, run1 / "checkpoints" / "last.ckpt")
    shutil.copytree(run1, run2)
    for file in (run1 / "checkpoints").glob("epoch_*.ckpt"):
        file.unlink()
    before = _files(run2 / "checkpoints")
    metrics = _resume(run2 / "checkpoints" / "last.ckpt", run2)
    assert "test/mse" in metrics
    assert "names checkpoints outside this run's folder" in capsys.readouterr().out
    assert {p: h for p, h in _files(run2 / "checkpoints").items() if p in before} == before  # nothing replaced
