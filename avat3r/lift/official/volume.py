"""EG3D's neural volume rendering (Chan et al. 2022, Sec. 4, "Efficient Geometry-aware 3D GANs"): rays from a
normalised-intrinsics camera, three axis-aligned feature planes sampled bilinearly, a small MLP (``OSGDecoder``) to
density and 32 features, stratified + importance sampling along each ray, and alpha compositing at interval
midpoints (mip-NeRF's marcher). Written from EG3D's ``training/volumetric_rendering``.

The random numbers are drawn in EG3D's order and shapes (one ``rand_like`` for the stratified jitter, one
``rand`` for the importance samples), so a seeded call reproduces the original's render exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...generate.layers import FullyConnectedLayer

__all__ = ["PLANE_AXES", "ray_bundle", "sample_planes", "OSGDecoder", "ImportanceRenderer", "ray_box_limits"]

#: The axes of EG3D's three feature planes (xy, xz, zx). Points are projected with the *inverse* of each matrix
#: and the first two coordinates kept, exactly as EG3D does (its second and third planes therefore see (x, z) and
#: (z, x)): checkpoints were trained with that projection, so it is kept.
PLANE_AXES = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                           [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                           [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.float32)


def ray_bundle(cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cam2world [N, 4, 4] (OpenCV axes), intrinsics [N, 3, 3] normalised to a unit image -> origins, unit
    directions [N, R*R, 3] through pixel centres, row-major (y down)."""
    N, dev = cam2world.shape[0], cam2world.device
    r = torch.arange(resolution, dtype=torch.float32, device=dev) / resolution + 0.5 / resolution
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    x, y = xx.reshape(1, -1).expand(N, -1), yy.reshape(1, -1).expand(N, -1)
    fx, fy, cx, cy, sk = (intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None], intrinsics[:, 0, 2, None],
                          intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None])
    z = torch.ones_like(x)
    x_cam = (x - cx + cy * sk / fy - sk * y / fy) / fx * z
    y_cam = (y - cy) / fy * z
    pts = torch.stack([x_cam, y_cam, z, torch.ones_like(z)], -1)  # [N, M, 4]
    world = torch.bmm(cam2world, pts.permute(0, 2, 1)).permute(0, 2, 1)[..., :3]
    origin = cam2world[:, :3, 3]
    dirs = F.normalize(world - origin[:, None], dim=2)
    return origin[:, None].repeat(1, dirs.shape[1], 1), dirs


def sample_planes(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    """planes [N, 3, C, H, W], points [N, M, 3] (world; the box spans +-box_warp/2) -> features [N, 3, M, C]."""
    N, P, C, H, W = planes.shape
    M = points.shape[1]
    axes = torch.linalg.inv(PLANE_AXES.to(points.device))  # [3, 3, 3]
    p = (2 / box_warp) * points
    uv = torch.einsum("nmk,pkj->npmj", p, axes)[..., :2].reshape(N * P, 1, M, 2)
    f = F.grid_sample(planes.reshape(N * P, C, H, W), uv.float(), mode="bilinear", padding_mode="zeros", align_corners=False)
    return f.permute(0, 3, 2, 1).reshape(N, P, M, C)


class OSGDecoder(nn.Module):
    """Mean of the three plane features [N, 3, M, C] -> MLP (C -> 64, softplus, -> 1 + out) -> density [N, M, 1] and
    features [N, M, out] (sigmoid widened by 0.001 each side; the first three are RGB). Keys ``net.0``, ``net.2``."""

    def __init__(self, n_features: int = 32, out_dim: int = 32, lr_multiplier: float = 1.0, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(FullyConnectedLayer(n_features, hidden, lr_multiplier=lr_multiplier), nn.Softplus(),
                                 FullyConnectedLayer(hidden, 1 + out_dim, lr_multiplier=lr_multiplier))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.mean(1)
        N, M, C = x.shape
        x = self.net(x.reshape(N * M, C)).reshape(N, M, -1)
        return torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001, x[..., :1]


def ray_box_limits(origins: torch.Tensor, dirs: torch.Tensor, side: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays [..., 3] through the cube of side ``side`` around 0 -> [..., 1] each
    (-1 / -2 for rays that miss: EG3D's ``get_ray_limits_box``, slab method)."""
    shape = origins.shape[:-1]
    o, d = origins.detach().reshape(-1, 3), dirs.detach().reshape(-1, 3)
    inv = 1 / d
    lo = (-side / 2 - o) * inv
    hi = (side / 2 - o) * inv
    tmin_a, tmax_a = torch.minimum(lo, hi), torch.maximum(lo, hi)
    valid = torch.ones(o.shape[0], dtype=torch.bool, device=o.device)
    tmin, tmax = tmin_a[:, 0], tmax_a[:, 0]
    for k in (1, 2):
        valid &= ~((tmin > tmax_a[:, k]) | (tmin_a[:, k] > tmax))
        tmin, tmax = torch.maximum(tmin, tmin_a[:, k]), torch.minimum(tmax, tmax_a[:, k])
    tmin = torch.where(valid, tmin, torch.full_like(tmin, -1))
    tmax = torch.where(valid, tmax, torch.full_like(tmax, -2))
    return tmin.reshape(*shape, 1), tmax.reshape(*shape, 1)


def _march(colors, densities, depths, white_back: bool):
    """colors [N, M, S, C], densities / depths [N, M, S, 1] -> (rgb in [-1, 1] [N, M, C], depth [N, M, 1],
    weights [N, M, S-1, 1]): midpoint quadrature, density = softplus(raw - 1)."""
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    dens_mid = F.softplus((densities[:, :, :-1] + densities[:, :, 1:]) / 2 - 1)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    alpha = 1 - torch.exp(-dens_mid * deltas)
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    total = weights.sum(2)
    depth = torch.nan_to_num(torch.sum(weights * depths_mid, -2) / total, float("inf"))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if white_back:
        rgb = rgb + 1 - total
    return rgb * 2 - 1, depth, weights


def _sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, eps: float = 1e-5) -> torch.Tensor:
    """Inverse-CDF samples: bins [R, B+1], weights [R, B] -> depths [R, n] (one torch.rand(R, n))."""
    R, B = weights.shape
    w = weights + eps
    cdf = torch.cumsum(w / torch.sum(w, -1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    u = torch.rand(R, n, device=bins.device).contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    idx = torch.stack([torch.clamp_min(inds - 1, 0), torch.clamp_max(inds, B)], -1).view(R, 2 * n)
    cdf_g = torch.gather(cdf, 1, idx).view(R, n, 2)
    bins_g = torch.gather(bins, 1, idx).view(R, n, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


class ImportanceRenderer(nn.Module):
    """Two-pass volume rendering of triplanes: ``depth_resolution`` stratified samples, then
    ``depth_resolution_importance`` samples drawn from the (max-then-avg smoothed) coarse weights; both sets merged
    by depth and composited. ``chunk`` bounds the points decoded at once (memory only; the result is the same)."""

    def __init__(self, depth_resolution: int = 48, depth_resolution_importance: int = 48, ray_start=2.25, ray_end=3.3,
                 box_warp: float = 1.0, disparity_space_sampling: bool = False, white_back: bool = False,
                 density_noise: float = 0.0, chunk: int = 1 << 18):
        super().__init__()
        self.depth_resolution, self.depth_resolution_importance = depth_resolution, depth_resolution_importance
        self.ray_start, self.ray_end, self.box_warp = ray_start, ray_end, box_warp
        self.disparity, self.white_back, self.density_noise, self.chunk = disparity_space_sampling, white_back, density_noise, chunk

    def run_model(self, planes, decoder, points):
        """points [N, P, 3] -> (features [N, P, C], raw density [N, P, 1]), decoded ``chunk`` points at a time."""
        outs = [decoder(sample_planes(planes, points[:, i:i + self.chunk], self.box_warp))
                for i in range(0, points.shape[1], self.chunk)]
        rgb, sigma = torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1)
        if self.density_noise > 0:
            sigma = sigma + torch.randn_like(sigma) * self.density_noise
        return rgb, sigma

    def stratified(self, origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """[N, M, S, 1] jittered depths between the near and far bounds (fixed, or 'auto': the box's)."""
        N, M, _ = origins.shape
        S = self.depth_resolution
        if self.ray_start == self.ray_end == "auto":
            start, end = ray_box_limits(origins, dirs, self.box_warp)
            ok = end > start
            if torch.any(ok).item():
                start = torch.where(ok, start, start[ok].min())
                end = torch.where(ok, end, start[ok].max())  # EG3D fills misses with the nearest entry (sic)
        else:
            start, end = self.ray_start, self.ray_end
        if self.disparity:
            d = torch.linspace(0, 1, S, device=origins.device).reshape(1, 1, S, 1).repeat(N, M, 1, 1)
            d = d + torch.rand_like(d) * (1 / (S - 1))
            return 1.0 / (1.0 / start * (1.0 - d) + 1.0 / end * d)
        if isinstance(start, torch.Tensor):
            steps = (torch.arange(S, dtype=torch.float32, device=origins.device) / (S - 1)).reshape(S, 1, 1, 1)
            d = (start[None] + steps * (end - start)[None]).permute(1, 2, 0, 3)
            return d + torch.rand_like(d) * ((end - start) / (S - 1))[..., None]
        d = torch.linspace(start, end, S, device=origins.device).reshape(1, 1, S, 1).repeat(N, M, 1, 1)
        return d + torch.rand_like(d) * ((end - start) / (S - 1))

    @torch.no_grad()
    def importance(self, depths: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Coarse depths [N, M, S, 1] and weights [N, M, S-1, 1] -> importance depths [N, M, n, 1]."""
        N, M, S, _ = depths.shape
        z = depths.reshape(N * M, S)
        w = weights.reshape(N * M, -1)
        w = F.max_pool1d(w.unsqueeze(1).float(), 2, 1, padding=1)
        w = F.avg_pool1d(w, 2, 1).squeeze() + 0.01
        mid = 0.5 * (z[:, :-1] + z[:, 1:])
        n = self.depth_resolution_importance
        return _sample_pdf(mid, w[:, 1:-1], n).detach().reshape(N, M, n, 1)

    def forward(self, planes: torch.Tensor, decoder: nn.Module, origins: torch.Tensor, dirs: torch.Tensor):
        """planes [N, 3, C, H, W], rays [N, M, 3] -> (features in [-1, 1] [N, M, F], depth [N, M, 1], opacity [N, M, 1])."""
        depths = self.stratified(origins, dirs)
        N, M, S, _ = depths.shape

        def decode(d):
            pts = (origins.unsqueeze(-2) + d * dirs.unsqueeze(-2)).reshape(N, -1, 3)
            rgb, sigma = self.run_model(planes, decoder, pts)
            return rgb.reshape(N, M, d.shape[2], -1), sigma.reshape(N, M, d.shape[2], 1)

        colors, dens = decode(depths)
        if self.depth_resolution_importance > 0:
            _, _, w = _march(colors, dens, depths, self.white_back)
            fine = self.importance(depths, w)
            colors_f, dens_f = decode(fine)
            all_d = torch.cat([depths, fine], -2)
            _, order = torch.sort(all_d, dim=-2)
            depths = torch.gather(all_d, -2, order)
            colors = torch.gather(torch.cat([colors, colors_f], -2), -2, order.expand(-1, -1, -1, colors.shape[-1]))
            dens = torch.gather(torch.cat([dens, dens_f], -2), -2, order)
        rgb, depth, w = _march(colors, dens, depths, self.white_back)
        return rgb, depth, w.sum(2)
