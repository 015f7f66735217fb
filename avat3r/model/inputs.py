"""The one adapter from views + a position prior to the network's inputs (paper eqs. 2-4), shared by inference
(``Pipeline.reconstruct``), training (``avat3r.data.batch``) and evaluation.

``NetworkInputs`` holds, for B items of V views, everything the network reads besides the expression:
images, the prior's positions (eq. 2) and confidence (eq. 13), Plücker rays of the cameras (eq. 4) and optional
feature maps (eq. 3). Built with ``from_views`` (any of the layouts the stages produce: channels first or last,
numpy or torch) or ``from_capture`` (a Capture + a PriorOutput); tensors go to ``device`` once and stay there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..cameras import Cameras, plucker_rays
from ..errors import InputError

if TYPE_CHECKING:
    from ..capture import Capture
    from ..priors.base import PriorOutput

__all__ = ["NetworkInputs", "channels_first"]


def channels_first(x, c: int, name: str) -> torch.Tensor:
    """[..., C, H, W] stays, [..., H, W, C] -> [..., C, H, W]; numpy or torch in, float32 torch out (same device)."""
    if x is None:
        raise InputError(f"network inputs: {name} is missing")
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32)))
    t = t.float()
    if t.dim() >= 3 and t.shape[-3] == c:
        return t
    if t.shape[-1] == c:
        return t.movedim(-1, -3)
    raise InputError(f"network inputs: {name} must have {c} channels first or last, got shape {tuple(t.shape)}")


@dataclass
class NetworkInputs:
    """images [B, V, 3, H, W] in [0, 1]; positions [B, V, 3, H, W] world metres; confidence [B, V, 1, H, W]
    (> tau = spawns a Gaussian); plucker [B, V, 6, H, W]; features [B, V, Cf, h, w] or None. One device."""

    images: torch.Tensor
    positions: torch.Tensor
    confidence: torch.Tensor
    plucker: torch.Tensor
    features: torch.Tensor | None = None

    @classmethod
    def from_views(cls, images, cameras: Cameras, positions, confidence, features=None,
                   device: str | torch.device | None = None) -> "NetworkInputs":
        """One item (B = 1) from V views: images [V, 3, H, W] or [V, H, W, 3]; positions likewise; confidence
        [V, H, W] or [V, 1, H, W]; features [V, Cf, h, w] or None; numpy or torch. device: where the network runs
        (default: where the images are)."""
        img = channels_first(images, 3, "images")
        dev = torch.device(device) if device is not None else img.device
        img = img.to(dev)
        V, _, H, W = img.shape
        if len(cameras) != V:
            raise InputError(f"network inputs: {V} views but {len(cameras)} cameras")
        pos = channels_first(positions, 3, "positions").to(dev)
        conf = confidence if isinstance(confidence, torch.Tensor) else torch.from_numpy(np.asarray(confidence, np.float32))
        if conf.numel() != V * H * W:
            raise InputError(f"network inputs: confidence must be [V, H, W] = {[V, H, W]}, got {list(conf.shape)}")
        conf = conf.float().to(dev).reshape(V, 1, H, W)
        if tuple(pos.shape) != (V, 3, H, W):
            raise InputError(f"network inputs: positions must be [V, 3, H, W] = {[V, 3, H, W]}, got {list(pos.shape)}")
        feats = None if features is None else torch.as_tensor(features).float().to(dev)
        plucker = plucker_rays(cameras.to(dev), H, W)
        return cls(img[None], pos[None], conf[None], plucker[None], None if feats is None else feats[None])

    @classmethod
    def from_capture(cls, capture: "Capture", prior: "PriorOutput", features=None,
                     device: str | torch.device | None = None) -> "NetworkInputs":
        """A Capture (V views) + its PriorOutput (+ feature maps [V, Cf, h, w]) -> one item on ``device``
        (default: the prior's device, where its maps already are)."""
        dev = device if device is not None else prior.positions.device
        return cls.from_views(capture.images, capture.cameras, prior.positions, prior.confidence, features, dev)

    def without_prior(self, masks: torch.Tensor | None = None) -> "NetworkInputs":
        """The "w/o prior" ablation: zero positions; confidence = the foreground masks [B, V, 1, H, W] (default: the
        prior's kept pixels), so Gaussians spawn on the foreground."""
        mask = masks if masks is not None else (self.confidence > 0.5).float()
        return replace(self, positions=torch.zeros_like(self.positions), confidence=mask.to(self.confidence.dtype))

    def kept(self, tau: float) -> int:
        """Pixels that spawn a Gaussian (confidence > tau, eq. 13)."""
        return int((self.confidence > tau).sum())

    # ---- the network on these inputs -------------------------------------------------------------------
    def encode(self, model):
        """The expression-independent pass (``Avat3rModel.encode``) -> AvatarState."""
        return model.encode(self.images, self.positions, self.confidence, self.plucker, self.features)

    def forward(self, model, expression: torch.Tensor):
        """The full pass with expression codes [B, C] -> GaussianMaps (``model`` may be DDP-wrapped)."""
        return model(self.images, self.positions, self.confidence, self.plucker, expression, self.features)
