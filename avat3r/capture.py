"""Capture: the posed, masked, head-centric set of views that every stage after the front end consumes.

A capture folder on disk (the project's interchange format) holds::

    capture/
      images/<view>.png|jpg
      cameras.json        # {"<view>": {"K": 3x3, "world_to_cam": 4x4, "width": W, "height": H}}  (OpenCV)
      masks/<view>.png    # optional, foreground = white
      expressions.json    # optional, {"<view>": [code...]}

Reading and writing the folder lives in ``avat3r.data.capture_folder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cameras import Cameras
from .errors import InputError


@dataclass
class Capture:
    """V views. images [V, H, W, 3] float32 in [0, 1]; masks [V, H, W] float32 in [0, 1] or None;
    expressions [V, C] or None (the code each view shows, when known); names: one per view."""

    images: np.ndarray
    cameras: Cameras
    names: list[str]
    masks: np.ndarray | None = None
    expressions: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = len(self.names)
        if self.images.ndim != 4 or self.images.shape[0] != v or self.images.shape[-1] != 3:
            raise InputError(f"Capture.images must be [V={v}, H, W, 3], got {self.images.shape}")
        if len(self.cameras) != v:
            raise InputError(f"Capture has {v} views but {len(self.cameras)} cameras")
        h, w = self.images.shape[1:3]
        if (self.cameras.width != w).any() or (self.cameras.height != h).any():
            raise InputError(
                f"Capture images are {w}x{h} but cameras say {self.cameras.width.tolist()}x{self.cameras.height.tolist()}; "
                "crop/resize the cameras with the images"
            )
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise InputError(f"Capture.masks must be [V, H, W] = {self.images.shape[:3]}, got {self.masks.shape}")
        if self.expressions is not None and (self.expressions.ndim != 2 or self.expressions.shape[0] != v):
            raise InputError(f"Capture.expressions must be [V={v}, C], got {self.expressions.shape}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)"""
        return self.images.shape[1], self.images.shape[2]

    def subset(self, idx: list[int]) -> "Capture":
        return Capture(
            self.images[idx],
            self.cameras[idx],
            [self.names[i] for i in idx],
            None if self.masks is None else self.masks[idx],
            None if self.expressions is None else self.expressions[idx],
            dict(self.meta),
        )
