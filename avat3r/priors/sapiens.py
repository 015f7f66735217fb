"""Sapiens feature maps (Khirodkar et al., ECCV 2024): the paper's I^feat = SAPIENS(I) (eq. 3), fed to eqs. 5-6.

The Sapiens pretrain backbones are plain ViTs (MAE-pretrained on humans, patch 16, 1024x1024 input):

    size   width  layers  heads   Hub repo (weights .pth / TorchScript .pt2)
    0.3b   1024   24      16      facebook/sapiens-pretrain-0.3b[-torchscript]
    0.6b   1280   32      16      facebook/sapiens-pretrain-0.6b[-torchscript]
    1b     1536   40      24      facebook/sapiens-pretrain-1b[-torchscript]
    2b     1920   48      32      facebook/sapiens-pretrain-2b[-torchscript]   (the paper's choice, Table 4)

Input as the official feature extraction (``lite/demo/extract_feature.py``): RGB in 0..255, resized to 1024x1024
(``--shape`` default; the pretrain configs use ``image_size=1024``), normalised with mean [123.5, 116.5, 103.5]
and std [58.5, 57.0, 57.5]. Output: the last layer after the final LayerNorm without the class token, as
B x C x H/16 x W/16 (``out_type='featmap'``).

Two weight formats:

- ``.pth`` (mmengine checkpoint): read with the restricted unpickler (tensors only, nothing executed), keys
  ``[backbone.]patch_embed.projection``, ``cls_token``, ``pos_embed``, ``layers.{i}.{ln1, attn.qkv, attn.proj,
  ln2, ffn.layers.0.0, ffn.layers.1}``, ``ln1``; position embeddings are resized bicubically when the input
  grid differs from the checkpoint's (as mmpretrain's ``resize_pos_embed``).
- TorchScript ``.pt2`` (``torch.jit.load``): loading a TorchScript file and calling it RUNS THE CODE IN THE FILE.
  Use only the official files. Before the first call we check the embedded weights (patch-embedding width and
  layer count must match the requested size), optionally the file's SHA-256 (``expected_sha256``), and after
  the call the output shape (B x C x 64 x 64). The official files were traced at 1024x1024, so that is the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, InputError
from .checkpoints import load_state_dict_file, resolve_weight_file, sha256_file, state_dict_mismatch

__all__ = ["SAPIENS_ARCH", "SapiensConfig", "SapiensViT", "SapiensFeatures", "load_sapiens_state_dict", "sapiens_files"]

SAPIENS_ARCH = {  # size -> (width, layers, heads)
    "0.3b": (1024, 24, 16),
    "0.6b": (1280, 32, 16),
    "1b": (1536, 40, 24),
    "2b": (1920, 48, 32),
}
_EPOCH = {"0.3b": 1600, "0.6b": 1600, "1b": 173, "2b": 660}
MEAN = (123.5, 116.5, 103.5)
STD = (58.5, 57.0, 57.5)
ENV_VAR = "AVAT3R_SAPIENS"


def sapiens_files(size: str) -> dict:
    """Official file names and Hub repos of one size."""
    ep = _EPOCH[size]
    return {
        "pth": (f"facebook/sapiens-pretrain-{size}", f"sapiens_{size}_epoch_{ep}.pth"),
        "torchscript": (f"facebook/sapiens-pretrain-{size}-torchscript", f"sapiens_{size}_epoch_{ep}_torchscript.pt2"),
    }


def _size_of(name: str) -> str:
    s = name.lower().replace("sapiens", "").strip("-_ ")
    if s not in SAPIENS_ARCH:
        raise InputError(f"unknown Sapiens size {name!r}; choose one of {', '.join('sapiens-' + k for k in SAPIENS_ARCH)}")
    return s


@dataclass
class SapiensConfig:
    embed_dim: int = 1920
    depth: int = 48
    num_heads: int = 32
    patch_size: int = 16
    pretrain_size: int = 1024  # the checkpoint's pos_embed grid is pretrain_size / patch_size squared
    mlp_ratio: float = 4.0

    @classmethod
    def for_size(cls, size: str) -> "SapiensConfig":
        w, d, h = SAPIENS_ARCH[_size_of(size)]
        return cls(embed_dim=w, depth=d, num_heads=h)


# ---- the backbone ------------------------------------------------------------------------------------
class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.projection = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.projection(x)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class _FFN(nn.Module):
    """mmcv FFN layout: layers.0 = Sequential(Linear, GELU, Dropout), layers.1 = Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.layers(x)


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = _FFN(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


def resize_pos_embed(pos: torch.Tensor, src: tuple[int, int], dst: tuple[int, int], extra: int = 1) -> torch.Tensor:
    """pos [1, extra + h*w, C] on grid ``src`` -> grid ``dst`` (bicubic, align_corners=False; extra tokens kept)."""
    if tuple(src) == tuple(dst):
        return pos
    C = pos.shape[-1]
    grid = pos[:, extra:].reshape(1, src[0], src[1], C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=dst, mode="bicubic", align_corners=False).to(pos.dtype)
    return torch.cat([pos[:, :extra], grid.flatten(2).transpose(1, 2)], 1)


class SapiensViT(nn.Module):
    """Sapiens pretrain ViT: images [B, 3, H, W] (normalised) -> features [B, C, H/16, W/16]."""

    def __init__(self, config: SapiensConfig | None = None):
        super().__init__()
        self.config = cfg = config or SapiensConfig()
        g = cfg.pretrain_size // cfg.patch_size
        self.grid = (g, g)
        self.patch_embed = _PatchEmbed(cfg.embed_dim, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + g * g, cfg.embed_dim))
        self.layers = nn.ModuleList(_Layer(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise InputError(f"Sapiens input {tuple(x.shape[-2:])} must be a multiple of {p}")
        x = self.patch_embed(x)
        B, C, h, w = x.shape
        x = torch.cat([self.cls_token.expand(B, -1, -1), x.flatten(2).transpose(1, 2)], 1)
        x = x + resize_pos_embed(self.pos_embed, self.grid, (h, w))
        for layer in self.layers:
            x = layer(x)
        x = self.ln1(x)
        return x[:, 1:].transpose(1, 2).reshape(B, C, h, w)


# ---- loading ------------------------------------------------------------------------------------------
_DROP = re.compile(r"^(neck|head|data_preprocessor|target_generator)\.")


def load_sapiens_state_dict(sd: dict, model: SapiensViT, source: str = "checkpoint") -> dict:
    """Official Sapiens state dict (with or without the ``backbone.`` prefix; MAE decoder keys dropped) -> exactly
    ``model``'s keys; pos_embed of another grid is resized. Missing / unexpected / wrong shapes -> CheckpointError."""
    out = {}
    for k, v in sd.items():
        if _DROP.match(k):
            continue
        out[k[len("backbone."):] if k.startswith("backbone.") else k] = v
    own = model.state_dict()
    if "pos_embed" in out and out["pos_embed"].shape != own["pos_embed"].shape and out["pos_embed"].ndim == 3:
        n = out["pos_embed"].shape[1] - 1
        g = int(round(math.sqrt(n)))
        if g * g == n and out["pos_embed"].shape[2] == own["pos_embed"].shape[2]:
            out["pos_embed"] = resize_pos_embed(out["pos_embed"], (g, g), model.grid)
    problem = state_dict_mismatch(own, out)
    if problem:
        c = model.config
        raise CheckpointError(
            f"{source}: does not match a Sapiens ViT of width {c.embed_dim} and {c.depth} layers ({problem}). "
            "Check that the file is the sapiens-pretrain checkpoint of the size you asked for"
        )
    return out


def _check_torchscript(module, size: str, path: Path) -> None:
    """Refuse a TorchScript file whose embedded weights are not the requested Sapiens size (checked before any call)."""
    w, depth, _ = SAPIENS_ARCH[size]
    try:
        shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    except Exception as e:  # noqa: BLE001 - any failure means we cannot vouch for the file
        raise CheckpointError(f"{path}: cannot list the TorchScript module's weights ({e}); not a Sapiens file") from e
    patch = [s for k, s in shapes.items() if len(s) == 4 and s[1:] == (3, 16, 16)]
    qkv = [k for k, s in shapes.items() if k.endswith("qkv.weight") and s == (3 * w, w)]
    if not patch or patch[0][0] != w or len(qkv) != depth:
        got = patch[0][0] if patch else "no 16x16 patch embedding"
        raise CheckpointError(
            f"{path}: this TorchScript file is not Sapiens-{size} (expected width {w} with {depth} layers, found width "
            f"{got} and {len(qkv)} matching layers); get '{sapiens_files(size)['torchscript'][1]}' from "
            f"{sapiens_files(size)['torchscript'][0]}"
        )


# ---- the feature extractor --------------------------------------------------------------------------
class SapiensFeatures:
    """FeatureExtractor 'sapiens-<size>': images [V, H, W, 3] in [0, 1] -> features [V, C, h, w] (float32).

    ``resolution`` (H, W) the images are resized to (1024x1024 as the official extraction; the TorchScript files
    only accept that); ``amp``: bf16 on CUDA for the .pth path."""

    def __init__(self, size: str = "2b", *, model: SapiensViT | None = None, torchscript=None, device=None,
                 resolution: tuple[int, int] = (1024, 1024), batch_size: int = 4, amp: bool = True):
        self.size = _size_of(size)
        self.name = f"sapiens-{self.size}"
        self.dim = SAPIENS_ARCH[self.size][0] if model is None else model.config.embed_dim
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.torchscript = model, torchscript
        if self.model is not None:
            self.model = self.model.to(self.device).eval()
        self.resolution, self.batch_size, self.amp = tuple(resolution), batch_size, amp
        if torchscript is not None and self.resolution != (1024, 1024):
            raise InputError("the official Sapiens TorchScript files are traced at 1024x1024; use resolution=(1024, 1024)")

    @classmethod
    def from_pretrained(cls, name: str = "sapiens-2b", weights=None, *, device=None, fmt: str = "auto",
                        expected_sha256: str | None = None, allow_download: bool = True, **kw) -> "SapiensFeatures":
        """Load the official weights: ``fmt`` 'pth' (safe, preferred), 'torchscript', or 'auto' (whichever is found,
        .pth first). Lookup: ``weights`` / $AVAT3R_SAPIENS / weights/sapiens/ / HF cache / Hub."""
        size = _size_of(name)
        files = sapiens_files(size)
        order = {"auto": ["pth", "torchscript"], "pth": ["pth"], "torchscript": ["torchscript"]}[fmt]
        path, err = None, None
        if weights is not None and Path(weights).is_file():
            path = Path(weights)
        else:
            for f in order:
                repo, fname = files[f]
                try:
                    path = resolve_weight_file(weights, env_var=ENV_VAR, local_names=[f"sapiens/{fname}"], repo_id=repo,
                                               filename=fname, what=f"Sapiens-{size}", allow_download=allow_download)
                    break
                except CheckpointError as e:
                    err = err or e
        if path is None:
            raise err
        return cls.from_file(path, size, device=device, expected_sha256=expected_sha256, **kw)

    @classmethod
    def from_file(cls, path, size: str, *, device=None, expected_sha256: str | None = None, **kw) -> "SapiensFeatures":
        path, size = Path(path), _size_of(size)
        if expected_sha256 is not None and sha256_file(path) != expected_sha256.lower():
            raise CheckpointError(f"{path}: SHA-256 does not match the expected {expected_sha256}; download the official file again")
        dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if path.suffix in (".pth", ".pt", ".safetensors"):
            sd, _ = load_state_dict_file(path, container_keys=("state_dict", "model"))
            with torch.device("meta"):  # no random init; names and shapes checked, tensors assigned
                model = SapiensViT(SapiensConfig.for_size(size))
            model.load_state_dict(load_sapiens_state_dict(sd, model, str(path)), strict=True, assign=True)
            return cls(size, model=model, device=dev, **kw)
        if path.suffix in (".pt2", ".ts", ".jit") or "torchscript" in path.name:
            try:
                ts = torch.jit.load(str(path), map_location=dev)
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(f"{path}: not a loadable TorchScript file ({type(e).__name__}: {e})") from e
            _check_torchscript(ts, size, path)
            return cls(size, torchscript=ts.eval(), device=dev, **kw)
        raise CheckpointError(f"{path}: unknown weight format '{path.suffix}'; expected the official .pth or _torchscript.pt2")

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[V, H, W, 3] in [0, 1] -> [V, 3, h, w] normalised as Sapiens expects (0..255 RGB, mean/std), resized."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not isinstance(images, torch.Tensor) else images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"Sapiens expects images [V, H, W, 3], got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float() * 255.0
        if tuple(x.shape[-2:]) != self.resolution:
            down = x.shape[-2] > self.resolution[0] or x.shape[-1] > self.resolution[1]
            x = F.interpolate(x, size=self.resolution, mode="bilinear", align_corners=False, antialias=down)
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def __call__(self, images) -> torch.Tensor:
        x = self.preprocess(images)
        outs = []
        for s in range(0, x.shape[0], self.batch_size):
            xb = x[s: s + self.batch_size].to(self.device)
            if self.torchscript is not None:
                out = self.torchscript(xb)
                out = out[0] if isinstance(out, (tuple, list)) else out
                exp = (xb.shape[0], self.dim, xb.shape[2] // 16, xb.shape[3] // 16)
                if tuple(out.shape) != exp:
                    raise CheckpointError(f"Sapiens TorchScript returned {tuple(out.shape)}, expected {exp}: wrong model file")
            else:
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                    enabled=self.amp and self.device.type == "cuda"):
                    out = self.model(xb)
            outs.append(out.float())
        return torch.cat(outs)
