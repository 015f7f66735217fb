"""Image preparation for DUSt3R and the matching camera intrinsics.

As DUSt3R's own loader (``load_images(size=512)``): resize so the long side is 512 (Lanczos when shrinking,
bicubic when enlarging, via PIL), centre-crop each side down to a multiple of 16, normalise RGB to [-1, 1].
The official loader also crops a square image to 4:3 unless ``square_ok``; a head crop must be covered
entirely, so squares are kept square here (``square_ok=True``, documented in docs/PRIORS.md).

The intrinsics follow the image: K is scaled by the resize factor and the principal point shifted by the crop
offset (``Cameras.resize`` then ``Cameras.crop``; pixel centres at +0.5 as everywhere in the project).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ...cameras import Cameras

__all__ = ["PreparedViews", "prepare_images", "target_size"]


@dataclass
class PreparedViews:
    """images [V, 3, h, w] in [-1, 1]; crop: (x0, y0) of the crop in the resized image; scale: resize factor;
    resized: (H', W') after the resize; original: (H, W); cameras: intrinsics/poses for the prepared images."""

    images: torch.Tensor
    scale: float
    resized: tuple[int, int]
    crop: tuple[int, int]
    original: tuple[int, int]
    cameras: Cameras | None = None


def target_size(h: int, w: int, long_side: int = 512, patch: int = 16, square_ok: bool = True) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """-> ((H', W') resized size, (x0, y0, cw, ch) crop box in the resized image), as DUSt3R's loader."""
    s = long_side / max(h, w)
    W2, H2 = int(round(w * s)), int(round(h * s))
    cx, cy = W2 // 2, H2 // 2
    halfw = ((2 * cx) // patch) * patch / 2
    halfh = ((2 * cy) // patch) * patch / 2
    if not square_ok and W2 == H2:
        halfh = 3 * halfw / 4
    x0, y0 = int(cx - halfw), int(cy - halfh)
    return (H2, W2), (x0, y0, int(2 * halfw), int(2 * halfh))


def prepare_images(images: np.ndarray, cameras: Cameras | None = None, long_side: int = 512, patch: int = 16,
                   square_ok: bool = True) -> PreparedViews:
    """images [V, H, W, 3] float in [0, 1] (one size) -> PreparedViews (+ cameras for the prepared crop)."""
    V, H, W, _ = images.shape
    (H2, W2), (x0, y0, cw, ch) = target_size(H, W, long_side, patch, square_ok)
    out = []
    for im in images:
        pil = Image.fromarray((np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8))
        if (W2, H2) != (W, H):
            pil = pil.resize((W2, H2), Image.LANCZOS if max(H, W) > long_side else Image.BICUBIC)
        pil = pil.crop((x0, y0, x0 + cw, y0 + ch))
        out.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    cams = None
    if cameras is not None:
        cams = cameras.resize(W2, H2).crop(torch.tensor([x0, y0, cw, ch], dtype=torch.float32))
    return PreparedViews(torch.stack(out), W2 / W, (H2, W2), (x0, y0), (H, W), cams)
