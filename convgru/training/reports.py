"""What a run writes and prints after its test: metrics.json, per_frame.csv, predictions.png and .gif,
the per-frame table and the skill table of the model vs its baselines (persistence, extrapolation).

`TestReport` is the callback that collects the test's results (means and per-frame values) from the
module as the test ends; the writers take plain dicts, so nothing is left on the module to read.
"""

import csv
import json
import math
import re
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import save_image

from convgru.domain.scores import SCORES
from convgru.training.animation import forecast_gif, forecast_video
from convgru.training.console import say
from convgru.training.images import rows_grid
from convgru.training.metrics import METRICS
from convgru.training.tables import frame_table, metrics_table, skill_columns, skill_forecasts, skill_table
from convgru.training.weather import per_lead_key, weather_table

BASELINE_TITLES = {"persistence": "persistence (the last input frame repeated)",
                   "extrapolation": "extrapolation (pysteps' optical flow)"}


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
    return (f"\nSkill on the test set, {' vs '.join(names)}, thresholds in {units or 'the data units'}{legend}:\n"
            + skill_table(scores, thresholds, units, prefix))


def train_report(trainer: pl.Trainer, best: str, metrics: dict[str, float], folder: Path, thresholds=None,
                 units: str | None = None) -> None:
    """Write metrics.json into the run folder; print where the run, its checkpoints (best and last),
    logs and metrics are, a table of the validation and test metrics and, with `thresholds`, the test's
    skill scores of the model and of its baselines."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(strict_json(dict(sorted(metrics.items()))))
    lines = ["", f"Run directory: {_shown(folder)}"]
    checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    if checkpoints:
        saved = [f"best: {Path(best).name}"] if best else []
        saved += ["last.ckpt"] if (Path(checkpoints) / "last.ckpt").is_file() else []
        lines.append(f"Checkpoints:   {_shown(checkpoints)}" + (f" ({', and '.join(saved)})" if saved else ""))
    for logger in (logger for logger in trainer.loggers if logger.log_dir):  # not fast_dev_run's DummyLogger
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"Logs:          {_shown(logger.log_dir)} (tensorboard --logdir {_shown(folder.parent)})")
        else:
            lines.append(f"Logs:          {_shown(logger.log_dir)}")
    lines.append(f"Metrics:       {_shown(folder / 'metrics.json')}")
    skill = (*SCORES, "fss") if thresholds else ()  # skill scores: in the table below
    shown = {k: v for k, v in metrics.items() if k.split("/")[-1].split("_")[0] not in skill and not per_lead_key(k)}
    lines += ["", metrics_table(shown, first=(*METRICS, "loss"))]  # skill scores: in the table below
    say("\n".join(lines))
    if thresholds:
        say(skill_report(metrics, thresholds, units, "test/"))
    if table := weather_table(metrics, "test/"):
        say(table)


def _shown(path) -> str:
    """`path` relative to the current folder when it is inside it, else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def eval_report(folder: Path, ckpt_path, metrics, per_frame, forecasts, thresholds=None,
                units: str | None = None, rate=None) -> None:
    """metrics.json, per_frame.csv (a column per metric, skill score and each baseline's),
    predictions.png and predictions.gif of `forecasts` (inputs, targets, predictions) in `folder`, and
    with `rate` (the frame rate of video data, frames/s) predictions.mp4 of the same frames; on
    stdout a table per future frame (MSE ... PSNR, CSI per threshold) and with `thresholds` the skill
    scores of the model and of its baselines."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(strict_json({"ckpt_path": str(ckpt_path), **metrics}))
    columns = list(per_frame)
    rows = [[frame, *values] for frame, values in enumerate(zip(*(per_frame[c] for c in columns)), start=1)]
    with open(folder / "per_frame.csv", "w", newline="") as file:
        csv.writer(file).writerows([["frame", *columns], *([f, *(f"{v:.6f}" for v in vs)] for f, *vs in rows)])
    x, y, pred = forecasts
    save_image(rows_grid(x, y, pred), folder / "predictions.png")
    forecast_gif(folder / "predictions.gif", x, pred, y.nan_to_num(0.0))
    if rate:
        forecast_video(folder / "predictions.mp4", x, pred, y.nan_to_num(0.0), rate)
    csi = [c for c in columns if re.fullmatch(r"csi_[^_]+", c.split("/")[-1]) and not c.endswith("_mean")]
    say("\n" + frame_table(per_frame, metrics, [*METRICS, *csi]))
    if thresholds:
        say(skill_report(metrics, thresholds, units))
    if table := weather_table(metrics):
        say(table)
    say(f"\nWrote metrics.json, per_frame.csv, predictions.png, predictions.gif{' and .mp4' if rate else ''} to "
        f"{_shown(folder)}")
