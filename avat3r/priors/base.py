"""One interface over all position priors (DUSt3R, the weight-free visual hull, the ground-truth oracle, none).

A position prior maps a Capture to per-view position maps in the head-centric world (eq. 2) and a
confidence map whose values above tau (eq. 13, tau = 0.5) mark pixels that spawn Gaussians. Priors return torch
tensors on their device (the network's next stage runs there); ``PriorOutput.numpy()`` is for the edges (plots,
files). Priors are built by name through ``avat3r.priors.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..capture import Capture
from ..errors import InputError

__all__ = ["PriorOutput", "PositionPrior", "FeatureExtractor", "NoPrior", "hard_confidence"]


@dataclass
class PriorOutput:
    """positions [V, H, W, 3] world metres; confidence [V, H, W] (> tau = keep); float32 tensors on one device."""

    positions: torch.Tensor
    confidence: torch.Tensor

    def numpy(self) -> "PriorOutput":
        """The same maps as float32 numpy arrays (for plots and files)."""
        return PriorOutput(self.positions.detach().float().cpu().numpy(), self.confidence.detach().float().cpu().numpy())


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

    def __call__(self, images: np.ndarray) -> torch.Tensor: ...  # [V, H, W, 3] in [0, 1] -> [V, C_f, h, w]


class NoPrior:
    """PositionPrior "none" (the "w/o prior" ablation, Table 2): zero positions; the confidence is the mask, so
    Gaussians spawn on the foreground and the network places them from scratch."""

    name = "none"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def __call__(self, capture: Capture) -> PriorOutput:
        if capture.masks is None:
            raise InputError("'none' prior: the capture has no masks; Gaussians spawn on the foreground mask, so "
                             "estimate masks first (front end) or give them")
        m = torch.as_tensor(np.asarray(capture.masks, np.float32), device=self.device)
        return PriorOutput(torch.zeros(*m.shape, 3, device=self.device), m)


def hard_confidence(masks: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """Confidence from a mask [..] in [0, 1]: the mask, pushed off tau so that foreground (> tau) is kept."""
    return torch.where(masks > tau, masks.clamp(min=tau + 0.01), masks.clamp(max=tau - 0.01))
