"""TensorBoard as the docs describe it (docs/training.md, "Watch it in TensorBoard"): scalars with a
description of their scale (shown beside each chart), and the hyperparameters of a run with the metrics
they produced (the HPARAMS tab)."""

import math

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger as LightningTensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import DATA_CLASS_SCALAR
from tensorboard.plugins.scalar.metadata import create_summary_metadata
from torch.utils.tensorboard.summary import hparams, scalar

_SUM = ("summed over the pixels (and channels) of each frame in [0, 1], then averaged over frames and sequences "
        "(OpenSTL's convention), so it grows with the frame size: on 64x64 frames an error of 0.1 at every pixel "
        "gives {example}. The loss (val/loss, train/loss) is a mean over pixels instead")
DESCRIPTIONS = {  # by the metric's name after its stage: val/mse, test/mse
    "mse": "Mean squared error per frame: squared errors " + _SUM.format(example="mse 41 (0.01 x 4096)") + ".",
    "mae": "Mean absolute error per frame: absolute errors " + _SUM.format(example="mae 410 (0.1 x 4096)") + ".",
    "ssim": "Structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) per image, averaged over "
            "frames and sequences: 1 is a perfect forecast.",
    "psnr": "Peak signal-to-noise ratio in dB per image (data range 1), averaged over frames and sequences; a "
            "perfect image counts as 100 dB.",
    "loss": "The loss the model is trained with (model.loss), a mean over pixels: for mse, val/mse is about "
            "this times the pixels of a frame (0.02 on 64x64 frames is val/mse 82).",
    "loss_step": "The training loss (model.loss) of each batch, a mean over pixels.",
    "loss_epoch": "The training loss (model.loss) averaged over the epoch, a mean over pixels.",
}


def description(tag: str) -> str | None:
    """The description of a logged scalar (`val/mse`, `test/psnr`, `train/loss_step`), or None."""
    stage, _, name = tag.partition("/")
    return DESCRIPTIONS.get(name) if stage in ("train", "val", "test") else None


def description_metadata(tag: str):
    """The SummaryMetadata of the first point of the scalar `tag`: the scalar plugin's (tensorboard's
    `create_summary_metadata`) with `description(tag)` and the scalar data class. Without the data class,
    TensorBoard's fast loader (tensorboard-data-server, its default where installed) replaces the
    metadata of a `simple_value` point by its own and the chart shows no description."""
    metadata = create_summary_metadata(display_name=tag, description=description(tag) or "")
    metadata.data_class = DATA_CLASS_SCALAR
    return metadata


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoardLogger whose scalars carry `description(tag)`: TensorBoard reads a
    scalar's description from its first point, so the first point of each described tag is written
    with it, in the scalar plugin's full metadata (`description_metadata`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._described: set[str] = set()

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        first = {k: v for k, v in metrics.items() if k not in self._described and description(k)}
        for tag, value in first.items():
            summary = scalar(tag, float(value))
            summary.value[0].metadata.CopyFrom(description_metadata(tag))
            self.experiment._get_file_writer().add_summary(summary, step)
            self._described.add(tag)
        super().log_metrics({k: v for k, v in metrics.items() if k not in first}, step)


def _plain(params: dict, prefix: str = "") -> dict:
    """Nested hyperparameters as TensorBoard takes them: {'net/hidden_sizes': '[16, 32]', ...} (numbers,
    strings and booleans as they are, other values as text)."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_plain(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def applicable(params: dict) -> dict:
    """The model's hyperparameters that apply to its run: without unset ones (None), without the baselines,
    thresholds and their scores' settings (fss_scales, csi_pool_sizes) when no thresholds are scored, and
    without the balanced loss's settings (loss_thresholds, loss_weights, loss_units) for another loss."""
    balanced = any(part.startswith("b") for part in str(params.get("loss", "")).split("+"))
    left_out = set()
    if not params.get("thresholds"):
        left_out |= {"baselines", "fss_scales", "csi_pool_sizes"}
    if not balanced:
        left_out |= {"loss_thresholds", "loss_weights", "loss_units"}
    return {k: v for k, v in params.items() if k not in left_out and v is not None}


def log_hparams_with_metrics(trainer: pl.Trainer, module: pl.LightningModule, metrics: dict[str, float],
                             names: dict | None = None) -> None:
    """Write the model's hyperparameters with the names of the validation and test metrics they produced
    to every TensorBoard logger: its HPARAMS tab shows the runs of a sweep side by side, each with the
    last value of each metric's chart (the last validation, the test of the best checkpoint). Nothing
    is added to the charts. First `names` (what the run is: {"Dataset": "moving_mnist", "Model":
    "convgru3", "Experiment": ...}), then the hyperparameters that apply (`applicable`); the data config is
    left out but its frames_in / frames_out, image_size and value_range, which the model's lack."""
    params = {**(names or {}), **applicable({k: v for k, v in module.hparams.items() if k != "data"})}
    data = module.hparams.get("data") or {}
    params["data"] = {k: data[k] for k in ("frames_in", "frames_out", "image_size", "value_range")
                      if data.get(k) is not None}
    names = {k: 0.0 for k, v in metrics.items() if k.split("/")[0] in ("val", "test") and math.isfinite(v)}
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, LightningTensorBoardLogger):
            logger.log_hyperparams(params)  # hparams.yaml
            writer = logger.experiment._get_file_writer()
            for summary in hparams(_plain(params), names):  # the experiment, the session's start and end
                writer.add_summary(summary)
            writer.flush()
