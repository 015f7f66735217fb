"""Head-centric square crops (paper supp. C): the same metric window around the head in every view.

The window is centred on the projection of the head-centric origin (where ``orbit_cameras`` and the synthetic
training cameras look) and spans +-``CROP_HALF_EXTENT`` metres at the head's depth, which is what a default camera
(``DEFAULT_CAMERA_DISTANCE``, ``DEFAULT_FOV_DEG``) sees around the head: crops from photos frame the head like the
synthetic training views. K follows the crop through ``Cameras.crop_resize``.
"""

from __future__ import annotations

import math

import numpy as np

from ..cameras import Cameras
from ..head_template import DEFAULT_CAMERA_DISTANCE, DEFAULT_FOV_DEG, HEAD_BOX_CENTER, HEAD_BOX_HALF

#: The point the crop is centred on (head-centric frame): the origin, the default cameras' look-at target.
CROP_CENTER = np.zeros(3)
#: Half the side of the crop window, metres, at the depth of the head centre.
CROP_HALF_EXTENT = DEFAULT_CAMERA_DISTANCE * math.tan(math.radians(DEFAULT_FOV_DEG / 2))

__all__ = ["CROP_CENTER", "CROP_HALF_EXTENT", "head_crop_box", "crop_square", "head_outside_fraction", "head_box_corners"]


def head_box_corners() -> np.ndarray:
    """[8, 3] corners of the box that holds a head with hair (head-centric frame, metres)."""
    s = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return HEAD_BOX_CENTER + s * HEAD_BOX_HALF


def _project(K: np.ndarray, w2c: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xc = X @ w2c[:3, :3].T + w2c[:3, 3]
    uv = xc @ K.T
    return uv[:, :2] / np.maximum(uv[:, 2:], 1e-9), xc[:, 2]


def head_crop_box(K: np.ndarray, world_to_cam: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """K [3, 3], world_to_cam [4, 4] -> square crop box (x0, y0, w, h) in pixels (may reach outside the image)."""
    uv, z = _project(K, world_to_cam, CROP_CENTER[None])
    f = math.sqrt(K[0, 0] * K[1, 1])
    half = f * CROP_HALF_EXTENT * scale / max(float(z[0]), 1e-6)
    return np.array([uv[0, 0] - half, uv[0, 1] - half, 2 * half, 2 * half])


def head_outside_fraction(K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int) -> dict[str, float]:
    """How far the head box's projection reaches past each image edge, as a fraction of its projected size."""
    uv, _ = _project(K, world_to_cam, head_box_corners())
    lo, hi = uv.min(0), uv.max(0)
    size = np.maximum(hi - lo, 1e-6)
    return {
        "left": float(max(0.0, -lo[0]) / size[0]),
        "right": float(max(0.0, hi[0] - width) / size[0]),
        "top": float(max(0.0, -lo[1]) / size[1]),
        "bottom": float(max(0.0, hi[1] - height) / size[1]),
    }


def crop_square(image: np.ndarray, box: np.ndarray, size: int, pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cut box (x0, y0, w, h) from image [H, W, C] (or [H, W]) and resize to size x size with an exact affine map
    (pixel centres follow ``Cameras.crop_resize``); outside the image -> ``pad_value``.

    Returns (crop [size, size, C] float32, valid [size, size] float32: 1 where the crop saw the image)."""
    import cv2

    x0, y0, w, h = [float(v) for v in box]
    s = size / w
    # continuous pixel coords: u_crop = (u - x0) * s  (pixel centres at +0.5 on both sides)
    A = np.array([[s, 0, -x0 * s + 0.5 * s - 0.5], [0, size / h, -y0 * size / h + 0.5 * size / h - 0.5]])
    img = np.asarray(image, np.float32)
    # area-average when shrinking a lot (a 40 MP photo to 256 px): pre-shrink with INTER_AREA, then warp
    if s < 0.5:
        f = int(1 / s)  # integer factor keeps the map exact: image pixel centres scale the same way
        hh, ww = img.shape[0] // f * f, img.shape[1] // f * f  # whole blocks only: the scale is exactly 1/f
        small = cv2.resize(img[:hh, :ww], (ww // f, hh // f), interpolation=cv2.INTER_AREA)
        # small pixel i covers image pixels [i f, (i+1) f): its centre maps back exactly with this transform
        A = A @ np.array([[f, 0, 0.5 * f - 0.5], [0, f, 0.5 * f - 0.5], [0, 0, 1]])
        img = small
    out = cv2.warpAffine(img, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(pad_value,) * 4)
    valid = cv2.warpAffine(np.ones(img.shape[:2], np.float32), A, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if out.ndim == 2 and np.asarray(image).ndim == 3:
        out = out[..., None]
    return out, valid


def crop_cameras(cams: Cameras, boxes: np.ndarray, size: int) -> Cameras:
    """Cameras of the full photos [N] + boxes [N, 4] -> cameras of the size x size crops."""
    return cams.crop_resize(np.asarray(boxes, np.float32), size)
