"""ForecastModule: the LightningModule that trains and evaluates an EncoderForecaster."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger

import convgru
from convgru import EncoderForecaster
from convgru.training.metrics import FrameMetrics
from convgru.training.optim import build_optimizer, build_scheduler
from convgru.training.upgrade import merge_rz_norm_states

CHECKPOINT_FORMAT = 2  # 1: convgru 0.1.0 (no "convgru" entry); 2: adds it, and the data config in hparams
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune")

LOSSES = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "mse+l1": lambda pred, target: F.mse_loss(pred, target) + F.l1_loss(pred, target),
}


class ForecastModule(pl.LightningModule):
    """Train an EncoderForecaster on batches (x, y): x (B, T_in, C, H, W) -> y (B, future, C, H, W).

    Args are plain values (stored as hyperparameters in checkpoints): `net` holds the
    EncoderForecaster kwargs, `loss` is mse | l1 | mse+l1, `optimizer` is {name: adam|adamw, lr, ...},
    `scheduler` is {name: none|onecycle|cosine, ...}. `data` is the data config the module was
    trained with (kept so that a checkpoint alone can rebuild its test set). `compile` runs the
    network under torch.compile (fullgraph; true | default | reduce-overhead | max-autotune) with
    the batch dimension dynamic, so a smaller last batch does not recompile.
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
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {sorted(LOSSES)}, got {loss!r}")
        if compile not in COMPILE_MODES:
            raise ValueError(f"model.compile must be one of {list(COMPILE_MODES)}, got {compile!r}")
        self.save_hyperparameters()
        self.net = EncoderForecaster(**net)
        if compile:
            self.net.compile(fullgraph=True, mode=None if compile is True else compile)
        self.loss_fn = LOSSES[loss]
        self.val_metrics = FrameMetrics(future)
        self.test_metrics = FrameMetrics(future)
        self.test_results: dict[str, list[float]] = {}

    def forward(self, x: torch.Tensor, future: int | None = None) -> torch.Tensor:
        """x: (B, T_in, C, H, W) -> raw prediction (B, future, C, H, W); future defaults to hparams.future."""
        if self.hparams.compile:
            torch._dynamo.maybe_mark_dynamic(x, 0)
        return self.net(x, future or self.hparams.future)

    @torch.no_grad()
    def forecast(self, x: torch.Tensor, future: int | None = None) -> torch.Tensor:
        """Predictions clamped to [0, 1]: x (B, T_in, C, H, W) in [0, 1] -> (B, future, C, H, W)."""
        return self(x.to(self.device), future).clamp(0, 1)

    def _predict(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if y.shape[1] != self.hparams.future:
            raise ValueError(
                f"the data gives {y.shape[1]} target frames but the model predicts "
                f"model.future={self.hparams.future}; make data.frames_out and model.future agree"
            )
        return self(x), y

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        pred, y = self._predict(batch)
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

    def validation_step(self, batch, batch_idx: int) -> None:
        pred, y = self._predict(batch)
        self.log("val/loss", self.loss_fn(pred.float(), y), sync_dist=True, batch_size=y.shape[0])
        self.val_metrics.update(pred, y)

    def test_step(self, batch, batch_idx: int) -> None:
        pred, y = self._predict(batch)
        self.test_metrics.update(pred, y)

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Prediction clamped to [0, 1], (B, future, C, H, W); batch is x or (x, y)."""
        return self.forecast(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def on_validation_epoch_end(self) -> None:
        per_frame = self.val_metrics.compute()
        self.val_metrics.reset()
        # already reduced over ranks by FrameMetrics; sync_dist only averages equal values
        self.log_dict({f"val/{k}": v.mean() for k, v in per_frame.items()}, prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        per_frame = self.test_metrics.compute()
        self.test_metrics.reset()
        self.log_dict({f"test/{k}": v.mean() for k, v in per_frame.items()}, sync_dist=True)
        self.test_results = {k: v.tolist() for k, v in per_frame.items()}
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                for frame, value in enumerate(self.test_results["mse"], start=1):
                    logger.experiment.add_scalar("test/mse_per_frame", value, global_step=frame)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["convgru"] = {"format": CHECKPOINT_FORMAT, "version": convgru.__version__}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Bring a 0.1.0 optimizer state up to date; refuse to resume a OneCycle schedule over a
        different number of steps: it cannot stretch."""
        merge_rz_norm_states(checkpoint, self)
        scheduler = self.hparams.scheduler or {}
        if scheduler.get("name") == "onecycle" and self._trainer and self.trainer.state.fn == "fit":
            total = int(self.trainer.estimated_stepping_batches)
            for state in checkpoint.get("lr_schedulers", []):
                if state.get("total_steps", total) != total:
                    raise ValueError(
                        f"the checkpoint's OneCycle schedule lasts {state['total_steps']} steps, this run "
                        f"{total}; resume with the trainer.max_epochs / max_steps and data.train_size / "
                        "batch_size it was started with (to train longer, start a new run)"
                    )

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.hparams.optimizer or {"name": "adam", "lr": 1e-3})
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = build_scheduler(optimizer, self.hparams.scheduler or {"name": "none"}, total_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
