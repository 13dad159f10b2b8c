"""The error sweep: every bad data file, config value and checkpoint a user can reach from the README
ends in one clear message naming the file or option, what was expected and what was found, with
nothing of the user's written over. docs/errors.md is this table; regenerate it with
`PYTHONPATH=. python tests/test_errors.py` after changing a message. The framework (Case and the
ways to run one) is in sweep.py; cases of one area may live in a cases_<area>.py module of their own,
collected below in the order of the table.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parent))
from sweep import *  # noqa: E402,F403
from sweep import ARRAYS, DOC, FOLDER, ROOT, Case, cli  # noqa: E402

CASES = [
    # --- data files (data=arrays) ---
    Case("missing-file", "a data file that does not exist", "data.files=[/data/nope.npy]",
         data_run({}, ["data.files=[{dir}/nope.npy]"]), r"nope.npy not found"),
    Case("directory", "a folder given as a data file", "data.files=[/data]",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}]"]), r"is a folder: expected a .npy or .npz file"),
    Case("wrong-suffix", "a file that is not .npy/.npz", "data.files=[/data/a.csv]",
         data_run({"a.csv": raw(b"1,2,3\n")}, ["data.files=[{dir}/a.csv]"]), r"a.csv: expected a .npy or .npz"),
    Case("empty-file", "an empty file", "data.files=[/data/a.npy]",
         data_run({"a.npy": raw(b"")}, ["data.files=[{dir}/a.npy]"]), r"a.npy: the file is empty"),
    Case("pickle", "a pickled Python object saved as .npy", "data.files=[/data/a.npy]",
         data_run({"a.npy": raw(pickle.dumps({"frames": [1, 2]}))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy: not a NumPy array file .*never unpickled"),
    Case("object-array", "an array of Python objects (np.save(allow_pickle=True))", "data.files=[/data/a.npy]",
         data_run({"a.npy": lambda p: np.save(p, np.array([{}, None], dtype=object), allow_pickle=True)},
                  ["data.files=[{dir}/a.npy]"]), r"a.npy: holds Python objects \(dtype object\)"),
    Case("truncated-npy", "a .npy cut short (interrupted copy)", "data.files=[/data/a.npy]",
         data_run({"a.npy": truncated(npy(video()))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy: truncated: the header announces \(10, 12, 8, 8\) float32 \(30720 bytes of data\), found \d+"),
    Case("truncated-npz", "an .npz cut short", "data.files=[/data/a.npz]",
         data_run({"a.npz": truncated(lambda p: np.savez(p, frames=video()))}, ["data.files=[{dir}/a.npz]"]),
         r"a.npz: not a valid .npz file"),
    Case("compressed-object-npz", "a compressed .npz of Python objects", "data.files=[/data/a.npz]",
         data_run({"a.npz": lambda p: np.savez_compressed(p, frames=np.array([{}], dtype=object))},
                  ["data.files=[{dir}/a.npz]"]), r"a.npz, array 'frames': holds Python objects"),
    Case("npz-key", "an .npz with several arrays and no key", "data.files=[/data/a.npz]",
         data_run({"a.npz": lambda p: np.savez(p, frames=video(), times=np.arange(12))}, ["data.files=[{dir}/a.npz]"]),
         r"a.npz: expected key to name one of the arrays \['frames', 'times'\], found key=None"),
    Case("empty-array", "an array with no sequences", "data.files=[/data/a.npy]",
         data_run({"a.npy": npy(video(n=0))}, ["data.files=[{dir}/a.npy]"]), r"a.npy: the array is empty"),
    Case("wrong-layout", "(N, T, H, W) frames read as NTCHW", "data.files=[/data/a.npy] data.layout=NTCHW",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.layout=NTCHW"]),
         r"layout NTCHW expects a 5-d array, found shape \(10, 12, 8, 8\)"),
    Case("unknown-layout", "a layout that does not exist", "data.layout=nthw",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.layout=nthw"]),
         r"data.layout: expected one of .*found 'nthw'"),
    Case("wrong-channels", "3-channel frames with data.channels=1", "data.files=[/data/a.npy] data.layout=NTCHW",
         data_run({"a.npy": npy(video(c=3))}, ["data.files=[{dir}/a.npy]", "data.layout=NTCHW"]),
         r"expected channels=1 \(option channels\), found 3"),
    Case("wrong-dtype", "complex numbers", "data.files=[/data/a.npy]",
         data_run({"a.npy": npy(video().astype(np.complex64))}, ["data.files=[{dir}/a.npy]"]),
         r"expected numbers .*found dtype complex64"),
    Case("int16-no-range", "int16 radar data without value_range", "data.files=[/data/a.npy]",
         data_run({"a.npy": npy(video(dtype=np.int16))}, ["data.files=[{dir}/a.npy]"]),
         r"int16 values need value_range=\[low, high\]"),
    Case("too-few-frames", "sequences shorter than frames_in + frames_out", "data.frames_in=10 data.frames_out=10",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.frames_in=10", "data.frames_out=10"]),
         r"expected at least frames_in \+ frames_out = 20 frames per sequence, found 12"),
    Case("mismatched-files", "files with different frame sizes", "data.files=[/data/a.npy,/data/b.npy]",
         data_run({"a.npy": npy(video()), "b.npy": npy(video(h=16))}, ["data.files=[{dir}/a.npy,{dir}/b.npy]"]),
         r"b.npy: expected frames \(1, 8, 8\) float32 like .*a.npy, found \(1, 16, 8\) float32"),
    Case("empty-split", "too few sequences for split", "data.files=[/data/a.npy] (2 sequences)",
         data_run({"a.npy": npy(video(n=2))}, ["data.files=[{dir}/a.npy]"]), r"val split is empty"),
    Case("nan-sampled", "NaN pixels, found when the file is opened", "data.files=[/data/a.npy]",
         data_run({"a.npy": npy(with_value(np.nan, 0, 0))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy, sequence 0: NaN in frame 0 \(1 value\)\. Declare missing pixels with data.missing_value=nan"),
    Case("nan-in-batch", "NaN pixels the sample missed, found in a batch (DataLoader worker)",
         "data.files=[/data/a.npy] data.stride=1 data.num_workers=1",
         data_run({"a.npy": npy(with_value(np.nan, 8, 9))}, ["data.files=[{dir}/a.npy]", "data.stride=1"], True),
         r"a.npy, sequence 8: NaN in target frame 9 \(1 value\)"),
    Case("inf", "inf pixels", "data.files=[/data/a.npy]",
         data_run({"a.npy": npy(with_value(np.inf, 0, 0))}, ["data.files=[{dir}/a.npy]"]),
         r"a.npy, sequence 0: inf in frame 0"),
    Case("nan-not-declared", "NaN pixels while data.missing_value declares -9999", "data.missing_value=-9999",
         data_run({"a.npy": npy(with_value(np.nan, 0, 0))}, ["data.files=[{dir}/a.npy]", "data.missing_value=-9999"]),
         r"a.npy, sequence 0: NaN in frame 0"),
    Case("mask-shape", "a mask_file of the wrong shape", "data.mask_file=/data/mask.npy",
         data_run({"a.npy": npy(video()), "mask.npy": npy(np.ones((5, 5), bool))},
                  ["data.files=[{dir}/a.npy]", "data.mask_file={dir}/mask.npy"]),
         r"mask_file .*mask.npy: expected shape \(H, W\) = \(8, 8\) or the shape \(10, 12, 8, 8\) of .*a.npy, "
         r"found \(5, 5\)"),
    Case("missing-value-type", "a missing_value that is not a number", "data.missing_value=none",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.missing_value=none"]),
         r"data.missing_value: expected null, nan or a number, found 'none'"),
    # --- data options ---
    Case("no-files", "data=arrays without files", "data=arrays",
         data_run({}, []), r"data.files: expected either files .* or train_files/val_files/test_files"),
    Case("files-type", "a number for files", "data.files=5",
         data_run({}, ["data.files=5"]), r"data.files: expected a .npy/.npz path or a list of them, found 5"),
    Case("split-type", "one number for split", "data.split=0.8",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.split=0.8"]),
         r"data.split: expected 3 fractions .*found 0.8"),
    Case("split-sum", "split fractions that do not sum to 1", "data.split=[0.5,0.2,0.2]",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.split=[0.5,0.2,0.2]"]),
         r"data.split: expected 3 fractions .*summing to 1, found \[0.5, 0.2, 0.2\]"),
    Case("value-range-type", "one number for value_range", "data.value_range=70",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.value_range=70"]),
         r"data.value_range: expected \[low, high\] with high > low, found 70"),
    Case("batch-size-zero", "batch_size=0", "data.batch_size=0",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.batch_size=0"]),
         r"data.batch_size: expected an integer >= 1, found 0"),
    Case("batch-size-type", "a word for batch_size", "data.batch_size=eight",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.batch_size=eight"]),
         r"data.batch_size: expected an integer, found 'eight'"),
    Case("stride-zero", "stride=0", "data.stride=0",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.stride=0"]),
         r"data.stride: expected null or an integer >= 1, found 0"),
    Case("clip-type", "a word for a true/false option", "data.clip=maybe",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "data.clip=maybe"]),
         r"data.clip: expected true or false, found 'maybe'"),
    Case("key-of-other-data", "a Moving MNIST key with data=arrays (e.g. from an old experiment)",
         "data=arrays +data.num_digits=1",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "+data.num_digits=1"]),
         r"data.num_digits: not an option of .*ArrayDataModule\. Drop it with ~data.num_digits"),
    Case("key-typo", "a misspelt key added with +", "+data.frame_in=3",
         data_run({"a.npy": npy(video())}, ["data.files=[{dir}/a.npy]", "+data.frame_in=3"]),
         r"data.frame_in: not an option .*\(did you mean data.frames_in\?\)"),
    Case("unknown-key", "a key that does not exist (without +)", "data.frame_in=3",
         data_run({}, ["data.frame_in=3"]), r"Could not override 'data.frame_in'", exact=False),
    Case("unknown-group-option", "a config group option that does not exist", "model=convgru9",
         config_run(["model=convgru9"]), r"Could not find 'model/convgru9'(.|\n)*Available options", exact=False),
    Case("num-digits", "Moving MNIST with 5 digits", "data.num_digits=5",
         config_run(["data.num_digits=5"]), r"data.num_digits: expected 1 to 3, found 5"),
    Case("image-size-type", "a word for image_size", "data.image_size=big",
         config_run(["data.image_size=big"]), r"data.image_size: expected an integer, found 'big'"),
    Case("cache-dir-unwritable", "a Moving MNIST cache folder that cannot be created",
         "paths.cache_dir=/data/a.npy/cache", cache_run,
         r"cannot write the Moving MNIST cache in .*a.npy/cache .*set paths.cache_dir"),
    # --- model, trainer, seed ---
    Case("model-key-type", "a word for a model size", "model.net.kernel_size=big",
         config_run(["model.net.kernel_size=big"]), r"model.net.kernel_size: expected an integer, found 'big'"),
    Case("model-unknown-key", "a key the network does not take", "+model.net.dropout=0.1",
         config_run(["+model.net.dropout=0.1"]), r"model.net.dropout: not an option of .*EncoderForecaster"),
    Case("model-hidden-empty", "no ConvGRU block", "model.net.hidden_sizes=[]",
         config_run(["model.net.hidden_sizes=[]"]), r"model.net.hidden_sizes must name at least one level"),
    Case("loss-name", "a loss that does not exist", "model.loss=ssim",
         config_run(["model.loss=ssim"]), r"model.loss must be one of \['mse', 'l1', 'mse\+l1', 'bmse', 'bmae', 'bmse\+bmae'\], got 'ssim'"),
    Case("lr-type", "a word for the learning rate", "model.optimizer.lr=fast",
         config_run(["model.optimizer.lr=fast"], lambda cfg, module: build_optimizer(
             module.parameters(), module.hparams.optimizer)), r"model.optimizer.lr: expected a number, found 'fast'"),
    Case("trainer-type", "a word for max_epochs", "trainer.max_epochs=ten",
         config_run(["trainer.max_epochs=ten"]), r"trainer.max_epochs: expected an integer or null, found 'ten'"),
    Case("precision", "a precision Lightning does not have", "trainer.precision=17",
         config_run(["trainer.precision=17"]), r"trainer.precision: expected one of .*'bf16-mixed'.*found 17",
         exact=False),
    Case("seed-type", "a word for the seed", "seed=lucky",
         pipeline_run(["seed=lucky"]), r"seed: expected an integer, found 'lucky'"),
    # --- checkpoints ---
    Case("ckpt-missing", "a checkpoint path that does not exist", "ckpt_path=/data/model.ckpt",
         lambda folder: raised(lambda: load_checkpoint(folder / "model.ckpt")), r"checkpoint not found: .*model.ckpt"),
    Case("ckpt-not-torch", "a file that is not a checkpoint", "ckpt_path=/data/model.ckpt",
         checkpoint_run(raw(b"not a checkpoint")), r"cannot read checkpoint .*model.ckpt: it is not a PyTorch "
         r"checkpoint \(expected a .ckpt file written by scripts/train.py\)"),
    Case("ckpt-truncated", "a checkpoint cut short", "ckpt_path=/data/model.ckpt",
         checkpoint_run(truncated(tiny_checkpoint)), r"cannot read checkpoint .*model.ckpt: the file is truncated or "
         r"damaged \(a PyTorch checkpoint is a zip archive and this one is incomplete; an interrupted copy or "
         r"download\?\)"),
    Case("ckpt-weights-only", "plain torch.save weights, not a training checkpoint", "ckpt_path=/data/model.ckpt",
         checkpoint_run(lambda p: torch.save({"weight": torch.zeros(2)}, p)),
         r"model.ckpt is not a Lightning training checkpoint"),
    Case("ckpt-pickled-code", "a checkpoint holding a pickled object (could run code)", "ckpt_path=/data/model.ckpt",
         checkpoint_run(lambda p: torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}, "x": Exploit()}, p)),
         r"refused to load .*model.ckpt: it holds a pickled .*could run code"),
    Case("ckpt-other-model", "resuming a checkpoint of another model",
         "ckpt_path=/data/model.ckpt model.net.hidden_sizes=[8,8]",
         checkpoint_run(tiny_checkpoint, other_model),
         r"does not match the config:\n  model.net.hidden_sizes: checkpoint \[4\], config \[8, 8\]"),
    Case("ckpt-newer-format", "a checkpoint written by a newer convgru", "ckpt_path=/data/model.ckpt",
         checkpoint_run(newer_format), r"model.ckpt was written by convgru 9.0 in checkpoint format 99", exact=False),
    Case("eval-other-model", "evaluating with a model option that the checkpoint contradicts",
         "ckpt_path=/data/model.ckpt model.net.kernel_size=5", checkpoint_run(tiny_checkpoint, eval_with("model.net.kernel_size=5")),
         r"the model in .*model.ckpt does not match the command line:\n  model.net.kernel_size: checkpoint 3, command line "
         r"5\nThe checkpoint defines the model: drop those options \(and any model=/experiment= for another model\)."),
    # --- radar data ---
    Case("thresholds-outside-range", "a score threshold outside the data's value range",
         "data=radar_small data.thresholds=[20,80]", config_run(["data=radar_small", "data.thresholds=[20,80]"]),
         r"data.thresholds: expected thresholds above 0 and at most 70 \(value_range \[0, 70\], the physical values "
         r"that map to 0 and 1\), found 80 in \[20.0, 80.0\]"),
    Case("units-unknown", "a unit convgru does not know", "data=radar_small data.units=inch",
         config_run(["data=radar_small", "data.units=inch"]),
         r"data.units: expected one of \['dBZ', 'mm/h', 'kg/m\^2', 'pixel'\], found 'inch'"),
    Case("loss-thresholds-order", "balanced-loss thresholds not increasing", "experiment=nowcast_quickstart model.loss_thresholds=[5,2]",
         config_run(["experiment=nowcast_quickstart", "model.loss_thresholds=[5,2]", "model.loss_weights=[1,2]"]),
         r"model.loss_thresholds: expected a non-empty, increasing list, found \[5.0, 2.0\]"),
    # --- output folders and the command line ---
    Case("reused-run-dir", "a new run in the folder of an earlier run", "hydra.run.dir=/data/run (used before)",
         reused_run_dir, r"run/checkpoints already holds checkpoints \(last.ckpt\) that this run would write over: "
         r"pick another hydra.run.dir \(by default every run gets a new folder\), or continue that run with "
         r"ckpt_path=.*run/checkpoints/last.ckpt"),
    Case("log-dir-read-only", "a read-only log folder", "paths.log_dir=/data/logs",
         read_only_run, r"hydra.run.dir=.*logs/train/runs/.*: cannot write in .*logs \(read-only or not yours\)"),
    Case("cli-run-dir-under-file", "an output folder inside a file (command line)", "hydra.run.dir=/data/a.npy/run",
         script_run(["hydra.run.dir={dir}/a.npy/run"]),
         r"hydra.run.dir=.*a.npy/run: cannot create this output folder, .*a.npy is a file"),
    Case("cli-key-of-other-data", "an experiment key that data=arrays lacks (command line)",
         "experiment=quickstart data=arrays data.files=[/data/a.npy] +data.num_digits=1",
         script_run(["experiment=quickstart", "data=arrays", "data.files=[{dir}/a.npy]", "data.layout=NTHW",
                     "+data.num_digits=1", "hydra.run.dir={dir}/run"]),
         r"data.num_digits: not an option of data=arrays\. Drop it with ~data.num_digits"),
]


def _collect(*modules: str) -> list:
    """The CASES lists of the cases_<area>.py modules that exist, in this order."""
    import importlib
    found = []
    for name in modules:
        if (Path(__file__).parent / f"{name}.py").exists():
            found += importlib.import_module(name).CASES
    return found


CASES += _collect("cases_checkpoints", "cases_data", "cases_library", "cases_metrics")


def shown(message: str, folder: Path) -> str:
    """The message as docs/errors.md shows it: the folder as /data, the repository as <repo>, one table cell."""
    message = message.replace(str(folder), SHOWN).replace(str(ROOT), "<repo>")
    return message.replace("|", "\\|").replace("\n", "<br>").replace("\t", " ")


def row(case: Case, message: str) -> str:
    return f"| `{case.id}` | {case.what} | `{case.how}` | {message} |"


def run_case(case: Case, tmp: Path) -> str:
    """The case's message as docs/errors.md shows it, after checking it matches `case.expect`."""
    folder = tmp / FOLDER
    folder.mkdir(parents=True)
    message = case.run(folder)
    assert re.search(case.expect, message), message
    return shown(message, folder)


def doc_rows() -> dict[str, str]:
    return {line.split("`")[1]: line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")}


@pytest.mark.filterwarnings("ignore:.*is compressed")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_error_sweep(case, tmp_path):
    """Each case ends in its clear message (naming the file or option), the one docs/errors.md shows."""
    message = run_case(case, tmp_path)
    documented = doc_rows().get(case.id, "")
    stale = f"docs/errors.md is stale for {case.id}; regenerate it: PYTHONPATH=. python tests/test_errors.py"
    if case.exact:
        assert documented == row(case, message), stale
    else:  # words of Hydra, torch or Lightning, which may change with their versions: the essentials
        assert documented.startswith(row(case, "")[:-3]), stale
        assert re.search(case.expect, documented.replace("<br>", "\n")), stale


def test_docs_table_is_the_sweep():
    assert list(doc_rows()) == [case.id for case in CASES]


def test_paths_with_spaces_and_non_ascii_work(tmp_path):
    """experiment=quickstart with data=arrays, a data file and a run folder with spaces and accents, as typed."""
    folder, run = tmp_path / FOLDER, tmp_path / "sortie é" / "run 1"
    folder.mkdir()
    np.save(folder / "séquences 1.npy", video(dtype=np.uint8))
    command = [sys.executable, "scripts/train.py", "experiment=quickstart", "data=arrays",
               f"data.files=[{folder / 'séquences 1.npy'}]", *ARRAYS[1:], "model.net.hidden_sizes=[4,4]",
               "model.net.stem_channels=4", "callbacks.prediction_images.num_sequences=1",
               "+trainer.fast_dev_run=true", f"hydra.run.dir={run}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/mse" in json.loads((run / "metrics.json").read_text())
    assert OmegaConf.load(run / ".hydra" / "config.yaml").data.files == [str(folder / "séquences 1.npy")]


@pytest.mark.parametrize("override, expected", [
    ("data.files=[/tmp/é a/x.npy,/b/ü.npy]", 'data.files=["/tmp/é a/x.npy","/b/ü.npy"]'),
    ("hydra.run.dir=/tmp/日本/run", 'hydra.run.dir="/tmp/日本/run"'),
    ('data.files=["/tmp/é.npy"]', 'data.files=["/tmp/é.npy"]'),
    ("data.files=[/tmp/my data/x.npy]", "data.files=[/tmp/my data/x.npy]"),
    ("-m", "-m"),
])
def test_quote_non_ascii(override, expected):
    assert cli.quote_non_ascii([override]) == [expected]


def test_user_errors_exit_with_status_2_unless_debugging(capsys, monkeypatch):
    monkeypatch.delenv(cli.DEBUG, raising=False)
    with pytest.raises(SystemExit) as exit_:
        with cli.user_errors():
            raise FileNotFoundError("array file /data/a.npy not found")
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[1:] == ["error: array file /data/a.npy not found",
                                                        f"(set {cli.DEBUG}=1 for the traceback)"]
    with pytest.raises(KeyError):  # not a user error: a bug, with its traceback
        with cli.user_errors():
            raise KeyError("bug")
    monkeypatch.setenv(cli.DEBUG, "1")
    with pytest.raises(FileNotFoundError):
        with cli.user_errors():
            raise FileNotFoundError("array file /data/a.npy not found")


HEADER = """# Errors

What a user sees for each bad input reachable from the README: the command line prints one line
`error: <message>` and exits with status 2 (`HYDRA_FULL_ERROR=1` shows the traceback); Hydra's own
errors (an unknown option or key) are printed by Hydra. Nothing of the user's is written over: the
tests check that data files, checkpoints and other files are unchanged after each error.

`/data` stands for the user's folder (the tests use one with a space and a non-ASCII character;
such paths work as typed: the scripts quote non-ASCII override values for Hydra). Not errors: a
compressed `.npz` is read into memory with a warning (it cannot be memory-mapped), and an experiment
combines with any data config (`experiment=quickstart data=arrays 'data.files=[...]'`).

Generated from `tests/test_errors.py`, which fails when this table and the messages differ
(messages worded by Hydra, torch or Lightning are checked for their essentials only): regenerate it
with `PYTHONPATH=. python tests/test_errors.py`.

| Case | What the user did | How (overrides) | Message |
|---|---|---|---|
"""


def write_doc() -> None:
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows.append(row(case, run_case(case, Path(tmp))))
    DOC.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_doc()
