"""Transformer-based upsampler from tokens back to per-pixel Gaussian attribute maps (eq. 10), after GRM.

GRM (Xu et al. 2024) upsamples its ViT tokens with pixel-shuffle steps, each followed by a transformer block
with *windowed* self-attention (dense attention at the upsampled resolution would cost 4^k times more), and
decodes the final tokens to the pixels they cover. Its code is not public; this is our design:

    for each of ``upsampler_steps`` x2 steps:
        LayerNorm -> Linear(D_in, 4 * D_out) -> pixel shuffle x2       (H, W double; width D_in -> D_out)
        ``upsampler_blocks`` x pre-norm [windowed self-attention, MLP]  (w x w windows, within one view)
    LayerNorm -> Linear(D_last, r² · C_raw) -> pixel shuffle x r        (r = patch / 2^steps; linear unpatchify)

Why: the pixel shuffle is the transposed form of the patchify conv (no checkerboard artefacts of strided
transposed convs); windows keep the cost linear in the number of tokens; attention stays within one view
because cross-view matching already happened in the dense self-attention of the backbone, and the
upsampler's job is local detail. The paper's Table 4 uses one step: 512² input, patch 8 -> 64² tokens ->
128² tokens (8x8 windows) -> a 4x4 linear unpatchify -> 512² maps. Padding to a window multiple is masked
out of the attention, so any token grid size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SelfBlock

__all__ = ["Upsampler", "pixel_shuffle"]


def pixel_shuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """Channels-last pixel shuffle: [N, H, W, r*r*C] -> [N, H*r, W*r, C]."""
    N, H, W, C = x.shape
    c = C // (r * r)
    return x.view(N, H, W, r, r, c).permute(0, 1, 3, 2, 4, 5).reshape(N, H * r, W * r, c)


class WindowBlocks(nn.Module):
    """Pre-norm transformer blocks with self-attention inside non-overlapping w x w windows: [N, H, W, C]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, window: int, depth: int):
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(SelfBlock(dim, heads, mlp_ratio) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, H, W, C = x.shape
        w = self.window
        ph, pw = (-H) % w, (-W) % w
        if ph or pw:
            x = F.pad(x, (0, 0, 0, pw, 0, ph))
        Hp, Wp = H + ph, W + pw
        nh, nw = Hp // w, Wp // w
        t = x.view(N, nh, w, nw, w, C).permute(0, 1, 3, 2, 4, 5).reshape(N * nh * nw, w * w, C)
        mask = None
        if ph or pw:  # keys that are padding are never attended to (every window keeps >= 1 real token)
            valid = torch.zeros(Hp, Wp, dtype=torch.bool, device=x.device)
            valid[:H, :W] = True
            valid = valid.view(nh, w, nw, w).permute(0, 2, 1, 3).reshape(nh * nw, 1, 1, w * w)
            mask = valid.repeat(N, 1, 1, 1)  # [N*nh*nw, 1, 1, w*w]
        for blk in self.blocks:
            t = blk(t, attn_mask=mask)
        x = t.view(N, nh, nw, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(N, Hp, Wp, C)
        return x[:, :H, :W]


class Upsampler(nn.Module):
    """Tokens [N, Hp, Wp, D] -> raw per-pixel attribute maps [N, Hp*patch, Wp*patch, out_channels]."""

    def __init__(self, dim: int, dims: list[int], heads: int, mlp_ratio: float, window: int, blocks: int,
                 factor: int, out_channels: int, init_std: float):
        super().__init__()
        self.factor = factor
        self.expand = nn.ModuleList()
        self.expand_norm = nn.ModuleList()
        self.stages = nn.ModuleList()
        d_in = dim
        for d_out in dims:
            self.expand_norm.append(nn.LayerNorm(d_in))
            self.expand.append(nn.Linear(d_in, 4 * d_out))
            self.stages.append(WindowBlocks(d_out, heads, mlp_ratio, window, blocks))
            d_in = d_out
        self.out_norm = nn.LayerNorm(d_in)
        self.out = nn.Linear(d_in, factor * factor * out_channels)
        # small init: the raw maps start near zero, so Gaussians start at the skip inputs (I^pos, I)
        nn.init.normal_(self.out.weight, std=init_std)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, expand, stage in zip(self.expand_norm, self.expand, self.stages):
            x = stage(pixel_shuffle(expand(norm(x)), 2))
        return pixel_shuffle(self.out(self.out_norm(x)), self.factor)
