"""Capture: the posed, masked, head-centric set of views that every stage after the front end consumes.

A capture folder on disk (the project's interchange format) holds::

    capture/
      images/<view>.png|jpg
      cameras.json        # {"<view>": {"K": 3x3, "world_to_cam": 4x4, "width": W, "height": H}}  (OpenCV)
      masks/<view>.png    # optional, foreground = white
      expressions.json    # optional, {"<view>": [code...]}

Reading and writing the folder lives in ``avat3r.data.capture_folder``. This module also holds the few operations
every route into a Capture shares, each in one place: ``check_cameras`` (cameras belong to their images),
``load_mask`` (a given mask -> [H, W] in [0, 1]) and ``select_view_indices`` (at most k views, spread out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .cameras import Cameras
from .errors import InputError

__all__ = ["Capture", "check_cameras", "camera_mismatch", "load_mask", "select_view_indices"]


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
        h, w = self.images.shape[1:3]
        check_cameras(self.cameras, [(h, w)] * v, self.names, where="Capture")
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

    def select(self, max_views: int) -> "Capture":
        """At most ``max_views`` views, spread out around the head (``select_view_indices``), in input order."""
        if len(self) <= max_views:
            return self
        return self.subset(select_view_indices(self.cameras.world_to_cam.double().numpy(), max_views))


# ---- cameras against images: the one check -------------------------------------------------------------
def camera_mismatch(cameras: Cameras, i: int, height: int, width: int, label: str, *,
                    head_in_front: bool = True) -> str | None:
    """Why camera ``i`` does not belong to an image of width x height (named ``label``), or None when it does.
    head_in_front: also require the world origin (the head centre of a head-centric world) in front of it."""
    cw, ch = int(cameras.width[i]), int(cameras.height[i])
    if (cw, ch) != (int(width), int(height)):
        return (f"{label} is {int(width)}x{int(height)} pixels but its camera says {cw}x{ch}: K must belong to the "
                "image as stored (crop/resize the cameras with the images)")
    if head_in_front and float(cameras.world_to_cam[i, 2, 3]) <= 0:  # depth of the world origin (the head centre) in this camera
        return (f"the head (world origin) is behind the camera of {label}: cameras must be world_to_cam in the "
                "head-centric frame (OpenCV)")
    z = float(cameras.world_to_cam[i, 2, 3])
    if z > 0:  # the head centre must project near the image, else K (or the pose) is wrong, not the photo
        uv = cameras.K[i].double() @ (cameras.world_to_cam[i, :3, 3].double() / z)
        u, v = float(uv[0]), float(uv[1])
        if not (-width <= u <= 2 * width and -height <= v <= 2 * height):
            return (f"the camera of {label} puts the head centre at pixel ({u:.0f}, {v:.0f}), far outside its "
                    f"{int(width)}x{int(height)} image: check its K (focal length and principal point in pixels of this "
                    "image) and world_to_cam (head-centric, OpenCV)")
    return None


def check_cameras(cameras: Cameras, sizes: Sequence[tuple[int, int]], names: Sequence[str], *,
                  where: str = "cameras", head_in_front: bool = False) -> None:
    """Raise InputError unless there is one camera per image, in order, each for its image's (H, W) in ``sizes``
    (and, with ``head_in_front``, with the head-centric origin in front of it)."""
    if len(cameras) != len(sizes):
        raise InputError(f"{where}: {len(cameras)} cameras for {len(sizes)} images; give one camera per image, in order")
    for i, (h, w) in enumerate(sizes):
        msg = camera_mismatch(cameras, i, h, w, f"view {names[i]!r}", head_in_front=head_in_front)
        if msg:
            raise InputError(f"{where}: {msg}")


# ---- masks: the one loader ----------------------------------------------------------------------------------
def load_mask(src, name: str, hw: tuple[int, int] | None = None) -> np.ndarray:
    """A given mask (path, PIL image, bytes, [H, W] / [H, W, C] array in [0, 1] or 0..255) -> [H, W] float32 in
    [0, 1] (foreground = white; colour masks are averaged). ``hw``: the (H, W) it must have."""
    from .io.images import load_image

    if isinstance(src, np.ndarray) and src.ndim == 2:
        m = src.astype(np.float32)
        if m.size and m.max() > 1.0 + 1e-3:
            m = m / 255.0
        if not np.isfinite(m).all():
            raise InputError(f"{name}: the mask contains NaN or inf values")
    else:
        m = load_image(src, name).mean(-1)
    if hw is not None and m.shape != tuple(hw):
        raise InputError(f"{name} is {m.shape[1]}x{m.shape[0]} but its image is {hw[1]}x{hw[0]}: give masks at the "
                         "image's size")
    return np.ascontiguousarray(np.clip(m, 0, 1), dtype=np.float32)


# ---- views: the one selector ---------------------------------------------------------------------------------
def select_view_indices(world_to_cam, k: int, tiebreak=None) -> list[int]:
    """world_to_cam [N, 4, 4] -> the indices (sorted) of at most k views spread around the head: farthest-point
    sampling of the viewing directions (camera centres seen from the head centre), starting from the most frontal
    view. ``tiebreak`` [N] (optional, lower is better, e.g. a landmark fit error) decides between equally distant
    views, as in a video of a still head. Deterministic."""
    w2c = np.asarray(world_to_cam, np.float64)
    n = len(w2c)
    if n <= k:
        return list(range(n))
    R, t = w2c[:, :3, :3], w2c[:, :3, 3]
    centres = -np.einsum("nji,nj->ni", R, t)  # -R^T t
    dirs = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-9)
    pen = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, np.float64)
    pen = 1e-3 * pen / max(float(pen.max()), 1e-9) if pen.any() else pen
    start = int(np.argmax(dirs[:, 2]))
    chosen = [start]
    dist = np.linalg.norm(dirs - dirs[start], axis=1)
    for _ in range(k - 1):
        score = dist - pen
        score[chosen] = -np.inf
        j = int(np.argmax(score))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(dirs - dirs[j], axis=1))
    return sorted(chosen)
