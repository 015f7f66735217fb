"""Transformer building blocks of the Avat3r backbone (eqs. 7 and 9): pre-norm attention and MLP layers.

All attention goes through ``torch.nn.functional.scaled_dot_product_attention`` so that flash / memory-
efficient kernels are used on GPU. Blocks are pre-norm (x + f(LayerNorm(x))), which trains stably at depth
without warm-up tricks and is what GRM/DUSt3R-style ViTs use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "Mlp", "SelfBlock", "CrossBlock", "InterleavedBlock"]


class Attention(nn.Module):
    """Multi-head attention: queries from x [B, N, D], keys/values from ctx [B, M, Dc] (ctx=None: self)."""

    def __init__(self, dim: int, heads: int, ctx_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.self_attn = ctx_dim is None
        if self.self_attn:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(ctx_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, D = x.shape
        h = self.heads
        if self.self_attn:
            q, k, v = self.qkv(x).view(B, N, 3, h, D // h).permute(2, 0, 3, 1, 4)  # each [B, h, N, d]
        else:
            M = ctx.shape[1]
            q = self.q(x).view(B, N, h, D // h).transpose(1, 2)
            k, v = self.kv(ctx).view(B, M, 2, h, D // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, h, N, d]
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    """Token-wise two-layer MLP with GELU: [..., D] -> [..., D]."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfBlock(nn.Module):
    """[self-attention, MLP], pre-norm: expression-independent (eq. 7)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:  # [B, N, D]
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """[cross-attention to the expression tokens, MLP], pre-norm (eq. 9). Does not mix image tokens."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, mlp: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, ctx_dim=dim)
        self.has_mlp = mlp  # without it, [self-attn, MLP] + [cross-attn] has the interleaved block's parameter count
        if mlp:
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:  # x [B, N, D], ctx [B, S, D]
        x = x + self.attn(self.norm1(x), ctx)
        return x + self.mlp(self.norm2(x)) if self.has_mlp else x


class InterleavedBlock(nn.Module):
    """[self-attention, cross-attention, MLP], pre-norm: the paper-like order (eqs. 7 and 9 in every block)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, ctx_dim=dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:  # x [B, N, D], ctx [B, S, D]
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), ctx)
        return x + self.mlp(self.norm3(x))
