"""Forecast metrics per future frame: MSE and MAE in OpenSTL's convention, SSIM and PSNR; and the
share of an evaluation set that one DDP process scores (`UnpaddedShard`)."""

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from torchmetrics import Metric

METRICS = ("mse", "mae", "ssim", "psnr")
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al. (2004): an 11x11 Gaussian window with standard deviation 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. (2004): C1 = (K1 L)^2, C2 = (K2 L)^2 with L the data range (1)
PSNR_MAX = 100.0  # dB: PSNR of a perfect image (MSE taken as at least 10^(-PSNR_MAX / 10) = 1e-10)


def ssim_window(size: int) -> tuple[int, float]:
    """(window length, Gaussian sigma) of SSIM along a frame axis of `size` pixels.

    Wang et al.'s (2004) 11 and 1.5 where the frame is at least 6 pixels; shorter axes get the
    longest window that their reflection padding allows, 2 * size - 1 (1, 3, 5, 7, 9 for 1..5
    pixels), with sigma shrunk in proportion (1.5 * window / 11), so that the window spans the
    same number of sigmas.
    """
    window = min(SSIM_WINDOW, 2 * size - 1)
    return window, SSIM_SIGMA * window / SSIM_WINDOW


def _gaussian(window: int, sigma: float, device) -> torch.Tensor:
    offsets = torch.arange(window, dtype=torch.float32, device=device) - (window - 1) / 2
    weights = torch.exp(-(offsets / sigma).square() / 2)
    return weights / weights.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each image, (N, C, H, W) float32 in [0, 1] (data range 1) -> (N,), for any H, W >= 1.

    Wang et al. (2004), "Image quality assessment: from error visibility to structural
    similarity", IEEE TIP 13(4): local means, variances and covariance under a Gaussian window
    (11x11, sigma 1.5), C1 = (0.01)^2, C2 = (0.03)^2, averaged over the image. As torchmetrics'
    `structural_similarity_index_measure` (1.9, which this equals on frames of 6 pixels and more),
    the frame is reflection-padded by half a window so that every pixel is a window centre, the
    variances are clamped at 0 and the map is averaged over every channel and pixel. Frames
    shorter than 6 pixels along an axis take the window of `ssim_window` on that axis (7x7 and
    sigma 0.95 on 4x4 frames; 1 pixel, the luminance term alone, on 1-pixel axes), where the
    11x11 window would not fit.
    """
    n, c, h, w = pred.shape
    (kh, sh), (kw, sw) = ssim_window(h), ssim_window(w)
    kernel = torch.outer(_gaussian(kh, sh, pred.device), _gaussian(kw, sw, pred.device))
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    images = torch.cat([pred, target])
    if ph or pw:
        images = F.pad(images, (pw, pw, ph, ph), mode="reflect")
    x, y = images.split(n)
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), kernel.expand(c, 1, kh, kw).contiguous(), groups=c)
    mu_x, mu_y, xx, yy, xy = stats.split(n)
    var_x, var_y = (xx - mu_x.square()).clamp(min=0), (yy - mu_y.square()).clamp(min=0)
    cov = xy - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    index = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(1)


class FrameMetrics(Metric):
    """Accumulate MSE, MAE, SSIM and PSNR per future frame over batches (and DDP ranks).

    Predictions are clamped to [0, 1] first, as OpenSTL clips them. MSE and MAE follow OpenSTL:
    error summed over C, H, W, averaged over sequences. SSIM and PSNR (data range 1) are computed
    per image and averaged, as OpenSTL's `metric` (openstl/core/metrics.py) does. `compute()`
    returns {name: (T,) tensor} (a scalar when T = 1: torchmetrics squeezes a (1,) result); average over
    frames for the figure over the whole forecast.
    Inputs of any floating dtype (bfloat16, float16 too) are scored in float32.

    SSIM: `ssim` (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5), with a smaller window on
    frames under 6 pixels (`ssim_window`), so that every frame size has an SSIM.

    PSNR = -10 log10(MSE of the image) at data range 1, with the MSE taken as at least 1e-10: a
    perfect image scores PSNR_MAX = 100 dB, not inf. OpenSTL's PSNR, torchmetrics' and
    scikit-image's are inf there, which makes the mean over a test set inf; capping a perfect
    image at 100 dB (an MSE below 1e-10 at data range 1) is the common convention of public PSNR
    code (`if mse < 1e-10: return 100`), and no image of 8-bit data other than a perfect one
    comes near it (one pixel off by 1/255 in a 64x64 frame is 84 dB). Every value is finite.

    Targets may hold NaN (missing pixels): MSE, MAE and PSNR come from the valid pixels of each
    image (MSE and MAE scaled to the image's C * H * W pixels, so they stay comparable), SSIM from
    the target with its missing pixels filled from the prediction. Images with no valid pixel are
    left out of their frame's average (a frame with none at all is NaN).
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
        pixels = math.prod(pred.shape[2:])
        if pixels == 0 or pred.shape[0] == 0:
            return  # no image to score
        pred = pred.float().clamp(0, 1)
        target = target.float()
        missing = target.isnan()
        target = torch.where(missing, pred, target)  # missing pixels: no error
        b, t = pred.shape[:2]
        valid = pixels - missing.sum(dim=(2, 3, 4))  # (B, T) valid pixels per image
        scored = valid > 0
        scale = pixels / valid.clamp(min=1)
        diff = pred - target
        mse = diff.square().sum(dim=(2, 3, 4)) * scale
        self.mse += torch.where(scored, mse, 0.0).sum(0)
        self.mae += torch.where(scored, diff.abs().sum(dim=(2, 3, 4)) * scale, 0.0).sum(0)
        similarity = ssim(pred.flatten(0, 1), target.flatten(0, 1)).view(b, t)
        psnr = -10 * torch.log10((mse / pixels).clamp(min=10 ** (-PSNR_MAX / 10)))
        self.ssim += torch.where(scored, similarity, 0.0).sum(0)
        self.psnr += torch.where(scored, psnr, 0.0).sum(0)
        self.count += scored.sum(0)

    def _apply(self, fn, *args, **kwargs):
        """Move the sums like any module state, but keep them float32: a model cast to bfloat16 or
        float16 (trainer.precision=bf16-true) must not round its metrics."""
        this = super()._apply(fn, *args, **kwargs)
        for name in (*METRICS, "count"):
            setattr(this, name, getattr(this, name).float())
            this._defaults[name] = this._defaults[name].float()
        return this

    def compute(self) -> dict[str, torch.Tensor]:
        """{name: per-frame mean over the scored images, shape (frames,)}."""
        return {name: getattr(self, name) / self.count for name in METRICS}


class UnpaddedShard:
    """This process's samples of an evaluation loader, without the padding of Lightning's DistributedSampler.

    Under DDP, Lightning gives the validation and test loaders a `DistributedSampler` (drop_last=False),
    which pads the set to a multiple of the world size W by repeating its first samples: rank r gets the
    positions r, r + W, r + 2W, ... of the padded list, the padding last (a test of 5 sequences on 2
    processes scored 6). `trim(batch)` keeps the samples of a batch that are the set's own, in the order
    the loader gives them, and drops the padding, so that every sample is scored exactly once whatever the
    number of processes. Every rank still runs the loop (a rank of a set smaller than W gets one padded
    sample, trimmed to none) and takes part in the metrics' sum over ranks at the epoch's end (their states
    are sum-reduced). A loader without a DistributedSampler (one process) is left as it is.
    """

    def __init__(self, loader):
        if isinstance(loader, (list, tuple)):  # Lightning's list of loaders: convgru's modules give one
            loader = loader[0] if loader else None
        sampler = getattr(loader, "sampler", None)
        self.left = None  # samples of the set still to come on this rank; None: no padding
        if isinstance(sampler, DistributedSampler) and not sampler.drop_last:
            self.left = len(range(sampler.rank, len(sampler.dataset), sampler.num_replicas))

    def trim(self, batch):
        """`batch` (x, y, ...: every item batched along its first axis, as data=fields' climatology rows)
        cut to the samples of the set not seen yet on this rank (possibly none)."""
        if self.left is None:
            return batch
        keep = min(self.left, len(batch[0]))
        self.left -= keep
        kept = [item[:keep] for item in batch]
        return tuple(kept) if isinstance(batch, tuple) else kept
