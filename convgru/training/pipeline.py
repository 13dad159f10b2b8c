"""Train and evaluate from a composed Hydra config (what scripts/train.py and eval.py run)."""

import csv
import json
import logging
import math
import signal
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torchvision.utils import save_image

from convgru import EncoderForecaster
from convgru.training.checkpoint import (check_model_config, check_weights_fit, load_checkpoint,
                                         module_from_checkpoint, portable_data_config, stored_data_config)
from convgru.training.animation import forecast_gif
from convgru.training.images import first_forecasts, rows_grid
from convgru.training.metrics import METRICS
from convgru.training.options import check_options, full_names, instantiate
from convgru.training.paths import register_resolvers
from convgru.training.run_folder import RunLock, check_fresh
from convgru.domain.scores import SCORES
from convgru.training.tables import frame_table, skill_table

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None, name: str) -> list:
    """Instantiate every entry of a config group that has a `_target_` (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry, f"{name}.{key}") for key, entry in group.items() if entry and "_target_" in entry]


def _build(cfg: DictConfig, callbacks: bool, module=None):
    """Seed, then the datamodule, the ForecastModule (plain-typed hparams, holding the data config
    with its interpolations; `module` if given), loggers and trainer; every option is checked against
    the class it configures first (unknown keys, wrong types)."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ValueError(f"seed: expected an integer, found {cfg.seed!r}")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, "data")
    if module is None:  # a partial, so that the data config keeps its interpolations as text
        net = OmegaConf.to_container(cfg.model.net, resolve=True)
        check_options(net, EncoderForecaster, "model.net")
        make_module = instantiate(cfg.model, "model", _convert_="all", _partial_=True)
        with full_names(OmegaConf.to_container(cfg.model, resolve=True), "model"):
            module = make_module(data=portable_data_config(OmegaConf.to_container(cfg.data, resolve=False)))
    loggers = _instantiate_all(cfg.get("logger"), "logger")
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        callbacks=_instantiate_all(cfg.get("callbacks"), "callbacks") if callbacks else [],
        logger=loggers or False,
    )
    return datamodule, module, trainer


def _safe_ckpt(cfg: DictConfig, path, module=None) -> str:
    """Validate a checkpoint to resume or test from (the safe loader, the configured model and, given
    the built `module`, that its weights fit it); return its path."""
    checkpoint = load_checkpoint(path)
    check_model_config(checkpoint, OmegaConf.to_container(cfg.model, resolve=True), path, resume=True)
    if module is not None:
        check_weights_fit(module, checkpoint, path)
    return str(path)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (resuming from cfg.ckpt_path if set), test the best checkpoint, print where outputs are.

    Holds the run folder's lock (`RunLock`) throughout. Returns the validation and test metrics as
    floats; `cfg.monitor` is among them.
    """
    register_resolvers()
    with RunLock(cfg.paths.output_dir):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("ckpt_path"):
        _safe_ckpt(cfg, cfg.ckpt_path)  # before building: the data module may generate data
    datamodule, module, trainer = _build(cfg, callbacks=True)
    resume = _safe_ckpt(cfg, cfg.ckpt_path, module) if cfg.get("ckpt_path") else None
    check_fresh(trainer.checkpoint_callback, resume)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # the checkpoint is saved (ResumableOnInterrupt); exit as a terminated process
        raise SystemExit(128 + signal.SIGTERM) from None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        if best:
            trainer.test(module, datamodule=datamodule, ckpt_path=_safe_ckpt(cfg, best), weights_only=True,
                         verbose=False)
        else:
            log.warning("No best checkpoint (no validation ran); testing the current weights.")
            trainer.test(module, datamodule=datamodule, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_score is not None:
        metrics[cfg.monitor] = float(trainer.checkpoint_callback.best_model_score)
    if trainer.is_global_zero:
        thresholds = module.hparams.thresholds if cfg.get("test", True) else None
        _report(trainer, best, metrics, Path(cfg.paths.output_dir), thresholds, OmegaConf.select(cfg, "data.units"))
    return metrics


def _json(metrics: dict) -> str:
    """`metrics` as strict JSON (RFC 8259): NaN (a score with nothing to score) and inf become null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()},
                      indent=2, allow_nan=False)


def _skill_report(scores: dict[str, float], thresholds, units: str | None, prefix: str = "") -> str:
    """A title and `skill_table` of the model's and persistence's scores."""
    return (f"\nSkill on the test set, model vs persistence (the last input frame repeated), "
            f"thresholds in {units or 'the data units'}:\n" + skill_table(scores, thresholds, units, prefix))


def _report(trainer: pl.Trainer, best: str, metrics: dict[str, float], folder: Path, thresholds=None,
            units: str | None = None) -> None:
    """Write metrics.json into the run dir; print where checkpoints, logs and metrics are, and with
    `thresholds` the test's skill scores of the model and of persistence."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(_json(dict(sorted(metrics.items()))))
    checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    print(f"\nRun directory: {folder}")
    print("Checkpoints:", checkpoints or "none", f"(best: {best or 'none'})")
    for logger in trainer.loggers:
        print(f"Logs ({type(logger).__name__}):", logger.log_dir)
    print(f"Metrics: {folder / 'metrics.json'}")
    shown = {k: round(v, 6) for k, v in sorted(metrics.items()) if k.split("/")[0] in ("val", "test")}
    if thresholds:  # the skill scores are in the table below
        shown = {k: v for k, v in shown.items() if k.split("/")[-1].split("_")[0] not in SCORES}
    print(json.dumps(shown))
    if thresholds:
        print(_skill_report(metrics, thresholds, units, "test/"))


def evaluate(cfg: DictConfig, overrides=()) -> dict[str, float]:
    """Test the model of cfg.ckpt_path on its test set; write metrics.json, per_frame.csv,
    predictions.png and predictions.gif into cfg.paths.output_dir, print tables and return the metrics (means over the
    frames; with model thresholds also the skill scores pooled over them, as `csi_20`, and
    persistence's, as `persistence/csi_20`).

    The checkpoint defines the model and, unless `overrides` (the command line's) choose data= or set
    data.* keys, the data. A model option on the command line that contradicts it is an error.
    """
    if not cfg.get("ckpt_path"):
        raise ValueError("eval needs a checkpoint: pass ckpt_path=<path to a .ckpt file>")
    register_resolvers()
    with RunLock(cfg.paths.output_dir):
        return _evaluate(cfg, overrides)


def _evaluate(cfg: DictConfig, overrides) -> dict[str, float]:
    checkpoint = load_checkpoint(cfg.ckpt_path)
    choice = _group_choices(overrides, ("experiment", "model"))
    model_keys = _override_keys(overrides, "model")
    if choice or model_keys:
        source = " ".join(choice) if choice else "command line"
        check_model_config(checkpoint, OmegaConf.to_container(cfg.model, resolve=True), cfg.ckpt_path, source,
                           keys=None if choice else model_keys)
    _use_checkpoint_data(cfg, checkpoint, overrides)
    datamodule, module, trainer = _build(cfg, callbacks=False, module=module_from_checkpoint(checkpoint, cfg.ckpt_path))
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = dict(module.test_summary)
    if trainer.is_global_zero:
        _write_eval(Path(cfg.paths.output_dir), cfg.ckpt_path, metrics, module.test_results,
                    first_forecasts(module, datamodule.test_dataloader().dataset, cfg.num_images),
                    module.hparams.thresholds, OmegaConf.select(cfg, "data.units"))
    return metrics


def _overrides(overrides) -> list:
    """The command line's overrides as Hydra parses them (key, type: change, +add, ++add, ~delete)."""
    return OverridesParser.create().parse_overrides(list(overrides))


def _group_choices(overrides, groups) -> list[str]:
    """The overrides that choose an option of one of `groups` (e.g. 'experiment=quickstart')."""
    return [f"{o.key_or_group}={o.value()}" for o in _overrides(overrides)
            if o.key_or_group in groups and not o.is_delete()]


def _override_keys(overrides, group: str, delete: bool = False) -> list[str]:
    """Keys set (or with `delete`, deleted) below `group`: 'net.kernel_size' from 'model.net.kernel_size=5'."""
    return [o.key_or_group[len(group) + 1:] for o in _overrides(overrides)
            if o.key_or_group.startswith(group + ".") and o.is_delete() == delete]


def _use_checkpoint_data(cfg: DictConfig, checkpoint: dict, overrides) -> None:
    """Make cfg.data the checkpoint's data config with the command line's data.* settings on top,
    unless the command line chose a data config (data=...) or the checkpoint (0.1.0) has none."""
    stored = stored_data_config(checkpoint)
    if _group_choices(overrides, ("data",)):
        return
    if stored is None:
        log.warning("%s does not record its data (written by convgru 0.1.0): evaluating on the configured data; "
                    "pass the experiment= or data.* options it was trained with", cfg.ckpt_path)
        return
    given = {k: OmegaConf.select(cfg.data, k) for k in _override_keys(overrides, "data")}
    dropped = _override_keys(overrides, "data", delete=True)
    with open_dict(cfg):
        cfg.data = stored
        for key, value in given.items():
            OmegaConf.update(cfg.data, key, value, merge=False, force_add=True)
        for key in dropped:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg.data, parent) if parent else cfg.data
            if node is not None and leaf in node:
                del node[leaf]


def _write_eval(folder: Path, ckpt_path, metrics, per_frame, forecasts, thresholds=None,
                units: str | None = None) -> None:
    """metrics.json, per_frame.csv (a column per metric, skill score and persistence's skill score),
    predictions.png and predictions.gif of `forecasts` (inputs, targets, predictions) in `folder`; on stdout a table per future frame (MSE ... PSNR, CSI per threshold)
    and with `thresholds` the skill scores of the model and of persistence."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(_json({"ckpt_path": str(ckpt_path), **metrics}))
    columns = list(per_frame)
    rows = [[frame, *values] for frame, values in enumerate(zip(*(per_frame[c] for c in columns)), start=1)]
    with open(folder / "per_frame.csv", "w", newline="") as file:
        csv.writer(file).writerows([["frame", *columns], *([f, *(f"{v:.6f}" for v in vs)] for f, *vs in rows)])
    x, y, pred = forecasts
    save_image(rows_grid(x, y, pred), folder / "predictions.png")
    forecast_gif(folder / "predictions.gif", x, pred, y.nan_to_num(0.0))
    csi = [c for c in columns if c.split("/")[-1].startswith("csi_") and not c.endswith("_mean")]
    print("\n" + frame_table(per_frame, metrics, [*METRICS, *csi]))
    if thresholds:
        print(_skill_report(metrics, thresholds, units))
    print(f"\nWrote metrics.json, per_frame.csv, predictions.png and predictions.gif to {folder}")
