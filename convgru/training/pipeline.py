"""Train and evaluate from a composed Hydra config (what scripts/train.py and eval.py run).

`train`: lock the run folder, check a checkpoint to resume from, build (data, model, trainer), fit,
test the best checkpoint, report. `evaluate`: lock, load the checkpoint safely, take its model and
data config, build, test, report. What is written and printed after a test is in `report`.
"""

import logging
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.utilities.exceptions import SIGTERMException

from convgru import EncoderForecaster
from convgru.training.callbacks import MidEpochResume, OwnCheckpoints, ProgressBar, batches_done, terminated_workers
from convgru.training.checkpoint import load_checkpoint, portable_data_config
from convgru.training.cli import Terminated, error_message, group_choices, override_keys
from convgru.training.fields import check_save_forecasts, save_test_forecasts
from convgru.training.images import first_forecasts
from convgru.training.loggers import log_hparams_with_metrics
from convgru.training.options import check_options, full_names, instantiate
from convgru.training.paths import register_resolvers
from convgru.training.report import TestReport, eval_report, quiet_lightning, say, train_report
from convgru.training.restore import check_model_config, check_weights_fit, module_from_checkpoint, use_checkpoint_data
from convgru.training.run_folder import RunLock, check_fresh, requeued_checkpoint

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None, name: str) -> list:
    """Instantiate every entry of a config group that has a `_target_` (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(entry, f"{name}.{key}") for key, entry in group.items() if entry and "_target_" in entry]


def _build(cfg: DictConfig, callbacks: bool, module=None, extra_callbacks=(), data_from=None):
    """Seed, then the datamodule, the ForecastModule (plain-typed hparams, holding the data config
    with its interpolations; `module` if given), loggers and trainer (with the config's callbacks if
    `callbacks`, and `extra_callbacks`); every option is checked against the class it configures
    first (unknown keys, wrong types). `data_from` names the checkpoint the data config came from, for
    its errors."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ValueError(f"seed: expected an integer, found {cfg.seed!r}")
    if OmegaConf.select(cfg, "figures.enabled", default=False):
        from convgru.training.figures import check_colors  # matplotlib: only when figures are drawn

        check_colors(cfg.figures.radar_colors)
    quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True)
    try:
        datamodule = instantiate(cfg.data, "data")
    except (ValueError, OmegaConfBaseException) as error:
        if data_from is None:
            raise
        raise ValueError(f"the data config stored in {data_from} (with the command line's data.* on top) does not "
                         f"build: {error_message(error)}") from None
    if module is None:  # a partial, so that the data config keeps its interpolations as text
        net = OmegaConf.to_container(cfg.model.net, resolve=True)
        check_options(net, EncoderForecaster, "model.net")
        make_module = instantiate(cfg.model, "model", _convert_="all", _partial_=True)
        with full_names(OmegaConf.to_container(cfg.model, resolve=True), "model"):
            module = make_module(data=portable_data_config(cfg.data))
    loggers = _instantiate_all(cfg.get("logger"), "logger")
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        callbacks=[*(_instantiate_all(cfg.get("callbacks"), "callbacks") if callbacks else []), *extra_callbacks],
        logger=loggers or False,
    )
    return datamodule, module, trainer


def _checked_ckpt(cfg: DictConfig, path, module=None) -> dict:
    """A checkpoint to resume or test from, validated (the safe loader, the configured model and, given
    the built `module`, that its weights fit it)."""
    checkpoint = load_checkpoint(path)
    check_model_config(checkpoint, OmegaConf.to_container(cfg.model, resolve=True), path, resume=True)
    if module is not None:
        check_weights_fit(module, checkpoint, path)
    return checkpoint


def _safe_ckpt(cfg: DictConfig, path, module=None) -> str:
    """`_checked_ckpt`'s checks; the checkpoint's path."""
    _checked_ckpt(cfg, path, module)
    return str(path)


def run_names(cfg: DictConfig) -> dict[str, str]:
    """What a run is, for its HPARAMS row: {"Dataset", "Model"} as chosen (data=, model=; without Hydra, the
    data module's name) and the "Experiment" if one was chosen. Capitalized: TensorBoard sorts the columns
    by name, and these come before the model's lower-case hyperparameters."""
    from hydra.core.hydra_config import HydraConfig

    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    target = str(OmegaConf.select(cfg, "data._target_", default="")).rsplit(".", 1)[-1]
    names = {"Dataset": choices.get("data") or target.removesuffix("DataModule"), "Model": choices.get("model"),
             "Experiment": choices.get("experiment")}
    return {k: v for k, v in names.items() if v}


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (resuming from cfg.ckpt_path if set), test the best checkpoint, print where outputs are.

    Holds the run folder's lock (`RunLock`) throughout. Returns the validation and test metrics as
    floats; `cfg.monitor` is among them.
    """
    register_resolvers()
    with RunLock(cfg.paths.output_dir):
        return _train(cfg)


def _figures(cfg: DictConfig, module, datamodule, forecasts=None):
    """(forecasts of the first figures.sequences test sequences, rendering) for the test's figures
    (`convgru.training.figures`), or None when cfg.figures.enabled is false."""
    if not OmegaConf.select(cfg, "figures.enabled", default=False):
        return None
    from convgru.training.figures import rendering_of  # matplotlib: only when figures are drawn

    count = int(cfg.figures.sequences)
    if forecasts is None:
        forecasts = first_forecasts(module, datamodule.test_dataloader().dataset, count)
    return tuple(t[:count] for t in forecasts), rendering_of(module, datamodule, cfg.figures.radar_colors)


def _terminated(trainer: pl.Trainer) -> Terminated:
    return Terminated(f"terminated by SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}")


def _train(cfg: DictConfig) -> dict[str, float]:
    ckpt_path = cfg.get("ckpt_path") or requeued_checkpoint(cfg.paths.output_dir)  # a requeued SLURM job
    extra = [TestReport()]
    if ckpt_path:
        checkpoint = _checked_ckpt(cfg, ckpt_path)  # before building: the data module may generate data
        extra += [MidEpochResume(batches_done(checkpoint)), OwnCheckpoints(ckpt_path)]
    results = extra[0]
    datamodule, module, trainer = _build(cfg, callbacks=True, extra_callbacks=extra)
    resume = _safe_ckpt(cfg, ckpt_path, module) if ckpt_path else None
    if resume and not cfg.get("ckpt_path"):
        log.info(f"Requeued job: continuing from {resume}")
    check_fresh(trainer.checkpoint_callback, resume)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # the checkpoint is saved (ResumableOnInterrupt); exit as a terminated process
        raise _terminated(trainer) from None
    except RuntimeError as error:  # SIGTERM to the process group ended the DataLoader workers: saved, as above
        if not terminated_workers(error, trainer):
            raise
        raise _terminated(trainer) from None
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
    log_hparams_with_metrics(trainer, module, metrics, run_names(cfg))
    if trainer.is_global_zero:
        thresholds = module.hparams.thresholds if cfg.get("test", True) else None
        drawn = _figures(cfg, module, datamodule) if cfg.get("test", True) else None
        train_report(trainer, best, metrics, Path(cfg.paths.output_dir), thresholds,
                     OmegaConf.select(cfg, "data.units"), drawn and (results.per_frame, *drawn),
                     getattr(datamodule, "climatology_note", ""))
    return metrics


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
    choice = group_choices(overrides, ("experiment", "model"))
    model_keys = override_keys(overrides, "model")
    if choice or model_keys:
        source = " ".join(choice) if choice else "command line"
        check_model_config(checkpoint, OmegaConf.to_container(cfg.model, resolve=True), cfg.ckpt_path, source,
                           keys=None if choice else model_keys)
    from_checkpoint = use_checkpoint_data(cfg, checkpoint, overrides)
    results = TestReport()
    # train's progress bar (its callbacks config): Lightning's default, Rich's, draws nothing until the end
    # when the output is a file (a SLURM log)
    bar = [ProgressBar()] if cfg.trainer.get("enable_progress_bar", True) is not False else []
    datamodule, module, trainer = _build(cfg, callbacks=False, module=module_from_checkpoint(checkpoint, cfg.ckpt_path),
                                         extra_callbacks=[results, *bar],
                                         data_from=cfg.ckpt_path if from_checkpoint else None)
    if cfg.get("save_forecasts"):  # before the test: data=fields only
        check_save_forecasts(datamodule, cfg.paths.output_dir)
    trainer.test(module, datamodule=datamodule, verbose=False)
    bad = int(trainer.callback_metrics["test/nonfinite_predictions"])
    if bad:
        raise FloatingPointError(f"the model of {cfg.ckpt_path} forecast {bad} NaN or inf values on the test set; "
                                 "nothing was written. Its weights diverged or are damaged, or the test data is far "
                                 "from what it was trained on")
    if trainer.is_global_zero:
        forecasts = first_forecasts(module, datamodule.test_dataloader().dataset, cfg.num_images)
        drawn = _figures(cfg, module, datamodule, forecasts)
        eval_report(Path(cfg.paths.output_dir), cfg.ckpt_path, results.summary, results.per_frame, forecasts,
                    module.hparams.thresholds, OmegaConf.select(cfg, "data.units"),
                    getattr(datamodule, "frame_rate", None),  # video data: predictions.mp4 at its frame rate
                    drawn, getattr(datamodule, "climatology_note", ""))  # data=fields: which climatology ACC is against
        if cfg.get("save_forecasts"):  # data=fields: the test forecasts as NetCDF
            say(f"Wrote the test forecasts to {save_test_forecasts(module, datamodule, cfg.paths.output_dir)}")
    return results.summary
