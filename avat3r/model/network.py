"""The Avat3r network (paper Sec. 3.2, Fig. 2, eqs. 4-13): images + priors + expression -> per-pixel Gaussians.

    tokens   h = Conv_p([2I-1, clip(I^pos / s), I^pluck])                         eq. 4   [B, V*Hp*Wp, D]
    features h = Linear([h, LN(GridSample(I^feat))])                     (opt.)   eqs. 5-6
    backbone dense self-attention over all V*Hp*Wp tokens                         eq. 7
             cross-attention of every token to f_exp = Proj(MLP(z_exp)) (S tokens) eqs. 8-9
    upsample pixel-shuffle + windowed-attention steps -> raw maps [B, V, H, W, 14] eq. 10
    heads    bounded activations, M^pos += I^pos, M^rgb += I, keep conf > tau     eqs. 11-13

Layer orders (``ModelConfig.layer_order``):
- ``interleaved``: N x [self-attn, cross-attn, MLP] (paper-like). Every layer after the patch embedding
  depends on the expression, so ``encode`` only caches the embedded tokens and ``animate`` runs the full
  backbone + upsampler for each new expression.
- ``cached``: all [self-attn, MLP] blocks first (expression-independent), then [cross-attn, MLP] blocks that
  act on each token separately. ``encode`` runs the patch embedding and all self-attention once; ``animate``
  runs only the cross blocks, the upsampler and the heads (about a fifth of the backbone cost at paper size).

No view-index embedding (views are an unordered set, so any V >= 1 runs through the same weights) and no
2D positional embedding: the Plücker rays already give every token its ray, i.e. its position in its image
and in the world.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from ..gaussians import Gaussians
from .config import ModelConfig
from .heads import RAW_CHANNELS, GaussianMaps, decode_maps
from .layers import CrossBlock, InterleavedBlock, SelfBlock
from .upsampler import Upsampler

__all__ = ["Avat3rModel", "AvatarState"]


@dataclass
class AvatarState:
    """Expression-independent state of B avatars, reused by ``Avat3rModel.animate``.

    tokens [B, V*Hp*Wp, D]: after all self-attention (``cached``) or after the patch embedding
    (``interleaved``); images/positions [B, V, H, W, 3] and confidence [B, V, H, W] feed the skips and mask.
    """

    tokens: torch.Tensor
    images: torch.Tensor
    positions: torch.Tensor
    confidence: torch.Tensor
    grid: tuple[int, int, int]  # (V, Hp, Wp)
    layer_order: str

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def detach(self) -> "AvatarState":
        return AvatarState(self.tokens.detach(), self.images.detach(), self.positions.detach(),
                           self.confidence.detach(), self.grid, self.layer_order)


class ExpressionEncoder(nn.Module):
    """z_exp [B, C] -> f_exp [B, S, D]: an MLP (ReLU, Table 4) to S tokens of its width, then a linear to D (eq. 8)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, S = cfg.expression_mlp_width, cfg.expression_tokens
        layers: list[nn.Module] = []
        d = cfg.expression_dim
        for i in range(cfg.expression_mlp_layers):
            last = i == cfg.expression_mlp_layers - 1
            layers.append(nn.Linear(d, S * w if last else w))
            if not last:
                layers.append(nn.ReLU())
            d = w
        self.mlp = nn.Sequential(*layers)
        self.tokens, self.width = S, w
        self.proj = nn.Linear(w, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim)  # pre-norm of the cross-attention context, shared by all layers

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        f = self.mlp(z).view(z.shape[0], self.tokens, self.width)
        return self.norm(self.proj(f))


class Avat3rModel(nn.Module):
    """The Avat3r network. ``Avat3rModel(ModelConfig.preset("small"))`` or ``Avat3rModel("small")``."""

    def __init__(self, config: ModelConfig | str = "small"):
        super().__init__()
        cfg = ModelConfig.preset(config) if isinstance(config, str) else config
        cfg.validate()
        self.config = cfg
        D, p = cfg.dim, cfg.patch_size
        self.patch_embed = nn.Conv2d(3 + 3 + 6, D, kernel_size=p, stride=p)  # eq. 4
        if cfg.features is not None:
            self.feature_norm = nn.LayerNorm(cfg.feature_dim) if cfg.feature_norm else nn.Identity()
            self.feature_fuse = nn.Linear(D + cfg.feature_dim, D)  # eq. 6
        self.expression = ExpressionEncoder(cfg)
        if cfg.layer_order == "interleaved":
            self.blocks = nn.ModuleList(InterleavedBlock(D, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.num_self_layers))
        else:
            self.self_blocks = nn.ModuleList(SelfBlock(D, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.num_self_layers))
            self.cross_blocks = nn.ModuleList(CrossBlock(D, cfg.heads, cfg.mlp_ratio, cfg.cross_mlp) for _ in range(cfg.num_cross_layers))
        self.upsampler = Upsampler(
            D, cfg.upsampler_dims, cfg.upsampler_heads, cfg.mlp_ratio, cfg.upsampler_window, cfg.upsampler_blocks,
            cfg.upsample_factor, RAW_CHANNELS, cfg.head_init_std,
        )
        self.gradient_checkpointing = False  # trade compute for memory in training (per block)
        self._decode = decode_maps

    def compile_parts(self, **compile_kwargs) -> "Avat3rModel":
        """torch.compile every transformer block, the upsampler and the Gaussian decode in place (GPU speed).

        Parts rather than the whole forward: the masking has data-dependent shapes and the state object
        is a plain dataclass, both of which are simplest left to eager mode."""
        blocks = [*getattr(self, "blocks", []), *getattr(self, "self_blocks", []), *getattr(self, "cross_blocks", [])]
        for mod in [*blocks, self.upsampler, self.expression]:
            mod.compile(**compile_kwargs)
        self._decode = torch.compile(decode_maps, **compile_kwargs)
        return self

    # ---- public API ---------------------------------------------------------------------------------
    def forward(self, images, positions, confidence, plucker, expression, features=None) -> GaussianMaps:
        """images/positions [B, V, 3, H, W], confidence [B, V, (1,) H, W], plucker [B, V, 6, H, W],
        expression [B, C] (or [C]), features [B, V, Cf, Hf, Wf] or None -> GaussianMaps [B, V, H, W, *]."""
        return self.animate(self.encode(images, positions, confidence, plucker, features), expression)

    def encode(self, images, positions, confidence, plucker, features=None) -> AvatarState:
        """The expression-independent part (see the module docstring for what each layer order caches)."""
        images, positions, confidence, plucker, features = self._check_inputs(images, positions, confidence, plucker, features)
        B, V, _, H, W = images.shape
        p = self.config.patch_size
        h = self._embed(images, positions, plucker, features)  # [B, V*Hp*Wp, D]
        if self.config.layer_order == "cached":
            for blk in self.self_blocks:
                h = self._run(blk, h)
        cl = lambda t: t.permute(0, 1, 3, 4, 2)  # noqa: E731  [B, V, C, H, W] -> [B, V, H, W, C]
        return AvatarState(h, cl(images), cl(positions), confidence, (V, H // p, W // p), self.config.layer_order)

    def animate(self, state: AvatarState, expression) -> GaussianMaps:
        """Gaussian maps of the encoded avatars under ``expression`` [B, C] (a state with B = 1 and T
        expressions [T, C] gives T frames of that avatar)."""
        cfg = self.config
        if state.layer_order != cfg.layer_order:
            raise InputError(f"AvatarState was encoded with layer_order={state.layer_order!r} but this model uses {cfg.layer_order!r}")
        z = self._check_expression(expression, state.batch_size)
        B = z.shape[0]
        h = state.tokens.expand(B, -1, -1) if state.batch_size != B else state.tokens
        ctx = self.expression(z.to(h.dtype))  # [B, S, D]
        if cfg.layer_order == "interleaved":
            for blk in self.blocks:
                h = self._run(blk, h, ctx)
        else:
            for blk in self.cross_blocks:
                h = self._run(blk, h, ctx)
        V, Hp, Wp = state.grid
        raw = self.upsampler(h.reshape(B * V, Hp, Wp, -1))  # [B*V, H, W, 14]
        H, W = raw.shape[1:3]
        raw = raw.view(B, V, H, W, RAW_CHANNELS)
        ex = lambda t: t.expand(B, *t.shape[1:]) if t.shape[0] != B else t  # noqa: E731
        return self._decode(raw, ex(state.images), ex(state.positions), ex(state.confidence), cfg)

    @staticmethod
    def to_gaussians(maps: GaussianMaps) -> list[Gaussians]:
        """Masked Gaussians (eq. 13), one set per batch item."""
        return maps.to_gaussians()

    @property
    def expression_space(self):
        return self.config.expression_space

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- weights (avat3r.model.hub) -----------------------------------------------------------------
    def save_pretrained(self, save_directory, *, dtype: torch.dtype | None = None, model_card: bool = True):
        from .hub import save_pretrained

        return save_pretrained(self, save_directory, dtype=dtype, model_card=model_card)

    @classmethod
    def from_pretrained(cls, repo_id_or_path, *, revision=None, local_files_only=None, device="cpu",
                        dtype: torch.dtype = torch.float32) -> "Avat3rModel":
        from .hub import from_pretrained

        return from_pretrained(cls, repo_id_or_path, revision=revision, local_files_only=local_files_only, device=device, dtype=dtype)

    def push_to_hub(self, repo_id: str, **kwargs):
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    # ---- internals ----------------------------------------------------------------------------------
    def _run(self, blk: nn.Module, *args):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def _embed(self, images, positions, plucker, features) -> torch.Tensor:
        cfg = self.config
        B, V, _, H, W = images.shape
        dt = self.patch_embed.weight.dtype
        pos = (positions / cfg.position_scale).clamp(-cfg.position_clip, cfg.position_clip)
        x = torch.cat([images * 2 - 1, pos, plucker], dim=2).flatten(0, 1).to(dt)  # [B*V, 12, H, W]
        h = self.patch_embed(x)  # [B*V, D, Hp, Wp]
        Hp, Wp = h.shape[-2:]
        h = h.flatten(2).transpose(1, 2)  # [B*V, Hp*Wp, D]
        if cfg.features is not None:
            f = features.flatten(0, 1).to(dt)  # [B*V, Cf, Hf, Wf]
            ys = (torch.arange(Hp, device=f.device) + 0.5) / Hp * 2 - 1  # patch centres in [-1, 1] (float32)
            xs = (torch.arange(Wp, device=f.device) + 0.5) / Wp * 2 - 1
            grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).to(dt)  # [Hp, Wp, 2] as (x, y)
            f = F.grid_sample(f, grid.expand(f.shape[0], Hp, Wp, 2), mode="bilinear", align_corners=False)  # eq. 5
            f = self.feature_norm(f.flatten(2).transpose(1, 2))  # [B*V, Hp*Wp, Cf]
            h = self.feature_fuse(torch.cat([h, f], -1))  # eq. 6
        return h.reshape(B, V * Hp * Wp, cfg.dim)

    def _check_inputs(self, images, positions, confidence, plucker, features):
        cfg = self.config
        if not isinstance(images, torch.Tensor) or images.dim() != 5 or images.shape[2] != 3:
            raise InputError(f"images must be a tensor [B, V, 3, H, W], got {_shape(images)}")
        B, V, _, H, W = images.shape
        p = cfg.patch_size
        if H % p or W % p or H == 0 or W == 0:
            raise InputError(
                f"image size {H}x{W} must be a positive multiple of the patch size {p}; resize or crop the inputs "
                f"(e.g. to {max(p, H // p * p)}x{max(p, W // p * p)}; this model was trained at {cfg.image_size}²)"
            )
        if confidence is not None and confidence.dim() == 5 and confidence.shape[2] == 1:
            confidence = confidence[:, :, 0]
        for name, t, c in (("positions", positions, 3), ("plucker", plucker, 6)):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != (B, V, c, H, W):
                raise InputError(f"{name} must have shape [B, V, {c}, H, W] = {[B, V, c, H, W]}, got {_shape(t)}")
        if not isinstance(confidence, torch.Tensor) or tuple(confidence.shape) != (B, V, H, W):
            raise InputError(f"confidence must have shape [B, V, 1, H, W] or [B, V, H, W] with B, V, H, W = {B, V, H, W}, got {_shape(confidence)}")
        if cfg.features is None:
            if features is not None:
                raise InputError("this model has no feature path (config.features is None); pass features=None")
        else:
            if features is None:
                raise InputError(
                    f"this model was trained with {cfg.features} features: pass features [B, V, {cfg.feature_dim}, Hf, Wf]"
                )
            if features.dim() != 5 or tuple(features.shape[:3]) != (B, V, cfg.feature_dim):
                raise InputError(f"features must have shape [B, V, {cfg.feature_dim}, Hf, Wf] with B, V = {B, V}, got {_shape(features)}")
        return images, positions, confidence, plucker, features

    def _check_expression(self, expression, batch: int) -> torch.Tensor:
        C = self.config.expression_dim
        z = torch.as_tensor(expression, dtype=torch.float32, device=self.patch_embed.weight.device)
        if z.dim() == 1:
            z = z[None]
        if z.dim() != 2 or z.shape[1] != C:
            raise InputError(f"expression must have shape [B, {C}] (this model's code size is {C}), got {_shape(z)}")
        if z.shape[0] != batch and batch != 1:
            if z.shape[0] == 1:
                z = z.expand(batch, C)
            else:
                raise InputError(f"expression batch {z.shape[0]} does not match the {batch} encoded avatars")
        return z


def _shape(t) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__
