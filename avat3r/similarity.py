"""Image similarity shared by the training objective (``avat3r.train.losses``) and the evaluation metrics
(``avat3r.eval.metrics``): SSIM, PSNR, L1. LPIPS, a network with weights, is ``avat3r.model.lpips``.

SSIM here is a differentiable Gaussian-window SSIM (11x11, sigma 1.5, K1 0.01, K2 0.03) that equals scikit-image's
``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)``: scikit-image filters with reflect padding but averages only the interior that is at least
5 pixels from the border, which is exactly a 'valid' convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = ["gaussian_window", "ssim", "ssim_map", "l1", "psnr"]


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
