"""One interface over all position priors (DUSt3R, the weight-free visual hull, the ground-truth oracle).

A position prior maps a Capture to per-view position maps in the head-centric world (eq. 2) and a
confidence map whose values above tau (eq. 13, tau = 0.5) mark pixels that spawn Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..capture import Capture

if TYPE_CHECKING:
    import torch


@dataclass
class PriorOutput:
    """positions [V, H, W, 3] world metres (float32); confidence [V, H, W] (float32, > tau = keep)."""

    positions: np.ndarray
    confidence: np.ndarray


class PositionPrior(Protocol):
    #: the name recorded in a model's config (e.g. "visual_hull", "dust3r", "oracle")
    name: str

    def __call__(self, capture: Capture) -> PriorOutput: ...


class FeatureExtractor(Protocol):
    """A feature backbone for the network's eq. 5-6 path (the paper's I^feat = SAPIENS(I), eq. 3)."""

    #: the name recorded in a model's config (e.g. "sapiens-2b")
    name: str
    #: channels C_f of the returned maps (1920 for Sapiens-2b)
    dim: int

    def __call__(self, images: np.ndarray) -> "torch.Tensor": ...  # [V, H, W, 3] in [0, 1] -> [V, C_f, h, w]


def get_position_prior(name: str, **kw) -> PositionPrior:
    """Build a position prior by the name a model config records: "visual_hull" or "dust3r" (kw go to its
    constructor, e.g. ``weights=``, ``device=``)."""
    if name == "visual_hull":
        from .visual_hull import VisualHullPrior

        return VisualHullPrior(**kw)
    if name == "dust3r":
        from .dust3r import Dust3rPrior

        return Dust3rPrior.from_pretrained(**kw)
    raise ValueError(f"unknown position prior {name!r}; known: 'visual_hull', 'dust3r'")


def get_feature_extractor(name: str, **kw) -> FeatureExtractor:
    """Build a feature backbone by name: "sapiens-0.3b", "sapiens-0.6b", "sapiens-1b", "sapiens-2b"."""
    if name.startswith("sapiens"):
        from .sapiens import SapiensFeatures

        return SapiensFeatures.from_pretrained(name, **kw)
    raise ValueError(f"unknown feature backbone {name!r}; known: sapiens-0.3b, sapiens-0.6b, sapiens-1b, sapiens-2b")
