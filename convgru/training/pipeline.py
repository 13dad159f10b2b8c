"""Train and evaluate from a composed Hydra config (what scripts/train.py and eval.py run)."""

import csv
import json
import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from convgru.training.checkpoint import check_net_matches, load_checkpoint
from convgru.training.images import forecast_grid
from convgru.training.metrics import METRICS

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group that has a `_target_` (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def _build(cfg: DictConfig, callbacks: bool):
    """Seed, then the datamodule, the ForecastModule (plain-typed hparams), loggers and trainer."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=_instantiate_all(cfg.get("callbacks")) if callbacks else [],
        logger=loggers or False,
    )
    return datamodule, module, trainer


def _safe_ckpt(cfg: DictConfig, path) -> str:
    """Validate a checkpoint with the weights-only loader and the configured net; return its path."""
    checkpoint = load_checkpoint(path)
    check_net_matches(checkpoint, OmegaConf.to_container(cfg.model.net, resolve=True), path)
    return str(path)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (resuming from cfg.ckpt_path if set), test the best checkpoint, print where outputs are.

    Returns the validation and test metrics as floats; `cfg.monitor` is among them.
    """
    resume = _safe_ckpt(cfg, cfg.ckpt_path) if cfg.get("ckpt_path") else None
    datamodule, module, trainer = _build(cfg, callbacks=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        if best:
            trainer.test(module, datamodule=datamodule, ckpt_path=_safe_ckpt(cfg, best), weights_only=True)
        else:
            log.warning("No best checkpoint (no validation ran); testing the current weights.")
            trainer.test(module, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_score is not None:
        metrics[cfg.monitor] = float(trainer.checkpoint_callback.best_model_score)
    if trainer.is_global_zero:
        _report(trainer, best, metrics, Path(cfg.paths.output_dir))
    return metrics


def _report(trainer: pl.Trainer, best: str, metrics: dict[str, float], folder: Path) -> None:
    """Write metrics.json into the run dir; print where checkpoints, logs and metrics are."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(dict(sorted(metrics.items())), indent=2))
    checkpoints = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    print(f"\nRun directory: {folder}")
    print("Checkpoints:", checkpoints or "none", f"(best: {best or 'none'})")
    for logger in trainer.loggers:
        print(f"Logs ({type(logger).__name__}):", logger.log_dir)
    print(f"Metrics: {folder / 'metrics.json'}")
    print(json.dumps({k: round(v, 6) for k, v in sorted(metrics.items()) if k.split("/")[0] in ("val", "test")}))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test cfg.ckpt_path on the test set; write metrics.json, per_frame.csv and predictions.png
    into cfg.paths.output_dir, print a table and return the metrics (averaged over frames)."""
    if not cfg.get("ckpt_path"):
        raise ValueError("eval needs a checkpoint: pass ckpt_path=<path to a .ckpt file>")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    check_net_matches(checkpoint, OmegaConf.to_container(cfg.model.net, resolve=True), cfg.ckpt_path)
    datamodule, module, trainer = _build(cfg, callbacks=False)
    module.load_state_dict(checkpoint["state_dict"])
    trainer.test(module, datamodule=datamodule, verbose=False)
    per_frame = module.test_results
    metrics = {name: sum(values) / len(values) for name, values in per_frame.items()}
    if trainer.is_global_zero:
        _write_eval(Path(cfg.paths.output_dir), cfg.ckpt_path, metrics, per_frame,
                    forecast_grid(module, datamodule.test_dataloader().dataset, cfg.num_images))
    return metrics


def _write_eval(folder: Path, ckpt_path, metrics, per_frame, grid) -> None:
    """metrics.json, per_frame.csv, predictions.png in `folder`, and a table on stdout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"ckpt_path": str(ckpt_path), **metrics}, indent=2))
    rows = [[frame, *values] for frame, values in enumerate(zip(*(per_frame[m] for m in METRICS)), start=1)]
    with open(folder / "per_frame.csv", "w", newline="") as file:
        csv.writer(file).writerows([["frame", *METRICS], *([f, *(f"{v:.6f}" for v in vs)] for f, *vs in rows)])
    save_image(grid, folder / "predictions.png")
    print(f"\n{'frame':>6} " + " ".join(f"{name:>9}" for name in METRICS))
    for frame, *values in [*rows, ["mean", *(metrics[m] for m in METRICS)]]:
        print(f"{frame:>6} " + " ".join(f"{v:9.4f}" for v in values))
    print(f"\nWrote metrics.json, per_frame.csv and predictions.png to {folder}")
