"""Dense reference rasterizer: every Gaussian against every pixel, O(G x H x W) memory. Tests only.

Written as plainly as possible (3DGS eq. 3 with gsplat's thresholds) so that the fast pair-based torch
backend can be checked against it on small scenes.
"""

from __future__ import annotations

import torch

from .projection import ALPHA_MAX, ALPHA_MIN, T_MIN, project_gaussians

__all__ = ["rasterize_dense"]


def rasterize_dense(
    means, quats, scales, opacities, colors, viewmats, Ks, width: int, height: int, background,
    *, eps2d: float = 0.3, near: float = 0.01, far: float = 1e3, antialiased: bool = False,
):
    """Same signature and outputs as ``rasterize_torch``; for scenes of a few hundred Gaussians."""
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, eps2d=eps2d, near=near, far=far, antialiased=antialiased
    )
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype, device=means.device) + 0.5,
        torch.arange(width, dtype=means.dtype, device=means.device) + 0.5,
        indexing="ij",
    )
    colors_out, alphas_out, depths_out = [], [], []
    for c in range(len(viewmats)):
        vis = torch.nonzero(proj.valid[c]).squeeze(1)
        order = vis[torch.sort(proj.depths[c, vis], stable=True).indices]
        m, con, op = proj.means2d[c, order], proj.conics[c, order], proj.opacities[c, order]
        dx = m[:, 0, None, None] - xs  # [G, H, W]
        dy = m[:, 1, None, None] - ys
        sigma = 0.5 * (con[:, 0, None, None] * dx**2 + con[:, 2, None, None] * dy**2) + con[:, 1, None, None] * dx * dy
        alpha = torch.clamp(op[:, None, None] * torch.exp(-sigma), max=ALPHA_MAX)
        alpha = torch.where((alpha >= ALPHA_MIN) & (sigma >= 0), alpha, torch.zeros_like(alpha))
        T_incl = torch.cumprod(1 - alpha, 0)
        T_excl = torch.cat([torch.ones_like(alpha[:1]), T_incl[:-1]], 0)
        w = alpha * T_excl * (T_incl > T_MIN)  # early stop: excluded once T would drop to <= 1e-4
        rgb = torch.einsum("ghw,gk->hwk", w, colors[order])
        acc = w.sum(0)[..., None]
        d = torch.einsum("ghw,g->hw", w, proj.depths[c, order])[..., None]
        colors_out.append(rgb + (1 - acc) * background[c])
        alphas_out.append(acc)
        depths_out.append(d / acc.clamp(min=1e-10))
    return torch.stack(colors_out), torch.stack(alphas_out), torch.stack(depths_out)
