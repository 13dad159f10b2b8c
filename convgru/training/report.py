"""What a run says and writes: the console, and the report of a test.

The console: `say` prints a line (above the progress bar when one is drawn) and logs it to the
`convgru.console` logger, which convgru/conf/hydra/default.yaml sends to the run's log file (train.log /
eval.log) alone, so the file holds what was printed without printing it twice. `RunLog` is the Hydra
callback that sends Lightning's messages and Python's warnings to that file (and the terminal) as well.
Outside the scripts (in Python, in tests) `say` only prints.

The report: `TestReport` collects a test's results (means and per-frame values) from the module as the
test ends; `train_report` and `eval_report` write metrics.json, per_frame.csv, predictions.png and .gif
and print the tables (metrics, per lead time, skill of the model vs its baselines, the fields' scores).
The writers take plain dicts, so nothing is left on the module to read. Given a `Rendering`, both
also write the test's figures (`convgru.training.figures`) into figures/ and, in training, to TensorBoard.
"""

import csv
import json
import logging
import math
import re
import sys
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
from hydra.experimental.callback import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.warnings import PossibleUserWarning
from torchvision.utils import save_image
from tqdm import tqdm

from convgru._checks import shown_path
from convgru.domain.scores import SCORES
from convgru.training.animation import forecast_gif, forecast_video
from convgru.training.images import rows_grid
from convgru.training.metrics import METRICS
from convgru.training.paste import paste_command

# --- the console -------------------------------------------------------------------------------

LOG = logging.getLogger("convgru.console")
WIDTH = 100  # characters of a printed table's lines and titles: whole in a terminal and in the docs' code boxes
LOG.addHandler(logging.NullHandler())  # no handler of the scripts' logging: print only, never Python's lastResort
LOG.propagate = False  # printed already: never again through the root logger's terminal handler
LIBRARIES = ("pytorch_lightning", "lightning_fabric", "lightning")  # their messages: into the run's log too


# Lightning's messages that are not about the run: advertisements ("💡 Tip: ... litlogger / litmodels") and
# "`weights_only` was not set, defaulting to `False`" (said when a full training checkpoint is saved, which
# reads like a security warning; convgru loads every checkpoint with weights_only=True)
NOT_ABOUT_THE_RUN = {"pytorch_lightning.utilities.rank_zero": ("💡 Tip:",),
                     "lightning_fabric.utilities.rank_zero": ("💡 Tip:",),
                     "pytorch_lightning.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",)}


class _Drop(logging.Filter):
    """Drops the records of its logger whose message starts with one of `starts`."""

    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


# Python warnings of Lightning's that are not about the run, or that convgru answers: (message, category, module
# the warning is raised from, "" any), each with why it is left out
WARNINGS_LEFT_OUT = (
    # torch >= 2.10 deprecates `LeafSpec`, which Lightning's CombinedLoader still builds
    # (pytorch_lightning/utilities/_pytree.py), in every fit, validation and test
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"pytorch_lightning\.utilities\._pytree"),
    # Lightning's advice to test on one device, as its sampler repeats samples: the module scores each once
    # (convgru.training.metrics.UnpaddedShard)
    ("Using `DistributedSampler` with the dataloaders", PossibleUserWarning, ""),
    # Lightning's warning that a mid-epoch resume "can cause unreliable results": MidEpochResume says what it does
    ("You're resuming from a checkpoint that ended before the epoch ended", PossibleUserWarning, ""),
    # ModelCheckpoint's note on a folder that holds checkpoints: a new run never writes there (check_fresh), a
    # resumed one continues its own
    (r"Checkpoint directory .* exists and is not empty", Warning, ""),
    # ModelCheckpoint's note on a resumed state from another folder: OwnCheckpoints says what is kept
    (r"The dirpath has changed from", Warning, ""),
)


def quiet_lightning() -> None:
    """Leave out Lightning's messages that are not about the run (NOT_ABOUT_THE_RUN), each by its own
    logger and words, and the warnings of WARNINGS_LEFT_OUT, each by its words, category and the
    module it comes from, so that every other message and warning is printed as before (idempotent)."""
    for name, starts in NOT_ABOUT_THE_RUN.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(starts))
    for message, category, module in WARNINGS_LEFT_OUT:
        warnings.filterwarnings("ignore", message, category, module)


def say(text: str, level: int = logging.INFO, stream=None) -> None:
    """Print `text` on `stream` (stdout) without breaking a progress bar, and log it at `level`."""
    tqdm.write(text, file=stream or sys.stdout)
    LOG.log(level, text)


class RunLog(Callback):
    """Hydra callback: as a job starts, send Python's warnings and Lightning's messages to the root
    logger, whose handlers (convgru/conf/hydra/default.yaml) print them and write them to the run's log file."""

    def on_job_start(self, config, **kwargs) -> None:
        logging.captureWarnings(True)
        for name in LIBRARIES:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)  # Lightning's own terminal handler: the root logger prints instead
            logger.propagate = True


# --- tables --------------------------------------------------------------------------------

def _cell(value: float, width: int, digits: int = 3) -> str:
    return f"{'nan':>{width}}" if value is None or math.isnan(value) else f"{value:{width}.{digits}f}"


def skill_forecasts(scores: dict[str, float], prefix: str = "") -> list[str]:
    """The forecasts that `scores` hold skill scores of: "model" ({prefix}csi_mean), then each baseline
    ({prefix}<baseline>/csi_mean), in the order of `scores`."""
    found = ["model"] if f"{prefix}csi_mean" in scores else []
    for key in scores:
        name, _, score = key.removeprefix(prefix).rpartition("/")
        if key.startswith(prefix) and score == "csi_mean" and name and "/" not in name:
            found.append(name)
    return found


def skill_columns(scores: dict[str, float], prefix: str = "") -> list[tuple[str, str]]:
    """(heading, score name) of every skill score that `scores` holds for the model: CSI, POD, FAR,
    HSS, ETS, SEDI and bias, CSI after each max-pooling (CSI-p4: `csi_pool4`), FSS at each scale (FSS-5: `fss_5px`)."""
    columns = [(name if name == "bias" else name.upper(), name) for name in SCORES]
    names = [key.removeprefix(prefix).removesuffix("_mean") for key in scores
             if key.startswith(prefix) and key.endswith("_mean") and "/" not in key.removeprefix(prefix)]
    pools = sorted(int(n.removeprefix("csi_pool")) for n in names if re.fullmatch(r"csi_pool\d+", n))
    scales = sorted(int(n[4:-2]) for n in names if re.fullmatch(r"fss_\d+px", n))
    return [*columns, *((f"CSI-p{n}", f"csi_pool{n}") for n in pools), *((f"FSS-{n}", f"fss_{n}px") for n in scales)]


def skill_table(scores: dict[str, float], thresholds, units: str | None = None, prefix: str = "",
                width: int = WIDTH) -> str:
    """A row per threshold (and their mean) and forecast (the model, then each baseline), a column per
    skill score (`skill_columns`), from `scores` keyed `{prefix}csi_20` (the model's) and
    `{prefix}persistence/csi_20` (a baseline's; prefix e.g. "test/"). Lines longer than `width`
    characters are split: the categorical scores (CSI ... bias) in one table, the neighbourhood scores
    (pooled CSI, FSS) in a second one of the same rows below it (and so on in chunks that fit)."""
    forecasts, columns = skill_forecasts(scores, prefix), skill_columns(scores, prefix)
    label = 11 + max(8, *(len(name) + 1 for name in forecasts))
    if label + 8 * len(columns) <= width:
        groups = [columns]
    else:
        fit = max(1, (width - label) // 8)
        kinds = ([c for c in columns if "-" not in c[0]], [c for c in columns if "-" in c[0]])  # CSI.., CSI-p4..
        groups = [kind[i:i + fit] for kind in kinds for i in range(0, len(kind), fit)]
    tables = [_skill_rows(scores, thresholds, units, prefix, forecasts, group) for group in groups if group]
    return "\n\n".join(tables)


def _skill_rows(scores, thresholds, units, prefix, forecasts, columns) -> str:
    width = max(8, *(len(name) + 1 for name in forecasts))
    lines = [f"{units or 'threshold':>9}  {'forecast':<{width}}" + "".join(f"{head:>8}" for head, _ in columns)]
    for key in [*(f"{thr:g}" for thr in thresholds), "mean"]:
        for i, forecast in enumerate(forecasts):
            where = prefix if forecast == "model" else f"{prefix}{forecast}/"
            lines.append(f"{key if i == 0 else '':>9}  {forecast:<{width}}"
                         + "".join(_cell(scores.get(f"{where}{name}_{key}"), 8) for _, name in columns))
    return "\n".join(line.rstrip() for line in lines)


def frame_table(per_frame: dict[str, list[float]], means: dict[str, float], columns) -> str:
    """One row per future frame and a row `all` of `means` (means over the frames, skill scores pooled
    over them), one column per name in `columns`."""
    widths = [max(9, len(name) + 1) for name in columns]
    lines = [f"{'frame':>6} " + " ".join(f"{name:>{w}}" for name, w in zip(columns, widths))]
    rows = [(str(t + 1), [per_frame[c][t] for c in columns]) for t in range(len(per_frame[columns[0]]))]
    for label, values in [*rows, ("all", [means[c] for c in columns])]:
        lines.append(f"{label:>6} " + " ".join(_cell(v, w, 4) for v, w in zip(values, widths)))
    return "\n".join(lines)


def metrics_table(metrics: dict[str, float], stages=("val", "test"), first=()) -> str:
    """One row per metric, one column per stage, from `metrics` keyed `val/mse`, `test/mse`, ...;
    rows in the order of `first`, then by name; an empty cell where a stage lacks the metric."""
    names = {key.split("/", 1)[1] for key in metrics if key.split("/", 1)[0] in stages and "/" in key}
    rows = [n for n in first if n in names] + sorted(names - set(first))
    width = max([6, *(len(n) for n in rows)])
    lines = [f"{'metric':<{width}}" + "".join(f"{stage:>12}" for stage in stages)]
    for name in rows:
        cells = [metrics.get(f"{stage}/{name}") for stage in stages]
        lines.append(f"{name:<{width}}" + "".join(f"{'':>12}" if v is None else _cell(v, 12, 4) for v in cells))
    return "\n".join(line.rstrip() for line in lines)


LEAD = r"_([0-9.e+-]+)(h|mo)$"  # a weather score's lead time in hours or calendar months (`TimeStep.leads`)
PER_LEAD = re.compile(r"(^|/)(rmse|acc)_.+" + LEAD)


def per_lead_key(key: str) -> bool:
    """Whether `key` is a weather score at one lead time (`test/rmse_t2m_72h`, `test/rmse_t2m_1mo`)."""
    return bool(PER_LEAD.search(key))


def field_table(metrics: Mapping, prefix: str = "", note: str = "") -> str:
    """Latitude-weighted RMSE and ACC per lead time of the model, persistence and climatology from `metrics`
    keyed `{prefix}rmse_t2m_6h` (or `_1mo`: calendar months), `{prefix}persistence/acc_t2m_6h`, ...; "" when it
    holds none. `note` says which climatology ACC is against, or why ACC and the climatology baseline are left
    out (empty cells)."""
    pattern = re.compile(rf"^{re.escape(prefix)}rmse_(.+)" + LEAD)
    found: dict[str, list[tuple[float, str]]] = {}
    for key in metrics:
        if match := pattern.match(key):
            found.setdefault(match[1], []).append((float(match[2]), match[3]))
    if not found:
        return ""
    columns = [("rmse", ""), ("rmse", "persistence/"), ("rmse", "climatology/"), ("acc", ""), ("acc", "persistence/")]
    heads = ["model", "persist", "clim", "model", "persist"]
    blocks = []
    for name, leads in found.items():
        lines = [f"{'lead':>7} {'RMSE ' + name:^29} {'ACC ' + name:^19}",
                 f"{'':>7} " + " ".join(f"{h:>9}" for h in heads)]
        for lead in sorted(leads) + [None]:
            shown = "all" if lead is None else f"{lead[0]:g}{lead[1]}"
            cells = []
            for score, who in columns:
                value = metrics.get(f"{prefix}{who}{score}_{name}" + ("" if lead is None else f"_{shown}"))
                if value is None:  # not scored (no climatology), or null in a metrics.json
                    cells.append(f"{'':>9}")
                else:
                    cells.append(f"{'nan':>9}" if value != value else f"{value:9.4g}" if score == "rmse"
                                 else f"{value:9.3f}")
            lines.append(f"{shown:>7} " + " ".join(cells))
        blocks.append("\n".join(lines))
    return ("\nScores of the fields on the test set: latitude-weighted RMSE (the variable's units) and ACC, model vs "
            "persistence and climatology of the training period" + (f".\n{note}" if note else "") + ":\n"
            + "\n\n".join(blocks))


# --- the report of a test ----------------------------------------------------------------

BASELINE_TITLES = {"persistence": "persistence (the last input frame repeated)",
                   "extrapolation": "extrapolation (pysteps' optical flow)",
                   "sprog": "sprog (pysteps' S-PROG)",
                   "steps": "steps (pysteps' STEPS ensemble mean)"}


class TestReport(pl.Callback):
    """Keeps the test's results as it ends: `summary` {name: float} (means over the frames, pooled
    skill scores, persistence's as `persistence/csi_20`) and `per_frame` {name: [float per lead time]}."""

    def __init__(self):
        self.summary: dict[str, float] = {}
        self.per_frame: dict[str, list[float]] = {}

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        summary, per_frame = pl_module.test_results()  # before the module logs and resets its metrics
        self.summary = {k: float(v) for k, v in summary.items()}
        self.per_frame = {k: v.tolist() for k, v in per_frame.items()}


def strict_json(metrics: dict) -> str:
    """`metrics` as strict JSON (RFC 8259): NaN (a score with nothing to score) and inf become null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()},
                      indent=2, allow_nan=False)


def skill_report(scores: dict[str, float], thresholds, units: str | None, prefix: str = "") -> str:
    """A title, what the columns are and `skill_table` of the model's and its baselines' scores."""
    forecasts = skill_forecasts(scores, prefix)
    names = [BASELINE_TITLES.get(name, name) for name in forecasts]
    extra = [head for head, _ in skill_columns(scores, prefix) if "-" in head]
    legend = ("\n(CSI-pN: CSI after N x N max-pooling; FSS-N: fractions skill score over N x N pixels)"
              if extra else "")
    title = f"Skill on the test set, {' vs '.join(names)}, thresholds in {units or 'the data units'}"
    return "\n" + textwrap.fill(title, WIDTH) + legend + ":\n" + skill_table(scores, thresholds, units, prefix)


def train_report(trainer: pl.Trainer, best: str, metrics: dict[str, float], folder: Path, thresholds=None,
                 units: str | None = None, figures=None, field_note: str = "") -> None:
    """Write metrics.json into the run folder; print where the run, its checkpoints (best and last),
    logs and metrics are, a table of the validation and test metrics and, with `thresholds`, the test's
    skill scores of the model and of its baselines. `figures` = (per_frame, forecasts, rendering): the
    test's figures in figures/ and, under test/<name>, in TensorBoard (`write_figures`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(strict_json(dict(sorted(metrics.items()))))
    lines = ["", f"Run directory: {_where(folder)}"]
    checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    if checkpoints:
        saved = [f"best: {Path(best).name}"] if best else []
        saved += ["last.ckpt"] if (Path(checkpoints) / "last.ckpt").is_file() else []
        lines.append(f"Checkpoints:   {_where(checkpoints)}" + (f" ({', and '.join(saved)})" if saved else ""))
    for logger in (logger for logger in trainer.loggers if logger.log_dir):  # not fast_dev_run's DummyLogger
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"Logs:          {_where(logger.log_dir)} ({tensorboard_command(folder)})")
        else:
            lines.append(f"Logs:          {_where(logger.log_dir)}")
    lines.append(f"Metrics:       {_where(folder / 'metrics.json')}")
    if figures is not None:
        lines.append(write_figures(folder, *figures, units, trainer.loggers))
    skill = (*SCORES, "fss") if thresholds else ()  # skill scores: in the table below
    shown = {k: v for k, v in metrics.items() if k.split("/")[-1].split("_")[0] not in skill and not per_lead_key(k)}
    lines += ["", metrics_table(shown, first=(*METRICS, "loss"))]  # skill scores: in the table below
    say("\n".join(lines))
    if thresholds:
        say(skill_report(metrics, thresholds, units, "test/"))
    if table := field_table(metrics, "test/", field_note):
        say(table)


def tensorboard_command(folder: Path) -> str:
    """The one TensorBoard command for the run in `folder`, as the README and the docs give it: the runs of its
    task side by side (`tensorboard --logdir logs/train` for logs/train/runs/<run>), or of its sweep
    (multiruns/<sweep>/<job>) or of the folder above a run folder named with hydra.run.dir."""
    above = folder.absolute().parent
    return paste_command(("tensorboard", "--logdir", str(_relative(above.parent if above.name == "runs" else above))))


def _where(path) -> str:
    """`path` relative to the current folder when it is inside it, else absolute; escaped as
    `convgru._checks.shown_path` escapes names that could forge a line of output."""
    return shown_path(_relative(path))


def _relative(path) -> Path:
    """`path` relative to the current folder when it is inside it, else absolute."""
    path = Path(path).absolute()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def write_figures(folder: Path, per_frame, forecasts, rendering, units: str | None = None, loggers=()) -> str:
    """Write the test's figures (`convgru.training.figures.test_figures` of `per_frame`, `forecasts` and
    `rendering`; `units` the thresholds') into `folder`/figures, log them as images test/<name> to each
    TensorBoard logger of `loggers`; returns the line that says where they are (and pysteps' note)."""
    from convgru.training.figures import as_image, field_units, test_figures, write_test_figures  # matplotlib

    figures, note = test_figures(per_frame, forecasts, rendering, units, field_units(rendering))
    out = write_test_figures(folder, figures)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for name, (figure, _) in figures.items():
                logger.experiment.add_image(f"test/{name}", as_image(figure), dataformats="HWC")
            logger.experiment.flush()  # after the test's end: nothing else writes the last events out
    return f"Figures:       {_where(out)} ({', '.join(figures)})" + (f"\n{note}" if note else "")


def eval_report(folder: Path, ckpt_path, metrics, per_frame, forecasts, thresholds=None,
                units: str | None = None, rate=None, figures=None, field_note: str = "") -> None:
    """metrics.json, per_frame.csv (a column per metric, skill score and each baseline's),
    predictions.png and predictions.gif of `forecasts` (inputs, targets, predictions) in `folder`, and
    with `rate` (the frame rate of video data, frames/s) predictions.mp4 of the same frames; on
    stdout a table per future frame (MSE ... PSNR, CSI per threshold) and with `thresholds` the skill
    scores of the model and of its baselines; with `figures` = (forecasts, rendering) the test's figures
    in `folder`/figures (`write_figures`); `field_note` heads the fields' table (`field_table`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(strict_json({"ckpt_path": str(ckpt_path), **metrics}))
    columns = list(per_frame)
    rows = [[frame, *values] for frame, values in enumerate(zip(*(per_frame[c] for c in columns)), start=1)]
    with open(folder / "per_frame.csv", "w", newline="") as file:
        csv.writer(file).writerows([["frame", *columns], *([f, *(f"{v:.6f}" for v in vs)] for f, *vs in rows)])
    x, y, pred = forecasts
    lead = figures[1].lead if figures is not None else None  # the data's time step, where known
    save_image(rows_grid(x, y, pred, lead), folder / "predictions.png")
    forecast_gif(folder / "predictions.gif", x, pred, y.nan_to_num(0.0), lead=lead)
    if rate:
        forecast_video(folder / "predictions.mp4", x, pred, y.nan_to_num(0.0), rate, lead=lead)
    csi = [c for c in columns if re.fullmatch(r"csi_[^_]+", c.split("/")[-1]) and not c.endswith("_mean")]
    say("\n" + frame_table(per_frame, metrics, [*METRICS, *csi]))
    if thresholds:
        say(skill_report(metrics, thresholds, units))
    if table := field_table(metrics, note=field_note):
        say(table)
    say(f"\nWrote metrics.json, per_frame.csv, predictions.png, predictions.gif{' and .mp4' if rate else ''} to "
        f"{_where(folder)}")
    if figures is not None:
        say(write_figures(folder, per_frame, *figures, units))
