"""Forecast metrics per future frame: MSE and MAE in OpenSTL's convention, SSIM and PSNR."""

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

METRICS = ("mse", "mae", "ssim", "psnr")


class FrameMetrics(Metric):
    """Accumulate MSE, MAE, SSIM and PSNR per future frame over batches (and DDP ranks).

    Predictions are clamped to [0, 1] first, as OpenSTL clips them. MSE and MAE follow OpenSTL:
    error summed over C, H, W, averaged over sequences. SSIM and PSNR (data range 1) are computed
    per image and averaged. `compute()` returns {name: (T,) tensor}; average over frames for the
    figure over the whole forecast.
    """

    full_state_update = False

    def __init__(self, frames: int):
        super().__init__()
        self.frames = frames
        for name in METRICS:
            self.add_state(name, default=torch.zeros(frames), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B, T, C, H, W) with T == frames; target in [0, 1]."""
        if pred.shape != target.shape or pred.ndim != 5 or pred.shape[1] != self.frames:
            raise ValueError(
                f"FrameMetrics expects pred and target of shape (B, {self.frames}, C, H, W), "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        pred = pred.float().clamp(0, 1)
        target = target.float()
        b, t = pred.shape[:2]
        diff = pred - target
        self.mse += diff.square().sum(dim=(2, 3, 4)).sum(0)
        self.mae += diff.abs().sum(dim=(2, 3, 4)).sum(0)
        images, truths = pred.flatten(0, 1), target.flatten(0, 1)
        ssim = structural_similarity_index_measure(images, truths, data_range=1.0, reduction="none")
        psnr = peak_signal_noise_ratio(images, truths, data_range=1.0, dim=(1, 2, 3), reduction="none")
        self.ssim += ssim.view(b, t).sum(0)
        self.psnr += psnr.view(b, t).sum(0)
        self.count += b

    def compute(self) -> dict[str, torch.Tensor]:
        """{name: per-frame mean, shape (frames,)}."""
        return {name: getattr(self, name) / self.count for name in METRICS}
