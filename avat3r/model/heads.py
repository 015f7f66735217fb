"""Gaussian attribute heads: raw upsampler output -> bounded per-pixel Gaussian maps, skips and masking.

Implements eqs. 11-13 of the paper. The raw map has 14 channels per pixel:
position offset (3) | scale (3) | rotation (4, wxyz) | colour (3) | opacity (1). Activations (the paper is
silent on them; chosen so every attribute is valid for any network output and a zero output is a sensible
start):

- position: ``I^pos + max_offset * tanh(raw)`` with the pos skip (eq. 11; zero output = the prior's point);
  ``position_range * tanh(raw)`` without it.
- scale: ``exp(lerp(log s_min, log s_max, sigmoid(raw)))``, i.e. a sigmoid in log space, so scales from
  0.1 mm to 2 cm are equally easy to reach (a linear sigmoid would squash the small ones the head needs).
- rotation: ``normalize(raw + (1, 0, 0, 0))`` (zero output = identity).
- colour: ``sigmoid(raw + logit(I))`` with the rgb skip (eq. 12 as a residual in logit space: zero output
  reproduces the pixel colour, and colours stay inside (0, 1) without a clamp that would kill gradients);
  ``sigmoid(raw)`` without it.
- opacity: ``sigmoid(raw)``.
The decode runs in float32 even under bf16 autocast: positions need more than bf16's 8 mantissa bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..gaussians import Gaussians
from .config import ModelConfig

__all__ = ["GaussianMaps", "decode_maps", "RAW_CHANNELS"]

RAW_CHANNELS = 14
_LOGIT_EPS = 1e-4  # colour logits of exact 0 / 1 pixels are clamped to +-9.2


@dataclass
class GaussianMaps:
    """Per-pixel Gaussians of B items x V views: means/scales/colors [B, V, H, W, 3]; quats [B, V, H, W, 4]
    (wxyz, unit); opacities [B, V, H, W]; mask [B, V, H, W] bool (confidence > tau, eq. 13)."""

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    mask: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, V, H, W)."""
        return tuple(self.mask.shape)  # type: ignore[return-value]

    def to_gaussians(self) -> list[Gaussians]:
        """One ``Gaussians`` set per batch item: the masked pixels of all views (view-major, row-major)."""
        out = []
        for b in range(self.mask.shape[0]):
            idx = self.mask[b].flatten().nonzero().squeeze(1)  # one host sync per item, shared by all attributes
            pick = lambda t: t[b].flatten(0, 2).index_select(0, idx) if t.dim() == 5 else t[b].flatten().index_select(0, idx)  # noqa: E731
            out.append(Gaussians(pick(self.means), pick(self.quats), pick(self.scales), pick(self.opacities), pick(self.colors)))
        return out

    def detach(self) -> "GaussianMaps":
        return GaussianMaps(**{f.name: getattr(self, f.name).detach() for f in fields(self)})


def decode_maps(raw: torch.Tensor, images: torch.Tensor, positions: torch.Tensor, confidence: torch.Tensor,
                cfg: ModelConfig) -> GaussianMaps:
    """raw [B, V, H, W, 14], images/positions [B, V, H, W, 3], confidence [B, V, H, W] -> GaussianMaps."""
    raw = raw.float()
    off, s, q, c, o = raw.split([3, 3, 4, 3, 1], dim=-1)
    if cfg.pos_skip:
        means = positions.float() + cfg.max_offset * torch.tanh(off)  # eq. 11
    else:
        means = cfg.position_range * torch.tanh(off)
    lo, hi = math.log(cfg.scale_min), math.log(cfg.scale_max)
    scales = torch.exp(lo + (hi - lo) * torch.sigmoid(s))
    quats = F.normalize(q + q.new_tensor([1.0, 0.0, 0.0, 0.0]), dim=-1)
    if cfg.rgb_skip:
        colors = torch.sigmoid(c + torch.logit(images.float().clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)))  # eq. 12
    else:
        colors = torch.sigmoid(c)
    opacities = torch.sigmoid(o[..., 0])
    mask = confidence > cfg.conf_threshold  # eq. 13
    return GaussianMaps(means, quats, scales, opacities, colors, mask)
