"""Image (+ mask, + camera angles) -> w+ of a GGHead generator: GOAE's encoder design on a small CNN.

    x [B, 4, S, S] (RGB * mask, mask) --stem + ``levels`` stride-2 residual stages--> features per level
    base   = MLP(pool(deepest))                         one w for every layer (the identity's gist)
    coarse = MLP(pool(deepest))  -> ws[coarse group]    low-resolution synthesis layers (shape)
    mid    = MLP(pool(middle))   -> ws[mid group]
    fine   = MLP(pool(shallow))  -> ws[fine group]      high-resolution layers (texture, colour)
    ws     = w_avg + w_std * (base + correction)        [B, num_ws, w_dim]

w_avg / w_std are the generator's mean and per-dimension spread of w (buffers, set from the generator by
``set_w_stats``), so an untrained encoder returns the average head and the network learns in normalised units.
The output layers start at zero for the same reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import EncoderConfig

__all__ = ["LiftEncoder", "w_statistics", "pose_features"]


class _Stage(nn.Module):
    """stride-2 conv + residual conv block (GroupNorm, SiLU)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        g = max(1, min(8, cout // 4))
        self.down = nn.Conv2d(cin, cout, 3, 2, 1)
        self.n1, self.c1 = nn.GroupNorm(g, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.n2, self.c2 = nn.GroupNorm(g, cout), nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.c2(F.silu(self.n2(self.c1(F.silu(self.n1(x))))))


class _Head(nn.Module):
    """Pooled features (+ pose) -> n ws corrections [B, n, w_dim]; the last layer starts at zero."""

    def __init__(self, cin: int, hidden: int, n: int, w_dim: int):
        super().__init__()
        self.n, self.w_dim = n, w_dim
        self.fc1 = nn.Linear(cin, hidden)
        self.fc2 = nn.Linear(hidden, n * w_dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(f))).view(-1, self.n, self.w_dim)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, 2C]: mean and max (the max keeps small, strong features such as eyes)."""
    return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)


def pose_features(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """Camera angles in degrees [B] -> [B, 4] (sin, cos of each)."""
    a, e = torch.deg2rad(azimuth.float()), torch.deg2rad(elevation.float())
    return torch.stack([a.sin(), a.cos(), e.sin(), e.cos()], 1)


class LiftEncoder(nn.Module):
    """``forward(image [B, 3, S, S], mask [B, 1, S, S], pose [B, 4] | None) -> ws [B, num_ws, w_dim]``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = cfg = config
        chans = [min(cfg.width * 2 ** i, cfg.max_width) for i in range(cfg.levels + 1)]
        self.stem = nn.Conv2d(4, chans[0], 3, 1, 1)
        self.stages = nn.ModuleList(_Stage(chans[i], chans[i + 1]) for i in range(cfg.levels))
        npose = 4 if cfg.pose_input else 0
        fine_c, mid_c, coarse_c = chans[-3], chans[-2], chans[-1]
        gc, gm, gf = cfg.groups()
        self.base = _Head(2 * coarse_c + npose, cfg.hidden, 1, cfg.w_dim)
        self.coarse = _Head(2 * coarse_c + npose, cfg.hidden, len(gc), cfg.w_dim)
        self.mid = _Head(2 * mid_c + npose, cfg.hidden, len(gm), cfg.w_dim) if len(gm) else None
        self.fine = _Head(2 * fine_c + npose, cfg.hidden, len(gf), cfg.w_dim) if len(gf) else None
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.register_buffer("w_std", torch.ones(cfg.w_dim))

    @torch.no_grad()
    def set_w_stats(self, w_avg: torch.Tensor, w_std: torch.Tensor) -> None:
        self.w_avg.copy_(w_avg.reshape(-1))
        self.w_std.copy_(w_std.reshape(-1).clamp_min(1e-4))

    def normalise(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> the same in units of the generator's spread around w_avg."""
        return (ws - self.w_avg) / self.w_std

    def forward(self, image: torch.Tensor, mask: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        S = cfg.image_size
        if image.shape[-1] != S:
            image = F.interpolate(image, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
            mask = F.interpolate(mask, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        x = torch.cat([image * mask * 2 - 1, mask * 2 - 1], 1)
        feats = []
        x = self.stem(x)
        for st in self.stages:
            x = st(x)
            feats.append(x)
        extra = [] if not cfg.pose_input else [pose if pose is not None else x.new_zeros(x.shape[0], 4)]
        fine, mid, coarse = (_pool(f) for f in feats[-3:])
        pc = torch.cat([coarse, *extra], 1)
        parts = [self.coarse(pc)]
        if self.mid is not None:
            parts.append(self.mid(torch.cat([mid, *extra], 1)))
        if self.fine is not None:
            parts.append(self.fine(torch.cat([fine, *extra], 1)))
        delta = self.base(pc) + torch.cat(parts, 1)
        return self.w_avg + self.w_std * delta


@torch.no_grad()
def w_statistics(G, n: int = 512, truncation: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's mean w and per-dimension spread over n samples at its canonical camera -> ([w_dim], [w_dim]).
    (The mean is measured rather than read from ``w_avg``: a generator with random weights has none.)"""
    dev = G.template_points.device
    z = torch.randn(n, G.config.z_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    c = G.canonical_label(dev).expand(n, -1)
    w = G.mapping(z, c, truncation_psi=truncation)[:, 0]
    return w.mean(0), w.std(0)

