"""Swin Transformer V2 (Liu et al. 2022) as GOAE's encoder uses it: scaled-cosine window attention with a
continuous (log-spaced, MLP) relative position bias, post-normalisation, shifted windows, patch merging; the
forward returns the final tokens and the inputs of the four stages (GOAE's multi-scale features). Written from
GOAE's ``models/swin_transformer.py`` (itself from microsoft/Swin-Transformer); parameter and buffer names match,
so GOAE's state dict loads key for key. Dropout and stochastic depth are inference no-ops and left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SwinV2"]


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * H/w * W/w, w*w, C]."""
    B, H, W, C = x.shape
    return x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)


def _unwindow(x: torch.Tensor, w: int, H: int, W: int) -> torch.Tensor:
    B = x.shape[0] // ((H // w) * (W // w))
    return x.view(B, H // w, W // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


class WindowAttention(nn.Module):
    """Cosine attention inside w x w windows, logits scaled by exp(logit_scale) (<= 100), plus 16 sigmoid(bias)
    from ``cpb_mlp`` applied to log-spaced relative coordinates (normalised by the pre-training window)."""

    def __init__(self, dim: int, window: int, heads: int, pretrained_window: int = 0):
        super().__init__()
        self.window, self.heads = window, heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((heads, 1, 1))))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False))
        r = torch.arange(-(window - 1), window, dtype=torch.float32)
        table = torch.stack(torch.meshgrid([r, r], indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
        table /= (pretrained_window - 1) if pretrained_window > 0 else (window - 1)
        table *= 8
        table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / math.log2(8)
        self.register_buffer("relative_coords_table", table)
        c = torch.stack(torch.meshgrid([torch.arange(window), torch.arange(window)], indexing="ij")).flatten(1)
        rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += window - 1
        rel[:, :, 1] += window - 1
        rel[:, :, 0] *= 2 * window - 1
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B*nW, N, C], mask [nW, N, N] (0 / -100) -> [B*nW, N, C]."""
        Bn, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(Bn, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=torch.log(torch.tensor(1.0 / 0.01))).exp()
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.heads)
        bias = table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1).contiguous()
        attn = attn + 16 * torch.sigmoid(bias).unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.view(Bn // nW, nW, self.heads, N, N) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, N, N)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(Bn, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """x + norm1(W-MSA(x)) then x + norm2(MLP(x)) (V2's post-norm); odd blocks shift the windows by w/2 with a
    mask between regions that were not neighbours. Windows never exceed the feature map (then no shift)."""

    def __init__(self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0,
                 pretrained_window: int = 0):
        super().__init__()
        self.resolution = resolution
        if resolution <= window:
            shift, window = 0, resolution
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads, pretrained_window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = None
        if shift > 0:
            img = torch.zeros((1, resolution, resolution, 1))
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for i, (h, w) in enumerate((h, w) for h in cuts for w in cuts):
                img[:, h, w, :] = i
            mw = _windows(img, window).view(-1, window * window)
            mask = mw.unsqueeze(1) - mw.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, R*R, C]
        R, (B, _, C) = self.resolution, x.shape
        h = x.view(B, R, R, C)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        h = _unwindow(self.attn(_windows(h, self.window), mask=self.attn_mask), self.window, R, R)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.norm1(h.reshape(B, R * R, C))
        return x + self.norm2(self.mlp(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhoods concatenated (order: (0,0), (1,0), (0,1), (1,1)) -> linear 4C -> 2C -> LayerNorm."""

    def __init__(self, resolution: int, dim: int):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x):
        B, L, C = x.shape
        x = x.view(B, self.resolution, self.resolution, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.norm(self.reduction(x.reshape(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim, resolution, depth, heads, window, mlp_ratio, pretrained_window, downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2,
                                               mlp_ratio, pretrained_window) for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinV2(nn.Module):
    """image [B, 3, S, S] -> (final tokens, normed [B, 8E, (S/32)^2], stage-3 input [B, 8E, (S/32)^2], stage-2
    input [B, (S/16)^2, 4E], stage-1 input [B, (S/8)^2, 2E], stage-0 input [B, (S/4)^2, E]) (GOAE's order: base,
    query, coarse, mid, fine)."""

    def __init__(self, img_size: int = 256, patch: int = 4, embed_dim: int = 128, depths=(2, 2, 18, 2),
                 heads=(4, 8, 16, 32), window: int = 16, mlp_ratio: float = 4.0, pretrained_windows=(12, 12, 12, 6)):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, 3, embed_dim)
        r = img_size // patch
        self.layers = nn.ModuleList([
            BasicLayer(embed_dim * 2**i, r // 2**i, depths[i], heads[i], window, mlp_ratio, pretrained_windows[i],
                       downsample=i < len(depths) - 1) for i in range(len(depths))])
        self.norm = nn.LayerNorm(embed_dim * 2 ** (len(depths) - 1))

    def forward(self, x):
        x = self.patch_embed(x)
        feats = []
        for layer in self.layers:
            feats.append(x)
            x = layer(x)
        x = self.norm(x)
        fine, mid, coarse, query = feats[0], feats[1], feats[2], feats[3]
        return x.transpose(1, 2), query.transpose(1, 2), coarse, mid, fine
