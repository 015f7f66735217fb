"""Baselines evaluated beside the model (same samples, same metrics):

- ``prior_only``: no network. One Gaussian per confident input pixel (confidence > tau, eq. 13) at the prior's
  position (DUSt3R / visual hull), with the input pixel's colour, opaque, isotropic, its radius the pixel's
  footprint at its depth (``footprint * z / fx``). What the skips (eqs. 11-12) alone would give.
- ``static``: the model with its expression input held at neutral (the code of the ``neutral`` preset): what
  a reconstruction model without animation would give on expression-changing targets.
"""

from __future__ import annotations

import torch

from ..data.batch import Batch
from ..gaussians import Gaussians

__all__ = ["prior_only_gaussians", "neutral_expression", "BASELINES"]

BASELINES = ("prior_only", "static")


def prior_only_gaussians(batch: Batch, tau: float = 0.5, footprint: float = 0.7) -> list[Gaussians]:
    """One Gaussian set per batch item from prior positions + input colours (no network)."""
    out = []
    for b in range(batch.batch_size):
        cams = batch.input_cameras[b]
        pos = batch.positions[b].permute(0, 2, 3, 1).float()  # [V, H, W, 3]
        col = batch.images[b].permute(0, 2, 3, 1).float().clamp(0, 1)
        keep = batch.confidence[b, :, 0] > tau  # [V, H, W]
        R = cams.world_to_cam[:, :3, :3].to(pos)  # [V, 3, 3]
        t = cams.world_to_cam[:, :3, 3].to(pos)
        z = torch.einsum("vij,vhwj->vhwi", R, pos)[..., 2] + t[:, None, None, 2]  # camera depth [V, H, W]
        fx = cams.K[:, 0, 0].to(pos)[:, None, None]
        # the footprint is measured at the input image's resolution (cameras may describe another size)
        sx = pos.shape[2] / cams.width.to(pos)[:, None, None]
        radius = (footprint * z.clamp_min(1e-3) / (fx * sx))[keep]  # [N]
        n = radius.shape[0]
        out.append(Gaussians(
            means=pos[keep], quats=torch.tensor([1.0, 0, 0, 0], device=pos.device).expand(n, 4).contiguous(),
            scales=radius[:, None].expand(n, 3).contiguous(), opacities=torch.ones(n, device=pos.device),
            colors=col[keep],
        ))
    return out


def neutral_expression(model) -> torch.Tensor:
    """[C] the neutral code of a model's expression space."""
    net = model.module if hasattr(model, "module") else model
    return torch.tensor(net.config.presets["neutral"], dtype=torch.float32)
