"""Synthetic Gaussian scenes for renderer tests and benchmarks (no data needed).

``head_like_scene``: pixel-aligned Gaussians of an ellipsoid "head" (the kind of set Avat3r predicts: one
Gaussian per input pixel, flat, oriented along the surface, about one source pixel wide), unprojected from
4 source views, plus a novel camera. ``random_scene``: random Gaussians in front of a camera.
"""

from __future__ import annotations

import math

import torch

from ..cameras import Cameras, intrinsics_from_fov, look_at, spherical_to_cartesian
from ..gaussians import Gaussians, rotmat_to_quat

__all__ = ["head_like_scene", "random_scene", "HEAD_RADII"]

HEAD_RADII = (0.075, 0.10, 0.09)  # ellipsoid semi-axes in metres (x: ear to ear, y: up, z: face)


def _camera_ring(azimuths, elevations, radius: float, fov_deg: float, size: int) -> Cameras:
    az = torch.as_tensor(azimuths, dtype=torch.float32)
    el = torch.as_tensor(elevations, dtype=torch.float32)
    eyes = spherical_to_cartesian(az, el, torch.full_like(az, radius))
    return Cameras(intrinsics_from_fov(fov_deg, size).expand(len(az), 3, 3), look_at(eyes), size, size)


def head_like_scene(
    n_gaussians: int = 250_000,
    render_size: int = 256,
    *,
    seed: int = 0,
    radius: float = 0.6,
    fov_deg: float = 24.0,
) -> tuple[Gaussians, Cameras]:
    """-> (exactly ``n_gaussians`` pixel-aligned Gaussians on an ellipsoid head, one novel camera).

    Source views at azimuths 20/110/200/290 deg see the whole head; each is sampled at the resolution that
    makes the four views' head pixels add up to about ``n_gaussians`` (then trimmed/topped up to exactly that).
    The novel camera (azimuth 45, elevation 10) renders at ``render_size``².
    """
    gen = torch.Generator().manual_seed(seed)
    r = torch.tensor(HEAD_RADII)
    frac = 0.45  # fraction of a source image covered by the head at this radius / fov (measured)
    res = max(8, int(math.ceil(math.sqrt(n_gaussians / 4 / frac))))
    src = _camera_ring([20.0, 110.0, 200.0, 290.0], [8.0, -5.0, 12.0, 0.0], radius, fov_deg, res)
    from ..cameras import pixel_rays

    o, d = pixel_rays(src)  # [4, res, res, 3]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    # Ray-ellipsoid intersection in the unit-sphere frame.
    os_, ds = o / r, d / r
    a = (ds * ds).sum(-1)
    b = 2 * (os_ * ds).sum(-1)
    c = (os_ * os_).sum(-1) - 1
    disc = b * b - 4 * a * c
    hit = disc > 0
    t = (-b - torch.sqrt(disc.clamp(min=0))) / (2 * a)
    pts = (o + t[:, None] * d)[hit]
    view = torch.arange(4).repeat_interleave(res * res)[hit]
    depth = t[hit]  # distance along the unit ray ≈ camera z near the centre
    # Exactly n_gaussians: random subset, or repeat random hits with jitter when short.
    if len(pts) >= n_gaussians:
        pick = torch.randperm(len(pts), generator=gen)[:n_gaussians]
    else:
        pick = torch.cat([torch.arange(len(pts)), torch.randint(len(pts), (n_gaussians - len(pts),), generator=gen)])
    pts, view, depth = pts[pick], view[pick], depth[pick]
    normal = torch.nn.functional.normalize(pts / (r * r), dim=-1)
    # Tangent frame (t1, t2, n) -> quaternion.
    helper = torch.where(normal[:, 1:2].abs() < 0.9, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0]))
    t1 = torch.nn.functional.normalize(torch.linalg.cross(helper, normal, dim=-1), dim=-1)
    t2 = torch.linalg.cross(normal, t1, dim=-1)
    quats = rotmat_to_quat(torch.stack([t1, t2, normal], -1))
    f = float(src.K[0, 0, 0])
    pix = depth / f  # one source pixel in metres at that depth
    means = pts
    scales = torch.stack([0.6 * pix, 0.6 * pix, 0.05 * pix], -1)
    # Colour: skin tone with smooth stripes/spots so that images have structure; "hair" on top and back.
    p = pts / r
    skin = torch.tensor([0.85, 0.64, 0.52])
    hair = torch.tensor([0.25, 0.15, 0.10])
    is_hair = ((p[:, 1] > 0.45) | ((p[:, 2] < -0.2) & (p[:, 1] > -0.2))).float()[:, None]
    pattern = 0.1 * torch.sin(40 * p[:, :1]) * torch.cos(30 * p[:, 1:2]) + 0.05 * torch.sin(60 * p[:, 2:3])
    colors = (is_hair * hair + (1 - is_hair) * skin + pattern).clamp(0, 1)
    colors = colors + 0.05 * torch.rand(len(pts), 3, generator=gen)
    opacities = 0.7 + 0.3 * torch.rand(len(pts), generator=gen)
    g = Gaussians(means, quats, scales, opacities, colors.clamp(0, 1))
    novel = _camera_ring([45.0], [10.0], radius, fov_deg, render_size)
    return g, novel


def random_scene(
    n_gaussians: int = 2000, size: int = 64, *, seed: int = 0, n_cameras: int = 2, dtype=torch.float32
) -> tuple[Gaussians, Cameras]:
    """Random Gaussians (positions in a 0.4 m box at the origin, random orientations, log-uniform scales
    1-30 mm, opacities in [0.05, 0.95], colours in [0, 1]) and ``n_cameras`` cameras 0.8 m away."""
    gen = torch.Generator().manual_seed(seed)
    n = n_gaussians
    means = (torch.rand(n, 3, generator=gen) - 0.5) * 0.4
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.001), math.log(0.03), generator=gen))
    opacities = 0.05 + 0.9 * torch.rand(n, generator=gen)
    colors = torch.rand(n, 3, generator=gen)
    g = Gaussians(means, quats, scales, opacities, colors).to(dtype)
    az = torch.linspace(-40, 40, n_cameras) if n_cameras > 1 else torch.zeros(1)
    cams = _camera_ring(az, torch.full_like(az, 5.0), 0.8, 40.0, size)
    return g, cams
