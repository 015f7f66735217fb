"""The training objective of Avat3r (paper Sec. 3.3, eqs. 15-18).

    L = 0.8 * L1(I_nv, I_gt) + 0.2 * (1 - SSIM(I_nv, I_gt)) + 0.01 * LPIPS(I_nv, I_gt)

``L_ssim`` of eq. 16 is written as SSIM in the paper; as in 3D Gaussian Splatting (which the paper follows) the
term that is minimised is ``1 - SSIM``. LPIPS is switched on after ``lpips_start`` steps (paper: 3M of 3.5M) and
only when its pretrained weights are present (see ``avat3r.train.lpips``); otherwise the objective says so once.

SSIM here is a differentiable Gaussian-window SSIM (11x11, sigma 1.5, K1 0.01, K2 0.03) that equals scikit-image's
``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)``: scikit-image filters with reflect padding but averages only the interior that is at least
5 pixels from the border, which is exactly a 'valid' convolution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["gaussian_window", "ssim", "ssim_map", "l1", "psnr", "ObjectiveConfig", "Objective"]

log = logging.getLogger(__name__)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5, device=None) -> torch.Tensor:
    """1-D normalised Gaussian taps [2r+1], r = int(truncate * sigma + 0.5) as in scipy.ndimage (11 taps)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).float()


def _filter(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of x [B, C, H, W] with taps w [K] -> [B, C, H-K+1, W-K+1]."""
    c = x.shape[1]
    k = w.numel()
    x = F.conv2d(x, w.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, w.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM of a, b [B, C, H, W] -> [B, C, H-10, W-10] (float32, autocast off)."""
    if a.shape != b.shape or a.ndim != 4:
        raise InputError(f"ssim needs two [B, C, H, W] tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    w = gaussian_window(sigma, device=a.device)
    if min(a.shape[-2:]) < w.numel():
        raise InputError(f"ssim needs images of at least {w.numel()}x{w.numel()} pixels, got {tuple(a.shape[-2:])}")
    # Variances are differences of nearly equal numbers: always compute them in float32.
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b = a.float(), b.float()
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        n = a.shape[0]
        # one grouped conv over [a, b, a², b², ab] stacked along the batch
        stats = _filter(torch.cat([a, b, a * a, b * b, a * b], 0), w)
        mu_a, mu_b, aa, bb, ab = stats.split(n, 0)
        var_a = aa - mu_a * mu_a
        var_b = bb - mu_b * mu_b
        cov = ab - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
        return num / den


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Mean SSIM of a, b [B, C, H, W]; reduction "mean" -> scalar, "none" -> [B] (mean over C, H, W)."""
    s = ssim_map(a, b, data_range)
    return s.mean() if reduction == "mean" else s.flatten(1).mean(1)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (eq. 15, averaged over pixels and channels), float32."""
    return (a.float() - b.float()).abs().mean()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of a, b [B, ...] -> [B] (inf where identical)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


@dataclass
class ObjectiveConfig:
    """Weights of eq. 18 and the step at which LPIPS joins (paper: 3M of 3.5M steps)."""

    lambda_l1: float = 0.8
    lambda_ssim: float = 0.2
    lambda_lpips: float = 0.01
    lpips_start: int = 3_000_000
    lpips_net: str = "vgg"  # "vgg" or "alex"
    lpips_weights: str | None = None  # folder / file / Hub repo of the LPIPS weights (see avat3r.train.lpips)


class Objective(torch.nn.Module):
    """Eq. 18 on renders and targets [B, 3, H, W] in [0, 1]. Returns (loss, {term: detached 0-d tensor}).

    The terms stay tensors so that a training step does not wait for the GPU; call ``float`` when logging."""

    def __init__(self, cfg: ObjectiveConfig | None = None, lpips: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ObjectiveConfig()
        self.lpips = lpips
        self._said_off = False
        if lpips is None and self.cfg.lambda_lpips > 0:
            from .lpips import try_load_lpips

            self.lpips = try_load_lpips(self.cfg.lpips_net, self.cfg.lpips_weights)
        if self.lpips is not None:
            self.lpips.requires_grad_(False).eval()

    @property
    def lpips_available(self) -> bool:
        return self.lpips is not None

    def lpips_active(self, step: int) -> bool:
        return self.lpips is not None and self.cfg.lambda_lpips > 0 and step >= self.cfg.lpips_start

    def forward(self, pred: torch.Tensor, target: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = pred.float(), target.float()
            l_l1 = l1(pred, target)
            l_ssim = 1.0 - ssim(pred, target)
            loss = self.cfg.lambda_l1 * l_l1 + self.cfg.lambda_ssim * l_ssim
            terms = {"l1": l_l1.detach(), "ssim": 1.0 - l_ssim.detach()}
            if self.lpips_active(step):
                l_lp = self.lpips(pred, target).mean()
                loss = loss + self.cfg.lambda_lpips * l_lp
                terms["lpips"] = l_lp.detach()
            elif step >= self.cfg.lpips_start and self.cfg.lambda_lpips > 0 and not self._said_off:
                log.warning(
                    "LPIPS is OFF from step %d on although lpips_start=%d: no LPIPS weights were found "
                    "(give --lpips-weights DIR; see docs/TRAINING.md). Training continues with 0.8 L1 + 0.2 (1-SSIM).",
                    step, self.cfg.lpips_start,
                )
                self._said_off = True
        terms["loss"] = loss.detach()
        return loss, terms
