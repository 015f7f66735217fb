"""The DUSt3R network (Wang et al., CVPR 2024), written for this project from the paper and the published weights.

A pair of images (I1, I2) -> two pointmaps, both in camera 1's frame, and their confidences:

    tokens_k = ViT-L encoder(patchify(I_k))                    (shared weights, RoPE-2D, no absolute pos. emb.)
    t1, t2   = decoder_embed(tokens_1), decoder_embed(tokens_2)
    for b in 1..12:  t1' = dec_blocks[b](t1 | t2),  t2' = dec_blocks2[b](t2 | t1)      (self + cross attention)
    X1, C1   = DPT head 1(encoder tokens, decoder tokens of view 1)   # view 1's points in frame 1
    X2, C2   = DPT head 2(...view 2...)                                # view 2's points in frame 1
    X = x/|x| * expm1(|x|),  C = 1 + exp(c)                            ('exp' depth and conf modes)

Parameter names follow the official checkpoint ``naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt`` exactly, so its
state dict loads as published (see ``load.py`` for the aliases tolerated). The paper uses it for eq. 2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dpt import DPTHead

__all__ = ["Dust3rConfig", "Dust3rNet", "RoPE2D", "postprocess_pointmap", "PRESETS"]


@dataclass
class Dust3rConfig:
    """Architecture of the network. ``PRESETS['vitl_512_dpt']`` is the official 512 DPT checkpoint."""

    patch_size: int = 16
    enc_embed_dim: int = 1024
    enc_depth: int = 24
    enc_num_heads: int = 16
    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    mlp_ratio: float = 4.0
    rope_freq: float = 100.0
    head_feature_dim: int = 256
    head_last_dim: int = 128
    head_layer_dims: tuple = (96, 192, 384, 768)
    depth_mode: str = "exp"
    conf_mode: tuple = ("exp", 1.0, math.inf)
    img_size: int = 512  # long side of the training images (informative; any multiple of 16 runs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_layer_dims"] = list(self.head_layer_dims)
        d["conf_mode"] = [self.conf_mode[0], float(self.conf_mode[1]), "inf" if math.isinf(self.conf_mode[2]) else self.conf_mode[2]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Dust3rConfig":
        d = dict(d)
        if "conf_mode" in d:
            m = d["conf_mode"]
            d["conf_mode"] = (m[0], float(m[1]), float(m[2]))
        if "head_layer_dims" in d:
            d["head_layer_dims"] = tuple(d["head_layer_dims"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def hooks(self) -> list[int]:
        """Which of [encoder output, decoder block 1..D] feed the DPT head (original: [0, D/2, 3D/4, D])."""
        d = self.dec_depth
        return [0, d * 2 // 4, d * 3 // 4, d]


PRESETS = {
    "vitl_512_dpt": Dust3rConfig(),
    # for tests: tiny, same structure
    "tiny": Dust3rConfig(enc_embed_dim=32, enc_depth=2, enc_num_heads=2, dec_embed_dim=24, dec_depth=4,
                         dec_num_heads=2, head_feature_dim=16, head_last_dim=8, head_layer_dims=(8, 8, 12, 16)),
}


# ---- rotary position embedding in 2D ------------------------------------------------------------------
class RoPE2D(nn.Module):
    """Rotary embedding over patch rows and columns: the first half of each head's channels is rotated by the
    row index, the second half by the column index (1D RoPE with ``base`` on each, halves-rotation layout)."""

    def __init__(self, base: float = 100.0):
        super().__init__()
        self.base = base

    def _cos_sin(self, dim: int, n: int, device, dtype):
        inv = 1.0 / (self.base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
        ang = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv[None]  # [n, dim/2]
        ang = torch.cat([ang, ang], -1).to(dtype)
        return ang.cos(), ang.sin()

    @staticmethod
    def _rotate(x, pos, cos, sin):
        # x [B, h, N, d]; pos [B, N]
        c, s = cos[pos][:, None], sin[pos][:, None]
        x1, x2 = x.chunk(2, dim=-1)
        return x * c + torch.cat([-x2, x1], -1) * s

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x [B, heads, N, d]; pos [B, N, 2] (row, col) int64 -> same shape as x."""
        half = x.shape[-1] // 2
        cos, sin = self._cos_sin(half, int(pos.max()) + 1, x.device, x.dtype)
        xy, xx = x.split(half, dim=-1)
        return torch.cat([self._rotate(xy, pos[..., 0], cos, sin), self._rotate(xx, pos[..., 1], cos, sin)], -1)


# ---- transformer blocks (parameter names as in the checkpoint) -------------------------------------------
class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D):
        super().__init__()
        self.heads, self.rope = heads, rope
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, pos):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k = self.rope(q, pos), self.rope(k, pos)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, rope: RoPE2D):
        super().__init__()
        self.heads, self.rope = heads, rope
        self.projq, self.projk, self.projv = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, y, xpos, ypos):
        B, N, C = x.shape
        split = lambda t: t.view(B, t.shape[1], self.heads, C // self.heads).transpose(1, 2)  # noqa: E731
        q = self.rope(split(self.projq(x)), xpos)
        k = self.rope(split(self.projk(y)), ypos)
        v = split(self.projv(y))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, rope: RoPE2D):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, pos):
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention on one view's tokens, cross-attention to the other view's (normalised) tokens, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, rope: RoPE2D):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, rope)
        self.cross_attn = CrossAttention(dim, heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_y = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, y, xpos, ypos):
        x = x + self.attn(self.norm1(x), xpos)
        x = x + self.cross_attn(self.norm2(x), self.norm_y(y), xpos, ypos)
        return x + self.mlp(self.norm3(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, img):
        """img [B, 3, H, W] (H, W multiples of the patch) -> tokens [B, N, C], positions [B, N, 2] (row, col)."""
        B, _, H, W = img.shape
        if H % self.patch or W % self.patch:
            raise ValueError(f"DUSt3R input {H}x{W} is not a multiple of the patch size {self.patch}")
        x = self.proj(img).flatten(2).transpose(1, 2)
        h, w = H // self.patch, W // self.patch
        rows = torch.arange(h, device=img.device).repeat_interleave(w)
        cols = torch.arange(w, device=img.device).repeat(h)
        return x, torch.stack([rows, cols], -1)[None].expand(B, -1, -1)


# ---- output post-processing ----------------------------------------------------------------------------
def postprocess_pointmap(out: torch.Tensor, depth_mode: str = "exp", conf_mode=("exp", 1.0, math.inf)) -> dict:
    """Head output [B, 4, H, W] -> {'pts3d' [B, H, W, 3], 'conf' [B, H, W]}.
    'exp' depth: x/|x| * expm1(|x|) (direction kept, distance log-encoded); 'exp' conf: vmin + exp(c) (clipped)."""
    f = out.permute(0, 2, 3, 1)
    xyz = f[..., :3]
    if depth_mode == "exp":
        d = xyz.norm(dim=-1, keepdim=True)
        pts = xyz / d.clamp(min=1e-8) * torch.expm1(d)
    elif depth_mode == "linear":
        pts = xyz
    elif depth_mode == "square":
        d = xyz.norm(dim=-1, keepdim=True)
        pts = xyz / d.clamp(min=1e-8) * d.square()
    else:
        raise ValueError(f"unknown depth_mode {depth_mode!r}")
    mode, vmin, vmax = conf_mode
    c = f[..., 3]
    if mode == "exp":
        conf = vmin + c.exp().clamp(max=vmax - vmin)
    elif mode == "sigmoid":
        conf = (vmax - vmin) * torch.sigmoid(c) + vmin
    else:
        raise ValueError(f"unknown conf_mode {mode!r}")
    return {"pts3d": pts, "conf": conf}


# ---- the network ---------------------------------------------------------------------------------------
class Dust3rNet(nn.Module):
    """DUSt3R with a ViT encoder, two cross-attending decoders and two DPT heads (asymmetric)."""

    def __init__(self, config: Dust3rConfig | None = None):
        super().__init__()
        self.config = cfg = config or Dust3rConfig()
        rope = RoPE2D(cfg.rope_freq)
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.enc_embed_dim)
        # the mask token of CroCo pre-training: unused at inference but part of the published state dict
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_embed_dim))
        self.enc_blocks = nn.ModuleList(
            EncoderBlock(cfg.enc_embed_dim, cfg.enc_num_heads, cfg.mlp_ratio, rope) for _ in range(cfg.enc_depth)
        )
        self.enc_norm = nn.LayerNorm(cfg.enc_embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(cfg.enc_embed_dim, cfg.dec_embed_dim)
        mk = lambda: nn.ModuleList(  # noqa: E731
            DecoderBlock(cfg.dec_embed_dim, cfg.dec_num_heads, cfg.mlp_ratio, rope) for _ in range(cfg.dec_depth)
        )
        self.dec_blocks, self.dec_blocks2 = mk(), mk()
        self.dec_norm = nn.LayerNorm(cfg.dec_embed_dim, eps=1e-6)
        dims = [cfg.enc_embed_dim] + [cfg.dec_embed_dim] * 3
        self.downstream_head1 = DPTHead(dims, cfg.hooks, cfg.head_layer_dims, cfg.head_feature_dim, cfg.head_last_dim, cfg.patch_size)
        self.downstream_head2 = DPTHead(dims, cfg.hooks, cfg.head_layer_dims, cfg.head_feature_dim, cfg.head_last_dim, cfg.patch_size)

    def encode(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """img [B, 3, H, W] in [-1, 1] -> tokens [B, N, Ce], positions [B, N, 2]."""
        x, pos = self.patch_embed(img)
        for blk in self.enc_blocks:
            x = blk(x, pos)
        return self.enc_norm(x), pos

    def decode(self, f1, pos1, f2, pos2) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """-> per view [encoder tokens, decoder block 1 .. D outputs] (last one normalised)."""
        out1, out2 = [f1], [f2]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for b1, b2 in zip(self.dec_blocks, self.dec_blocks2):
            x1, x2 = b1(x1, x2, pos1, pos2), b2(x2, x1, pos2, pos1)  # both read the previous step's tokens
            out1.append(x1)
            out2.append(x2)
        out1[-1], out2[-1] = self.dec_norm(out1[-1]), self.dec_norm(out2[-1])
        return out1, out2

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[dict, dict]:
        """img1, img2 [B, 3, H, W] in [-1, 1], same size ->
        ({'pts3d' [B,H,W,3], 'conf' [B,H,W]}, {'pts3d_in_other_view' [B,H,W,3], 'conf' [B,H,W]}), frame of view 1."""
        if img1.shape != img2.shape:
            raise ValueError(f"DUSt3R pair images must have the same shape, got {tuple(img1.shape)} and {tuple(img2.shape)}")
        B, _, H, W = img1.shape
        feats, pos = self.encode(torch.cat([img1, img2]))
        dec1, dec2 = self.decode(feats[:B], pos[:B], feats[B:], pos[B:])
        cfg = self.config
        with torch.autocast(device_type=img1.device.type, enabled=False):
            r1 = postprocess_pointmap(self.downstream_head1([t.float() for t in dec1], (H, W)), cfg.depth_mode, cfg.conf_mode)
            r2 = postprocess_pointmap(self.downstream_head2([t.float() for t in dec2], (H, W)), cfg.depth_mode, cfg.conf_mode)
        r2["pts3d_in_other_view"] = r2.pop("pts3d")
        return r1, r2
