"""Forecast metrics per future frame: MSE and MAE in OpenSTL's convention, SSIM and PSNR."""

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure

METRICS = ("mse", "mae", "ssim", "psnr")


class FrameMetrics(Metric):
    """Accumulate MSE, MAE, SSIM and PSNR per future frame over batches (and DDP ranks).

    Predictions are clamped to [0, 1] first, as OpenSTL clips them. MSE and MAE follow OpenSTL:
    error summed over C, H, W, averaged over sequences. SSIM and PSNR (data range 1) are computed
    per image and averaged. `compute()` returns {name: (T,) tensor}; average over frames for the
    figure over the whole forecast.

    Targets may hold NaN (missing pixels): MSE, MAE and PSNR come from the valid pixels of each
    image (MSE and MAE scaled to the image's C * H * W pixels, so they stay comparable), SSIM from
    the target with its missing pixels filled from the prediction. Images with no valid pixel are
    left out of their frame's average.
    """

    full_state_update = False

    def __init__(self, frames: int):
        super().__init__()
        self.frames = frames
        for name in METRICS:
            self.add_state(name, default=torch.zeros(frames), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(frames), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W) with T == frames; target in [0, 1], NaN where missing."""
        if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] != self.frames:
            raise ValueError(
                f"FrameMetrics expects pred and target of shape (B, {self.frames}, C, H, W), "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        pred = pred.float().clamp(0, 1)
        missing = target.isnan()
        target = torch.where(missing, pred, target.float())  # missing pixels: no error
        b, t = pred.shape[:2]
        pixels = pred[0, 0].numel()
        valid = pixels - missing.sum(dim=(2, 3, 4))  # (B, T) valid pixels per image
        scored = valid > 0
        scale = pixels / valid.clamp(min=1)
        diff = pred - target
        mse = diff.square().sum(dim=(2, 3, 4)) * scale
        self.mse += mse.sum(0)
        self.mae += (diff.abs().sum(dim=(2, 3, 4)) * scale).sum(0)
        ssim = structural_similarity_index_measure(pred.flatten(0, 1), target.flatten(0, 1), data_range=1.0,
                                                   reduction="none").view(b, t)
        psnr = -10 * torch.log10(mse / pixels)  # data range 1; inf for a perfect image, as torchmetrics
        self.ssim += torch.where(scored, ssim, 0.0).sum(0)
        self.psnr += torch.where(scored, psnr, 0.0).sum(0)
        self.count += scored.sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        """{name: per-frame mean over the scored images, shape (frames,)}."""
        return {name: getattr(self, name) / self.count for name in METRICS}
