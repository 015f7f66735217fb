"""Test-time ray alignment of pixel-aligned Gaussians (issue 15, item 5: a test-time refinement).

Each Gaussian belongs to one pixel of one input view. The network places it at the position prior plus a 3D offset
(eq. 11); on real photos those offsets drift sideways off the pixel's ray (median ~3 px, 10 % beyond 10 px at
256 px on a portrait, measured): seen from the input camera the photo's pixels land in the wrong place, which reads
as blur, and from four views as ghosting. The alignment measures that drift once, on the neutral expression, and
removes it from every expression, so that what the network animates (the change between expressions) is kept.

Modes (``REFINE_MODES``):
    "off"      the network's Gaussians as they are;
    "rays"     the whole sideways drift of the neutral Gaussians is removed (each lands on its pixel's ray, at the
               depth the network chose);
    "rays_hf"  only its high-frequency part (drift minus its Gaussian blur over the view's kept pixels, ``sigma_px``):
               pixel jitter goes, smooth displacements (an input view's own expression moving towards neutral,
               a slightly wrong camera) stay.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cameras import Cameras, pixel_rays
from ..errors import InputError
from .heads import GaussianMaps

__all__ = ["REFINE_MODES", "check_refine", "ray_alignment", "align_maps"]

REFINE_MODES = ("off", "rays", "rays_hf")


def check_refine(mode: str) -> str:
    if mode not in REFINE_MODES:
        raise InputError(f"refine must be one of {', '.join(REFINE_MODES)}, got {mode!r}")
    return mode


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x [N, C, H, W] -> separable Gaussian blur (zero padding)."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), padding=(0, r), groups=C)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), padding=(r, 0), groups=C)


def ray_alignment(means: torch.Tensor, mask: torch.Tensor, cameras: Cameras, mode: str = "rays",
                  sigma_px: float = 6.0) -> torch.Tensor:
    """means [V, H, W, 3] (world), mask [V, H, W] (kept pixels), cameras: the V input cameras (any size: rays are
    cast at the maps' H x W) -> delta [V, H, W, 3] to add to the means of every expression (zeros for "off")."""
    if check_refine(mode) == "off":
        return torch.zeros_like(means)
    V, H, W, _ = means.shape
    cams = cameras.to(means.device)
    if (cams.height[0].item(), cams.width[0].item()) != (H, W):
        cams = cams.resize(W, H)
    o, d = pixel_rays(cams, H, W)  # [V, H, W, 3], unit d
    p = means.float()
    t = ((p - o) * d).sum(-1, keepdim=True)
    delta = (o + t * d) - p  # perpendicular to the ray: the drift off it, reversed
    if mode == "rays_hf":
        m = mask.float()[:, None]  # [V, 1, H, W]
        dm = delta.permute(0, 3, 1, 2) * m
        low = _blur(dm, sigma_px) / _blur(m, sigma_px).clamp_min(1e-6)  # normalised: only kept pixels count
        delta = delta - low.permute(0, 2, 3, 1)
    return (delta * mask[..., None].float()).to(means.dtype)


def align_maps(maps: GaussianMaps, delta: torch.Tensor) -> GaussianMaps:
    """maps of B items, delta [B, V, H, W, 3] or [V, H, W, 3] -> maps with the means moved (new object)."""
    from dataclasses import replace

    return replace(maps, means=maps.means + (delta if delta.dim() == 5 else delta[None]))
