"""One interface over all position priors (DUSt3R, the weight-free visual hull, the ground-truth oracle).

A position prior maps a Capture to per-view position maps in the head-centric world (eq. 2) and a
confidence map whose values above tau (eq. 13, tau = 0.5) mark pixels that spawn Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..capture import Capture


@dataclass
class PriorOutput:
    """positions [V, H, W, 3] world metres (float32); confidence [V, H, W] (float32, > tau = keep)."""

    positions: np.ndarray
    confidence: np.ndarray


class PositionPrior(Protocol):
    #: the name recorded in a model's config (e.g. "visual_hull", "dust3r", "oracle")
    name: str

    def __call__(self, capture: Capture) -> PriorOutput: ...
