"""ForecastModule: the LightningModule that trains and evaluates an EncoderForecaster."""

from collections.abc import Sized

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import nn
from torch.utils.data import IterableDataset
from torchmetrics import MeanMetric, SumMetric

from convgru import EncoderForecaster
from convgru._checks import OptionError
from convgru.domain.extrapolation import NAMES, PystepsNowcast
from convgru.domain.scores import SkillScores, balanced_weights, check_sizes, check_thresholds
from convgru.domain.units import check_value_range
from convgru.training.baselines import build_baselines
from convgru.training.checkpoint import merge_rz_norm_states, stamp
from convgru.training.fields import FieldTestScores
from convgru.training.losses import build_loss
from convgru.training.metrics import FrameMetrics, UnpaddedShard
from convgru.training.optim import build_optimizer, build_scheduler
from convgru.training.report import say

COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune")
MISSING_KEYS = ("missing_value", "mask_file")  # data options that declare missing pixels (NaN targets)


def _declares_missing(data: dict | None) -> bool:
    """Whether a data config declares missing pixels, which reach the module as NaN targets."""
    return bool(data) and any(data.get(key) is not None for key in MISSING_KEYS)


def _scoring(t: torch.Tensor) -> torch.Tensor:
    """t in float32 if it is 16-bit (trainer.precision=bf16-true / 16-true): losses and scores in at
    least float32."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def as_forecast(raw: torch.Tensor) -> torch.Tensor:
    """A network's raw output as the forecast that is returned and scored: clamped to [0, 1] (the
    data's range, as OpenSTL clips), in at least float32."""
    return _scoring(raw).clamp(0, 1)


def _half_safe_eps(config: dict, params) -> dict:
    """`config` with Adam's eps raised to float16's smallest normal number (6.1e-5) when parameters are
    float16 (trainer.precision=16-true): the default 1e-8 rounds to 0 there, and a zero gradient
    then makes a 0/0 = NaN step."""
    tiny = torch.finfo(torch.float16).tiny
    eps = config.get("eps", 1e-8)
    if any(p.dtype == torch.float16 for p in params) and isinstance(eps, (int, float)) and eps < tiny:
        rank_zero_warn(f"model.optimizer.eps={eps} rounds to 0 in float16 (trainer.precision=16-true); "
                       f"using {tiny:.3g}, the smallest normal float16")
        return {**config, "eps": tiny}
    return config


class ForecastModule(pl.LightningModule):
    """Train an EncoderForecaster on batches (x, y): x (B, T_in, C, H, W) -> y (B, future, C, H, W).

    Args are plain values (stored as hyperparameters in checkpoints): `net` holds the
    EncoderForecaster kwargs, `loss` is mse | l1 | mse+l1 | bmse | bmae | bmse+bmae (`build_loss`,
    with `loss_thresholds`, `loss_weights` (None: HKO-7's) and `loss_units`, the data's unit),
    `optimizer` is {name: adam|adamw, lr, ...}, `scheduler` is {name: none|onecycle|cosine, ...}.
    `data` is the data config the module was trained with (kept so that a checkpoint alone can
    rebuild its test set). `compile` runs the network under torch.compile (fullgraph; true |
    default | reduce-overhead | max-autotune) with the batch dimension dynamic, so a smaller last
    batch does not recompile.

    Nowcasting: `value_range` = [low, high] are the physical values that the data maps to 0 and 1
    (None: [0, 1]); `thresholds` (physical units, within value_range) turn on the skill scores
    CSI, POD, FAR, HSS, ETS, SEDI and bias per threshold (`SkillScores`), and B-MSE and B-MAE in
    physical units with the weights of the balanced losses (`balanced_weights`; where they apply:
    a value_range, and loss_thresholds or loss_units dBZ or mm/h), logged at validation and test as
    `val/csi_20`, ..., `test/csi_mean`, `test/bmse`, and at test also for each of `baselines` on the
    same batches (`build_baselines`: {persistence: {}, extrapolation: {motion: lucaskanade}, sprog: {},
    steps: {members: 20, seed: 0}}, or a list of names; None: persistence alone):
    `test/persistence/csi_20`, `test/sprog/csi_20`, `test/steps/bmse`, ... pysteps' baselines keep
    their forecasts in the data module's `cache_dir` (data.cache_dir; `PystepsNowcast`), so a test set
    is forecast once, and their time is printed as the test ends.
    `fss_scales` (pixels) adds the fractions skill score (`fss_5px_20`, ...) and `csi_pool_sizes`
    (pixels) CSI after max-pooling (`csi_pool4_20`, ...). NaN targets are missing pixels,
    left out of the loss and every metric; they are an error unless the data config declares
    them (data.missing_value or data.mask_file).

    Gridded fields (a data module with `scoring()`, data=fields): the test also scores latitude-weighted
    RMSE and ACC per variable and lead time in physical units, with persistence and climatology
    (`FieldTestScores`: `rmse_t2m`, `persistence/acc_t2m`, `rmse_t2m_72h`, ...), and the data's
    normalization is kept in the data config that checkpoints store.
    """

    def __init__(
        self,
        net: dict,
        future: int = 10,
        loss: str = "mse",
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        data: dict | None = None,
        compile: bool | str = False,
        value_range: list[float] | None = None,
        thresholds: list[float] | None = None,
        loss_thresholds: list[float] | None = None,
        loss_weights: list[float] | None = None,
        loss_units: str = "mm/h",
        baselines: dict | list | None = None,
        fss_scales: list[int] | None = None,
        csi_pool_sizes: list[int] | None = None,
    ):
        super().__init__()
        if compile not in COMPILE_MODES:
            raise ValueError(f"model.compile must be one of {list(COMPILE_MODES)}, got {compile!r}")
        check_value_range(value_range, "model.value_range")
        self.save_hyperparameters()
        self.loss_fn = build_loss(loss, value_range, loss_thresholds, loss_weights, loss_units)
        self.net = EncoderForecaster(**net)
        if compile:
            self.net.compile(fullgraph=True, mode=None if compile is True else compile)
        self.val_metrics = FrameMetrics(future)
        self.test_metrics = FrameMetrics(future)
        # the validation loss over samples (batch means weighted by batch size); a NaN loss stays NaN (torchmetrics'
        # nan_strategy="disable" would drop the weights)
        self.val_loss = MeanMetric(nan_strategy=float("nan"))
        self.nonfinite = SumMetric()  # NaN or inf predicted values at test
        self.shard = UnpaddedShard(None)  # this process's share of the val / test set, set as each epoch starts
        self.skill = nn.ModuleDict()  # val, test and each baseline: SkillScores when thresholds are set
        self.baselines = {}  # name: (x, future) -> forecast, scored at test
        if thresholds is not None:
            check_thresholds(thresholds, value_range or (0, 1), "model.thresholds", "model.value_range")
            windows = {"fss_scales": check_sizes(fss_scales, "model.fss_scales"),
                       "pool_sizes": check_sizes(csi_pool_sizes, "model.csi_pool_sizes")}
            self.baselines = build_baselines(baselines, value_range, loss_units)
            frames_in = (data or {}).get("frames_in")
            if "extrapolation" in self.baselines and isinstance(frames_in, int) and frames_in < 2:
                raise OptionError("model.baselines.extrapolation", "needs data.frames_in >= 2 (the optical flow "
                                  f"between the last input frames), found {frames_in}; leave it out with "
                                  "model.baselines.extrapolation=null")
            if self.baselines and net.get("in_channels", 1) != net.get("out_channels", 1):
                raise ValueError(f"model.thresholds: scoring {' and '.join(self.baselines)} needs "
                                 f"model.net.in_channels == out_channels, found {net.get('in_channels', 1)} and "
                                 f"{net.get('out_channels', 1)}")
            if value_range is not None and (loss_thresholds is not None or loss_units in ("mm/h", "dBZ")):
                windows["balance"] = balanced_weights(value_range, loss_thresholds, loss_weights, loss_units)
            for name in ("val", "test", *self.baselines):
                self.skill[name] = SkillScores(thresholds, future, value_range, **windows)
        self.field_scores = None  # FieldTestScores of a test on gridded fields (data=fields), set as the test starts
        self.example_shape = None  # (1, T_in, C, H, W) of the data's inputs, set as a fit starts (example_input_array)

    @property
    def example_input_array(self) -> torch.Tensor | None:
        """Zeros of one input of the data's shape, (1, T_in, C, H, W), in the module's dtype and on its device (None
        before a fit has set `example_shape`): Lightning's model summary runs it through `forward` to show each
        layer's FLOPs for one sequence (`torch.utils.flop_counter.FlopCounterMode`) and its input and output sizes."""
        return None if self.example_shape is None else torch.zeros(self.example_shape, dtype=self.dtype,
                                                                   device=self.device)

    @example_input_array.setter
    def example_input_array(self, value) -> None:
        self.example_shape = None if value is None else tuple(value.shape)

    def forward(self, x: torch.Tensor, future: int | None = None) -> torch.Tensor:
        """x: (B, T_in, C, H, W) -> raw prediction (B, future, C, H, W); future defaults to hparams.future."""
        if self.hparams.compile:
            torch._dynamo.maybe_mark_dynamic(x, 0)
        return self.net(x, future or self.hparams.future)

    @torch.no_grad()
    def forecast(self, x: torch.Tensor, future: int | None = None) -> torch.Tensor:
        """Predictions clamped to [0, 1]: x (B, T_in, C, H, W) in [0, 1] -> (B, future, C, H, W).

        x is moved to the module's device and dtype (a module trained with trainer.precision=bf16-true
        or 16-true holds 16-bit weights); predictions come back in at least float32."""
        return as_forecast(self(x.to(self.device, self.dtype), future))

    def _predict(self, batch, check_nan: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(forecast, targets) of a batch; `check_nan` looks for undeclared missing pixels (a device sync)."""
        x, y = batch[0], batch[1]  # data=fields adds the climatology's rows of the targets
        if y.shape[1] != self.hparams.future:
            raise ValueError(
                f"the data gives {y.shape[1]} target frames but the model predicts "
                f"model.future={self.hparams.future}; make data.frames_out and model.future agree"
            )
        if check_nan and not _declares_missing(self.hparams.data) and y.isnan().any():
            raise ValueError(
                f"the targets hold {int(y.isnan().sum())} NaN values (of {y.numel()}) but the data declares no "
                "missing pixels; declare them with data.missing_value (nan or the files' no-data value) and/or "
                "data.mask_file, so they are left out of the loss and the scores, or clean the data"
            )
        return _scoring(self(x)), _scoring(y)  # scored in at least float32 under 16-bit precisions

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        pred, y = self._predict(batch, check_nan=batch_idx == 0)  # the data modules check every window
        loss = self.loss_fn(pred.float(), y)
        if not torch.isfinite(loss):
            bad = {name: (int((~torch.isfinite(t)).sum()), t.numel()) for name, t in zip(("inputs", "targets"), batch)}
            cause = (
                "the batch holds NaN or inf (" + ", ".join(f"{k}: {n} of {m} values" for k, (n, m) in bad.items() if n)
                + "), so look at the data (missing pixels declared with data.missing_value / data.mask_file are "
                "NaN in the targets)"
                if any(n for n, _ in bad.values()) else
                "the batch is finite, so training diverged: lower model.optimizer.lr, set "
                "trainer.gradient_clip_val, or use trainer.precision=32-true, and train again (a resumed run "
                "keeps the checkpoint's optimizer state and learning rate)"
            )
            raise FloatingPointError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(batch {batch_idx}): {cause}. Checkpoints saved so far are kept in the run's checkpoints/ folder"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=y.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.shard = UnpaddedShard(self.trainer.val_dataloaders)

    def on_test_epoch_start(self) -> None:
        self.shard = UnpaddedShard(self.trainer.test_dataloaders)

    def validation_step(self, batch, batch_idx: int) -> None:
        batch = self.shard.trim(batch)  # under DDP: without the samples repeated to pad the set
        if len(batch[0]) == 0:
            return
        pred, y = self._predict(batch)
        self.val_loss.update(self.loss_fn(pred.float(), y), y.shape[0])
        self.val_metrics.update(pred, y)
        if self.skill:
            self.skill["val"].update(as_forecast(pred), y)

    def test_step(self, batch, batch_idx: int) -> None:
        batch = self.shard.trim(batch)  # under DDP: without the samples repeated to pad the set
        if len(batch[0]) == 0:
            return
        pred, y = self._predict(batch)
        self.nonfinite.update((~torch.isfinite(pred)).sum())
        self.test_metrics.update(pred, y)
        if self.skill:
            self.skill["test"].update(as_forecast(pred), y)
            for name, baseline in self.baselines.items():
                self.skill[name].update(_scoring(baseline(batch[0], y.shape[1])), y)
        if self.field_scores is not None:
            self.field_scores.update(batch[0], as_forecast(pred), y, batch[2] if len(batch) > 2 else None)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Prediction clamped to [0, 1], (B, future, C, H, W); batch is x or (x, y)."""
        return self.forecast(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def _scores(self, name: str, prefix: str = "") -> tuple[dict, dict]:
        """Skill scores of self.skill[name]: ({prefix + "csi_20": scalar, ...}, {prefix + "csi_20": (T,)
        per lead time, ...}); empty without thresholds."""
        if not self.skill:
            return {}, {}
        scores = self.skill[name].compute()
        pooled = {prefix + k: v for k, v in scores.items() if not k.endswith("_per_lead")}
        return pooled, {prefix + k.removesuffix("_per_lead"): v.reshape(-1) for k, v in scores.items()
                        if k.endswith("_per_lead")}  # (T,): torchmetrics squeezes (1,) to a scalar

    def on_validation_epoch_end(self) -> None:
        per_frame = self.val_metrics.compute()
        self.val_metrics.reset()
        # every metric is summed over ranks as it computes; sync_dist only averages equal values
        self.log("val/loss", self.val_loss.compute(), sync_dist=True)
        self.val_loss.reset()
        self.log_dict({f"val/{k}": v.mean() for k, v in per_frame.items()}, prog_bar=True, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in self._scores("val")[0].items()}, sync_dist=True)
        if self.skill:
            self.skill["val"].reset()

    def test_results(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The test so far, without resetting it: ({name: scalar}: means over the frames and the skill
        scores pooled over them, each baseline's as `persistence/csi_20`; {name: (future,)}: per lead time)."""
        per_frame = {k: v.reshape(-1) for k, v in self.test_metrics.compute().items()}  # (T,), also for T = 1
        summary = {k: v.mean() for k, v in per_frame.items()}
        for name, prefix in (("test", ""), *((name, f"{name}/") for name in self.baselines)):
            pooled, per_lead = self._scores(name, prefix)
            summary.update(pooled)
            per_frame.update(per_lead)
        if self.field_scores is not None:  # lat-weighted RMSE and ACC per lead time, with persistence and climatology
            for into, values in zip((summary, per_frame), self.field_scores.results()):
                into.update(values)
        return summary, per_frame

    def on_test_epoch_end(self) -> None:
        """Log test/<metric> (`test_results`: means over frames, pooled skill scores) and, to
        TensorBoard, MSE and CSI against the lead time; then reset the test metrics."""
        summary, per_frame = self.test_results()
        nonfinite = self.nonfinite.compute().float()
        self.test_metrics.reset()
        self.nonfinite.reset()
        for baseline in self.baselines.values():
            if isinstance(baseline, PystepsNowcast) and self.trainer.is_global_zero:
                say(f"{NAMES[baseline.method]}: {baseline.sequences} test sequences forecast in "
                    f"{baseline.seconds:.1f} s, {baseline.cached} read from the cache (on this process)")
        for metric in self.skill.values():
            metric.reset()
        if self.field_scores is not None:
            self.field_scores.reset()
        self.log_dict({f"test/{k}": v for k, v in {**summary, "nonfinite_predictions": nonfinite}.items()},
                      sync_dist=True)
        curves = ["mse", *(k for k in per_frame if k.split("/")[-1].startswith("csi_"))]
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                for name in curves:
                    for frame, value in enumerate(per_frame[name].tolist(), start=1):
                        logger.experiment.add_scalar(f"test/{name}_per_frame", value, global_step=frame)

    def setup(self, stage: str) -> None:
        """As a fit starts, take the shape of the data's inputs for the model summary (`example_input_array`).
        Keep the data's normalization (data=fields: mean and std per channel of the training split), grid
        (coordinates and their order), time step (`data.time_step`, the files' own when not given) and
        climatology (`FieldDataModule.stored_climatology`: its values, or a file beside the checkpoints) in the
        data config that checkpoints store, so that eval and predict
        normalize as training did, read new files in the training grid's order and at its time step, and eval
        scores ACC without the training files."""
        datamodule = self.trainer.datamodule
        if stage == "fit" and not self.hparams.compile:  # a compiled net would compile again for the summary
            self.example_shape = example_shape(datamodule, validates=self.trainer.limit_val_batches != 0)
        if getattr(datamodule, "normalization", None) is not None and isinstance(self.hparams.get("data"), dict):
            self.hparams.data["normalization"] = datamodule.normalization
            if getattr(datamodule, "grid", None) is not None:
                self.hparams.data["grid"] = datamodule.grid
            source = getattr(datamodule, "source", None)
            if self.hparams.data.get("time_step") is None and source is not None:
                self.hparams.data["time_step"] = source.step.option  # the files' own: predict samples input at it
            stored = getattr(datamodule, "stored_climatology", None)
            if stored is not None:  # a large one: a file beside the checkpoints
                self.hparams.data["climatology"] = stored(getattr(self.trainer.checkpoint_callback, "dirpath", None))

    def on_test_start(self) -> None:
        """The fields' scores (`FieldTestScores`) when the data is gridded fields with a `scoring()` (data=fields);
        pysteps' baselines cached in the data module's `cache_dir` (if it has one)."""
        scoring = getattr(self.trainer.datamodule, "scoring", None)
        self.field_scores = FieldTestScores(scoring(), self.hparams.future).to(self.device) if scoring else None
        cache_dir = getattr(self.trainer.datamodule, "cache_dir", None)
        for baseline in self.baselines.values():
            if isinstance(baseline, PystepsNowcast):
                baseline.use_cache(cache_dir)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["convgru"] = stamp(self.trainer.world_size if self._trainer else None)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Bring a 0.1.0 optimizer state up to date; refuse to resume a OneCycle schedule over a
        different number of steps: it cannot stretch."""
        merge_rz_norm_states(checkpoint, self)
        scheduler = self.hparams.scheduler or {}
        if scheduler.get("name") == "onecycle" and self._trainer and self.trainer.state.fn == "fit":
            total, world = int(self.trainer.estimated_stepping_batches), self.trainer.world_size
            trained = (checkpoint.get("convgru") or {}).get("world_size")
            for state in checkpoint.get("lr_schedulers", []):
                if state.get("total_steps", total) == total:
                    continue
                steps = f"the checkpoint's OneCycle schedule lasts {state['total_steps']} steps, this run {total}"
                if isinstance(trained, int) and trained != world:  # each process takes its share of the batches
                    raise ValueError(
                        f"{steps}: the checkpoint trained on {trained} process{'es' * (trained != 1)} and this run has "
                        f"{world} (world size: trainer.devices x trainer.num_nodes), which changes the steps per "
                        f"epoch; resume on {trained} process{'es' * (trained != 1)}, or start a new run on {world} "
                        "(a OneCycle schedule cannot stretch)")
                raise ValueError(
                    f"{steps}; resume with the trainer.max_epochs / max_steps, data.train_size / batch_size and "
                    "number of processes (trainer.devices x trainer.num_nodes) it was started with (to train longer, "
                    "start a new run)"
                )

    def configure_optimizers(self):
        config = _half_safe_eps(self.hparams.optimizer or {"name": "adam", "lr": 1e-3}, self.parameters())
        optimizer = build_optimizer(self.parameters(), config)
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = build_scheduler(optimizer, self.hparams.scheduler or {"name": "none"}, total_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def example_shape(datamodule, validates: bool = True) -> tuple[int, ...] | None:
    """(1, T_in, C, H, W): the shape of one input of `datamodule`, its first sample read: of the validation set
    where the fit `validates` (trainer.limit_val_batches not 0) and the data module has one, else of the training
    set, which a fit without validation may be all there is (data=fields with data.val_time=null). None without a
    data module (a fit given data loaders), or where the set has no first sample to read (empty, or a stream: an
    IterableDataset)."""
    if datamodule is None:
        return None
    validates = validates and is_overridden("val_dataloader", datamodule, pl.LightningDataModule)
    dataset = getattr(datamodule.val_dataloader() if validates else datamodule.train_dataloader(), "dataset", None)
    if not isinstance(dataset, Sized) or isinstance(dataset, IterableDataset) or not len(dataset):
        return None
    return (1, *dataset[0][0].shape)
