"""DPT head of DUSt3R (Ranftl et al. 2021): four token maps -> a dense 4-channel map (3 point coords + 1 conf).

Tokens from [encoder, decoder D/2, decoder 3D/4, decoder D] are reshaped to grids at 1/16, resampled to
1/4, 1/8, 1/16, 1/32 (``act_postprocess``), projected to a common width (``scratch.layer{1-4}_rn``) and fused
coarse-to-fine by residual refinement blocks (``scratch.refinenet{4..1}``, each upsampling x2), then the
``head`` convolutions bring the map to full resolution. Parameter names follow the official checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DPTHead"]


class ResidualConvUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """out = out_conv(up2(RCU2(x + RCU1(skip))))."""

    def __init__(self, c: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(c)
        self.resConfUnit2 = ResidualConvUnit(c)
        self.out_conv = nn.Conv2d(c, c, 1)

    def forward(self, x, skip=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    def __init__(self, layer_dims, feature_dim):
        super().__init__()
        for i, c in enumerate(layer_dims):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(c, feature_dim, 3, padding=1, bias=False))
        for i in range(4):
            setattr(self, f"refinenet{i + 1}", FusionBlock(feature_dim))


class _DPT(nn.Module):
    def __init__(self, dims, layer_dims, feature_dim, last_dim):
        super().__init__()
        l0, l1, l2, l3 = layer_dims
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dims[0], l0, 1), nn.ConvTranspose2d(l0, l0, 4, stride=4)),  # 1/16 -> 1/4
            nn.Sequential(nn.Conv2d(dims[1], l1, 1), nn.ConvTranspose2d(l1, l1, 2, stride=2)),  # 1/16 -> 1/8
            nn.Sequential(nn.Conv2d(dims[2], l2, 1)),                                          # 1/16
            nn.Sequential(nn.Conv2d(dims[3], l3, 1), nn.Conv2d(l3, l3, 3, stride=2, padding=1)),  # -> 1/32
        ])
        self.scratch = _Scratch(layer_dims, feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(last_dim, 4, 1),
        )


class DPTHead(nn.Module):
    """tokens: list of [B, N, C_k] (encoder output, then decoder block outputs) -> [B, 4, H, W]."""

    def __init__(self, dims, hooks, layer_dims=(96, 192, 384, 768), feature_dim=256, last_dim=128, patch_size=16):
        super().__init__()
        self.hooks, self.patch = list(hooks), patch_size
        self.dpt = _DPT(dims, layer_dims, feature_dim, last_dim)

    def forward(self, tokens: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        H, W = size
        h, w = H // self.patch, W // self.patch
        d, s = self.dpt, self.dpt.scratch
        maps = [tokens[k].transpose(1, 2).reshape(tokens[k].shape[0], -1, h, w) for k in self.hooks]
        maps = [post(m) for post, m in zip(d.act_postprocess, maps)]
        l1, l2, l3, l4 = (getattr(s, f"layer{i + 1}_rn")(m) for i, m in enumerate(maps))
        p = s.refinenet4(l4)[:, :, : l3.shape[2], : l3.shape[3]]  # odd grids: the stride-2 conv rounds up
        p = s.refinenet3(p, l3)
        p = s.refinenet2(p, l2)
        p = s.refinenet1(p, l1)
        return d.head(p)
