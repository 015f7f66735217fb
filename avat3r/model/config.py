"""Configuration of the Avat3r network (paper Sec. 3, Table 4) with named presets and a JSON round trip.

A ``ModelConfig`` carries everything needed to rebuild the network AND its expression space (code size,
names, presets), and records which position prior and feature backbone the weights were trained with.
It is stored as ``config.json`` beside ``model.safetensors`` in every checkpoint.

Presets (``ModelConfig.preset(name)``):
- ``paper``: Table 4 (patch 8, D 768, 8 self- and 8 cross-attention layers, 512² in/out, expression code 256,
  one GRM upsampler step, Sapiens-2b features of width 1920, DUSt3R positions).
- ``small``: the shipped CPU demo model (20-d expression code = the SynthHeads space) (256² in, no features,
  visual-hull positions); sized by measurement
  so that one avatar from 4 views takes <= 5 s on a 2-core CPU and the fp16 weights stay <= 40 MB.
- ``tiny``: a toy network for tests (runs in milliseconds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError

__all__ = ["ModelConfig", "ExpressionSpace", "PRESETS", "LAYER_ORDERS"]

LAYER_ORDERS = ("interleaved", "cached")


@dataclass
class ModelConfig:
    """All hyper-parameters of the network. Lengths in metres, sizes in pixels/tokens."""

    # ---- input / tokens (eq. 4) -------------------------------------------------------------------
    image_size: int = 512  # training input resolution (square); other sizes divisible by patch_size also run
    patch_size: int = 8  # ViT patch size (Table 4)
    dim: int = 768  # hidden dimension D (Table 4)
    heads: int = 12  # attention heads in the backbone (D / 64)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * D
    position_scale: float = 0.15  # I^pos is divided by this before the patch conv (a head spans ~±0.15 m)
    position_clip: float = 4.0  # ... and clamped to ±clip (DUSt3R background points can be far away)

    # ---- transformer (eqs. 7-9) -------------------------------------------------------------------
    num_self_layers: int = 8  # self-attention layers over all V·Hp·Wp tokens (Table 4)
    num_cross_layers: int = 8  # cross-attention layers to the expression tokens (Table 4)
    layer_order: str = "interleaved"  # "interleaved": N x [self, cross, MLP]; "cached": self blocks, then cross blocks
    cross_mlp: bool = True  # "cached" only: an MLP after each cross-attention ([cross, MLP] blocks); False = [cross]

    # ---- expression (eq. 8) -----------------------------------------------------------------------
    expression_dim: int = 256  # C_exp (Table 4)
    expression_tokens: int = 4  # S
    expression_mlp_layers: int = 2  # Table 4
    expression_mlp_width: int = 256  # Table 4 (also the width of each token before the projection to D)
    expression_names: list[str] = field(default_factory=list)  # len == expression_dim, or empty -> "z0".."zN"
    expression_presets: dict[str, list[float]] = field(default_factory=dict)  # "neutral" (zeros) always added

    # ---- optional feature path (eqs. 5-6) ---------------------------------------------------------
    features: str | None = None  # name of the feature backbone (e.g. "sapiens-2b"); None = no feature path
    feature_dim: int = 0  # C_f (1920 for Sapiens-2b)
    feature_norm: bool = True  # LayerNorm over C_f before the fusion linear (backbone features are unnormalised)

    # ---- upsampler (eq. 10) -----------------------------------------------------------------------
    upsampler_steps: int = 1  # x2 steps (Table 4: one); the remaining factor is a per-token linear unpatchify
    upsampler_dim_ratio: float = 0.5  # channel width multiplier per step (GRM-style: halve while doubling H, W)
    upsampler_blocks: int = 1  # windowed-attention transformer blocks per step
    upsampler_window: int = 8  # attention window side (tokens) at the upsampled resolution
    upsampler_heads: int = 6

    # ---- Gaussian heads and skips (eqs. 11-13) ----------------------------------------------------
    pos_skip: bool = True  # eq. 11: M^pos += I^pos
    rgb_skip: bool = True  # eq. 12: M^rgb += I (applied in logit space, see heads.py)
    max_offset: float = 0.05  # |position offset| bound with pos_skip (metres, tanh-bounded)
    position_range: float = 0.5  # |position| bound without pos_skip (metres, tanh-bounded)
    scale_min: float = 1e-4  # Gaussian scale bounds (metres); sigmoid interpolates in log space
    scale_max: float = 0.02
    conf_threshold: float = 0.5  # tau of eq. 13
    head_init_std: float = 1e-3  # std of the final linear layer: outputs start near zero (Gaussians at I^pos, I)

    # ---- provenance ----------------------------------------------------------------------------------
    prior: str = "dust3r"  # position prior the weights were trained with ("dust3r", "visual_hull", "oracle")
    name: str = "custom"  # preset name this config came from (informational)

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived ------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Expression dimension names (generic "z0".."zN" when none were given)."""
        return list(self.expression_names) or [f"z{i}" for i in range(self.expression_dim)]

    @property
    def presets(self) -> dict[str, list[float]]:
        """Expression presets, always including "neutral" (all zeros)."""
        out = {"neutral": [0.0] * self.expression_dim}
        out.update({k: list(v) for k, v in self.expression_presets.items()})
        return out

    @property
    def expression_space(self) -> "ExpressionSpace":
        return ExpressionSpace(self.expression_dim, self.names, self.presets)

    @property
    def upsample_factor(self) -> int:
        """Pixels per token side after the upsampler blocks (decoded by the linear unpatchify)."""
        return self.patch_size // (2**self.upsampler_steps)

    def validate(self) -> None:
        def bad(field_name: str, why: str) -> CheckpointError:
            return CheckpointError(f"ModelConfig.{field_name}: {why}")

        for f in dataclasses.fields(self):  # types first: a float `dim` or a string size would fail deep in torch
            v, t = getattr(self, f.name), f.type
            if t == "int" and (not isinstance(v, int) or isinstance(v, bool)):
                raise bad(f.name, f"must be an integer, got {v!r}; fix config.json")
            if t == "float" and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
                raise bad(f.name, f"must be a finite number, got {v!r}; fix config.json")
            if t == "bool" and not isinstance(v, bool):
                raise bad(f.name, f"must be true or false, got {v!r}; fix config.json")
            if t == "str" and not isinstance(v, str):
                raise bad(f.name, f"must be a string, got {v!r}; fix config.json")
        for name in ("image_size", "patch_size", "dim", "heads", "expression_dim", "expression_tokens",
                     "expression_mlp_width", "upsampler_heads", "upsampler_window"):
            if getattr(self, name) < 1:
                raise bad(name, f"must be at least 1, got {getattr(self, name)}; fix config.json")
        for name in ("num_self_layers", "num_cross_layers", "expression_mlp_layers", "upsampler_steps",
                     "upsampler_blocks", "feature_dim"):
            if getattr(self, name) < 0:
                raise bad(name, f"must be >= 0, got {getattr(self, name)}; fix config.json")
        if not isinstance(self.expression_names, list) or not all(isinstance(n, str) for n in self.expression_names):
            raise bad("expression_names", "must be a list of strings; fix config.json")
        if not isinstance(self.expression_presets, dict):
            raise bad("expression_presets", "must map preset names to lists of numbers; fix config.json")
        for k, v in self.expression_presets.items():
            if (not isinstance(v, (list, tuple)) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             and math.isfinite(x) for x in v)):
                raise bad("expression_presets", f"preset {k!r} must be a list of finite numbers; fix config.json")
        if self.layer_order not in LAYER_ORDERS:
            raise bad("layer_order", f"must be one of {LAYER_ORDERS}, got {self.layer_order!r}")
        if self.dim % self.heads:
            raise bad("heads", f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.layer_order == "interleaved" and self.num_self_layers != self.num_cross_layers:
            raise bad(
                "num_cross_layers",
                f"'interleaved' order pairs every self-attention with a cross-attention layer, so "
                f"num_self_layers ({self.num_self_layers}) must equal num_cross_layers ({self.num_cross_layers}); "
                "use layer_order='cached' for unequal counts",
            )
        if self.patch_size < 1 or self.patch_size % (2**self.upsampler_steps):
            raise bad("upsampler_steps", f"patch_size {self.patch_size} must be divisible by 2**upsampler_steps")
        if self.expression_names and len(self.expression_names) != self.expression_dim:
            raise bad(
                "expression_names",
                f"has {len(self.expression_names)} names but expression_dim is {self.expression_dim}; give one name per dim or none",
            )
        for k, v in self.expression_presets.items():
            if len(v) != self.expression_dim:
                raise bad("expression_presets", f"preset {k!r} has {len(v)} values, expected expression_dim={self.expression_dim}")
        if self.features is not None and self.feature_dim <= 0:
            raise bad("feature_dim", f"features={self.features!r} needs feature_dim > 0")
        if self.features is None and self.feature_dim:
            raise bad("feature_dim", "feature_dim > 0 requires a features name (e.g. 'sapiens-2b')")
        if not 0 < self.scale_min < self.scale_max:
            raise bad("scale_min", f"need 0 < scale_min < scale_max, got {self.scale_min}, {self.scale_max}")
        for i in range(self.upsampler_steps):
            d = self.upsampler_dims[i]
            if d % self.upsampler_heads:
                raise bad("upsampler_heads", f"upsampler width {d} (step {i}) must be divisible by upsampler_heads {self.upsampler_heads}")

    @property
    def upsampler_dims(self) -> list[int]:
        """Channel width after each x2 step (rounded to a multiple of upsampler_heads)."""
        dims, d = [], float(self.dim)
        for _ in range(self.upsampler_steps):
            d = d * self.upsampler_dim_ratio
            dims.append(max(self.upsampler_heads, int(round(d / self.upsampler_heads)) * self.upsampler_heads))
        return dims

    # ---- presets and (de)serialisation ------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A named preset ("paper", "small", "tiny"), optionally with fields overridden."""
        if name not in PRESETS:
            raise CheckpointError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        kwargs = dict(PRESETS[name])
        kwargs.update(overrides)
        kwargs.setdefault("name", name)
        return cls.from_dict(kwargs)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"model config has unknown keys {unknown}; it was written by another version of avat3r or is not an "
                f"Avat3r config (known keys: {sorted(known)})"
            )
        try:
            return cls(**data)
        except TypeError as e:  # wrong types that dataclass construction trips over
            raise CheckpointError(f"model config is malformed: {e}") from e


@dataclass
class ExpressionSpace:
    """The expression codes a model understands: dim, one name per dim, named presets (always "neutral")."""

    dim: int
    names: list[str]
    presets: dict[str, list[float]]

    def resolve(self, expression: Any) -> list[float]:
        """A preset name or a sequence of ``dim`` numbers -> list of floats (CheckpointError-free: InputError)."""
        from ..errors import InputError

        if isinstance(expression, str):
            if expression not in self.presets:
                raise InputError(f"unknown expression preset {expression!r}; this model knows {sorted(self.presets)}")
            return list(self.presets[expression])
        from ..limits import MAX_EXPRESSION_ABS

        try:
            raw = expression.tolist() if hasattr(expression, "tolist") else expression
            if isinstance(raw, (int, float)):
                raw = [raw]
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            raise InputError(f"an expression must be a preset name ({', '.join(sorted(self.presets))}) or a list of "
                             f"{self.dim} numbers, got {str(expression)[:80]!r}") from None
        if len(values) != self.dim:
            raise InputError(f"expression code has {len(values)} values but this model expects {self.dim} ({self.names[:4]}...)")
        if not all(math.isfinite(v) for v in values):
            raise InputError("expression code contains NaN or inf; give finite numbers (the presets span about [-1, 1])")
        worst = max((abs(v) for v in values), default=0.0)
        if worst > MAX_EXPRESSION_ABS:
            raise InputError(f"expression code value {worst:g} is out of range: values must lie within "
                             f"±{MAX_EXPRESSION_ABS:g} (the presets span about [-1, 1])")
        return values


# Presets. The paper preset follows Table 4; small and tiny are sized for CPUs (see docs/MODEL.md).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        image_size=512, patch_size=8, dim=768, heads=12, num_self_layers=8, num_cross_layers=8,
        expression_dim=256, upsampler_steps=1, upsampler_heads=6, upsampler_window=8,
        features="sapiens-2b", feature_dim=1920, prior="dust3r", layer_order="interleaved",
    ),
    "small": dict(
        image_size=256, patch_size=8, dim=256, heads=4, num_self_layers=8, num_cross_layers=4,
        expression_dim=20, upsampler_steps=1, upsampler_heads=4, upsampler_window=8,
        features=None, feature_dim=0, prior="visual_hull", layer_order="cached",
    ),
    "tiny": dict(
        image_size=64, patch_size=8, dim=32, heads=2, mlp_ratio=2.0, num_self_layers=2, num_cross_layers=2,
        expression_dim=20, expression_mlp_width=32, upsampler_steps=1, upsampler_heads=2, upsampler_window=4,
        features=None, feature_dim=0, prior="visual_hull", layer_order="cached",
    ),
}
