"""Shared inputs for the model benchmarks: a sphere 'head' seen by V orbit cameras (positions, confidence, Plücker)."""

from __future__ import annotations

import torch

from avat3r.cameras import orbit_cameras, pixel_rays, plucker_rays


def sphere_inputs(views: int = 4, size: int = 256, radius: float = 0.12, expression_dim: int = 16,
                  feature_dim: int = 0, feature_size: int = 32, device="cpu", seed: int = 0):
    """Model inputs for a sphere of ``radius`` metres at the origin seen by ``views`` cameras 1 m away.

    Returns (inputs dict for Avat3rModel.forward without expression, expression [1, C], cameras).
    Confidence is 1 on the sphere and 0 elsewhere (about 45% of the pixels at the default field of view).
    """
    g = torch.Generator().manual_seed(seed)
    cams = orbit_cameras(views, radius=1.0, size=size, azimuth_range=(-90.0, 90.0))
    o, d = pixel_rays(cams)  # [V, H, W, 3]
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius**2
    disc = b * b - c
    hit = disc > 0
    t = -b - disc.clamp_min(0).sqrt()
    pos = torch.where(hit[..., None], o + t[..., None] * d, torch.zeros_like(o))
    inputs = dict(
        images=torch.rand(1, views, 3, size, size, generator=g),
        positions=pos.permute(0, 3, 1, 2)[None].contiguous(),
        confidence=hit.float()[None, :, None],
        plucker=plucker_rays(cams)[None],
    )
    if feature_dim:
        inputs["features"] = torch.randn(1, views, feature_dim, feature_size, feature_size, generator=g)
    z = torch.randn(1, expression_dim, generator=g)
    return {k: v.to(device) for k, v in inputs.items()}, z.to(device), cams
