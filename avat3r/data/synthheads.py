"""SynthHeads: procedural, animatable multi-view heads made of 3D Gaussians (the project's training data and benchmark).

Public API::

    from avat3r.data.synthheads import sample_identity, build_head, EXPRESSION_PRESETS
    ident = sample_identity(seed)                               # Identity (dataclass), deterministic by seed
    g = build_head(ident, EXPRESSION_PRESETS["smile"])          # Gaussians, ~45-60k, head-centric metres
    gs = build_heads(ident, expressions)                        # [E, C] -> E Gaussians (shared rest geometry)

Identities come from disjoint seed ranges per split (``SPLITS``: train, validation, 12 test identities).
Geometry and the expression rig: ``avat3r.data.headgeom``; expression names/presets/sampler:
``avat3r.data.expressions``; identities: ``avat3r.data.identity``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from ..gaussians import Gaussians
from .expressions import (
    EXPRESSION_DIM,
    EXPRESSION_NAMES,
    EXPRESSION_PRESETS,
    clip_expression,
    expression,
    sample_expression,
    sample_expressions,
)
from .headgeom import HeadRig
from .identity import HAIR_STYLES, SPLITS, Identity, sample_identity, split_seeds

__all__ = [
    "Identity", "sample_identity", "split_seeds", "SPLITS", "HAIR_STYLES", "HeadRig", "get_rig", "build_head",
    "build_heads", "EXPRESSION_NAMES", "EXPRESSION_DIM", "EXPRESSION_PRESETS", "expression", "sample_expression",
    "sample_expressions", "clip_expression", "expression_space",
]

_CACHE: "OrderedDict[tuple, HeadRig]" = OrderedDict()
_CACHE_SIZE = 8


def get_rig(identity: Identity | int, device="cpu") -> HeadRig:
    """The (cached) rest geometry + expression rig of an identity (or a seed)."""
    if not isinstance(identity, Identity):
        identity = sample_identity(int(identity))
    key = (identity, str(torch.device(device)))
    rig = _CACHE.get(key)
    if rig is None:
        rig = HeadRig(identity, device)
        _CACHE[key] = rig
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return rig


def build_head(identity: Identity | int, expression: np.ndarray | str | None = None, device="cpu") -> Gaussians:
    """One head as Gaussians: identity (or seed), expression [C] (or a preset name; None = neutral)."""
    if expression is None:
        expression = "neutral"
    if isinstance(expression, str):
        expression = EXPRESSION_PRESETS[expression]
    return get_rig(identity, device).pose(np.asarray(expression, np.float32)[None])[0]


def build_heads(identity: Identity | int, expressions, device="cpu") -> list[Gaussians]:
    """E heads of one identity: expressions [E, C] -> E Gaussians (same count, same order of Gaussians)."""
    return get_rig(identity, device).pose(expressions)


def expression_space() -> dict:
    """Names, presets and ranges of the SynthHeads code (what a trained model's config carries)."""
    return {
        "dim": EXPRESSION_DIM,
        "names": list(EXPRESSION_NAMES),
        "presets": {k: v.tolist() for k, v in EXPRESSION_PRESETS.items()},
        "ranges": [[-1.0, 1.0] if n.startswith("gaze") else [0.0, 1.0] for n in EXPRESSION_NAMES],
    }
