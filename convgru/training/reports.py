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
from convgru.training.images import rows_grid
from convgru.training.metrics import METRICS
from convgru.training.tables import frame_table, skill_columns, skill_forecasts, skill_table
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


def log_hparams_with_metrics(trainer: pl.Trainer, module: pl.LightningModule, metrics: dict[str, float]) -> None:
    """Write the model's hyperparameters with the validation and test metrics they produced to every
    TensorBoard logger (its HPARAMS tab: the runs of a sweep side by side). The data config is left
    out but its frames_in / frames_out and value_range, which the model's hyperparameters lack."""
    hparams = {k: v for k, v in module.hparams.items() if k != "data"}
    data = module.hparams.get("data") or {}
    hparams.update({f"data.{k}": data[k] for k in ("frames_in", "frames_out", "image_size", "value_range")
                    if k in data})
    scores = {k: v for k, v in metrics.items() if k.split("/")[0] in ("val", "test") and math.isfinite(v)}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
            logger.log_hyperparams(hparams, metrics=scores)


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
    """Write metrics.json into the run folder; print where checkpoints, logs and metrics are, and with
    `thresholds` the test's skill scores of the model and of its baselines."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(strict_json(dict(sorted(metrics.items()))))
    checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    print(f"\nRun directory: {folder}")
    print("Checkpoints:", checkpoints or "none", f"(best: {best or 'none'})")
    for logger in trainer.loggers:
        print(f"Logs ({type(logger).__name__}):", logger.log_dir)
    print(f"Metrics: {folder / 'metrics.json'}")
    shown = {k: round(v, 6) for k, v in sorted(metrics.items()) if k.split("/")[0] in ("val", "test")}
    if thresholds:  # the skill scores are in the table below
        shown = {k: v for k, v in shown.items() if k.split("/")[-1].split("_")[0] not in (*SCORES, "fss")}
    shown = {k: v for k, v in shown.items() if not per_lead_key(k)}  # in the weather table below
    print(json.dumps(shown))
    if thresholds:
        print(skill_report(metrics, thresholds, units, "test/"))
    if table := weather_table(metrics, "test/"):
        print(table)


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
    print("\n" + frame_table(per_frame, metrics, [*METRICS, *csi]))
    if thresholds:
        print(skill_report(metrics, thresholds, units))
    if table := weather_table(metrics):
        print(table)
    print(f"\nWrote metrics.json, per_frame.csv, predictions.png, predictions.gif{' and .mp4' if rate else ''} to "
          f"{folder}")
