"""Foreground (head) masks without learned weights: GrabCut seeded by the posed head and the face landmarks.

Seeds come from geometry, so they work for any crop with a camera (estimated from landmarks, or given with a
capture folder): a head ellipsoid and a neck cylinder in the head-centric frame are projected with the view's
camera. Inside the face's landmark hull and the inner 85 % of the ellipsoid = sure foreground; the ellipsoid and
neck = probably foreground; a wide band around them (hair, which can be big) = probably background; beyond
2.5x the ellipsoid (rarely inside the crop) and padding outside the photo = sure background. GrabCut (colour
GMMs + graph cut) decides the uncertain pixels; the result keeps the connected parts touching the face, fills holes, and gets a one-pixel soft edge.

The paper (supp. C) uses BackgroundMattingV2 masks; that needs downloaded weights, which this stage avoids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MaskConfig", "head_mask", "seed_map"]


@dataclass
class MaskConfig:
    """work_size: GrabCut runs at this resolution (speed); iterations: GrabCut iterations;
    head_radii: head ellipsoid half-axes (m, centred at the origin); hair_scale: how far hair may reach, as a
    factor on the ellipsoid; torso: treat clothes / shoulders below the neck as probably foreground (the
    paper's person mattes keep them; SynthHeads has none); core_scale: the part of it that is surely head;
    sure_bg_scale: beyond this factor everything is background; feather_px: soft edge.
    Defaults chosen on bench/frontend_mask.py (green-screen frames and SynthHeads over office photos)."""

    work_size: int = 160
    iterations: int = 4
    head_radii: tuple[float, float, float] = (0.090, 0.125, 0.110)
    hair_scale: float = 1.3
    core_scale: float = 0.85
    sure_bg_scale: float = 2.5
    neck_radius: float = 0.058
    feather_px: float = 0.7
    torso: bool = False


def _ellipsoid_points(radii, scale: float, n: int = 24) -> np.ndarray:
    th, ph = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, 2 * n))
    p = np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    return p * np.asarray(radii) * scale


def _neck_points(radius: float, scale: float) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.stack([np.cos(ang) * radius * scale, np.zeros_like(ang), np.sin(ang) * radius * scale - 0.02], -1)
    return np.concatenate([ring + [0, y, 0] for y in (-0.05, -0.14, -0.24)])


def _fill_hull(shape, uv: np.ndarray) -> np.ndarray:
    import cv2

    out = np.zeros(shape, np.uint8)
    uv = uv[np.isfinite(uv).all(1)]
    if len(uv) >= 3:
        hull = cv2.convexHull(np.round(uv * 16).astype(np.int32))  # 4 fractional bits: sub-pixel polygons
        cv2.fillConvexPoly(out, hull, 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def _project(K, w2c, X) -> np.ndarray:
    xc = X @ w2c[:3, :3].T + w2c[:3, 3]
    xc = xc[xc[:, 2] > 1e-3]
    uv = xc @ K.T
    return uv[:, :2] / uv[:, 2:] - 0.5  # pixel centres at integer coordinates for rasterising


def seed_map(size: int, K: np.ndarray, world_to_cam: np.ndarray, landmarks: np.ndarray | None,
             valid: np.ndarray | None, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """GrabCut labels [size, size] uint8 (cv2.GC_BGD/FGD/PR_BGD/PR_FGD) for a size x size crop with camera (K, w2c)."""
    import cv2

    shp = (size, size)
    head = _fill_hull(shp, _project(K, world_to_cam, _ellipsoid_points(cfg.head_radii, 1.0)))
    neck = _fill_hull(shp, _project(K, world_to_cam, _neck_points(cfg.neck_radius, 1.0)))
    hair = _fill_hull(shp, _project(K, world_to_cam, _ellipsoid_points(cfg.head_radii, cfg.hair_scale)))
    near = _fill_hull(shp, _project(K, world_to_cam, _ellipsoid_points(cfg.head_radii, cfg.sure_bg_scale)))
    near |= _fill_hull(shp, _project(K, world_to_cam, _neck_points(cfg.neck_radius, 2.2)))
    # a real head fills at least this much of the average head ellipsoid: sure foreground (skin or hair), which
    # gives GrabCut colour samples of the hair too
    core = _fill_hull(shp, _project(K, world_to_cam, _ellipsoid_points(cfg.head_radii, cfg.core_scale)))
    core |= _fill_hull(shp, _project(K, world_to_cam, _neck_points(cfg.neck_radius, 0.5)[:48]))
    if landmarks is not None:
        lm = np.asarray(landmarks, np.float64) - 0.5
        c = lm[:27].mean(0)
        core |= _fill_hull(shp, c + 0.85 * (lm[:27] - c))  # inside the jaw line and brows: surely face
    # below the chin plane (neck, shoulders, long hair) nothing is sure background: GrabCut decides there
    chin_v = _project(K, world_to_cam, np.array([[0.0, -0.12, 0.0]]))
    rows = np.arange(size)[:, None] * np.ones((1, size))
    low = rows > (chin_v[0, 1] if len(chin_v) else size)
    labels = np.full(shp, cv2.GC_BGD, np.uint8)
    labels[near] = cv2.GC_PR_BGD  # big hair may reach this far: GrabCut decides
    if cfg.torso:
        labels[near & low] = cv2.GC_PR_FGD
    labels[hair] = cv2.GC_PR_BGD
    labels[head | neck] = cv2.GC_PR_FGD
    labels[core] = cv2.GC_FGD
    if valid is not None:
        labels[np.asarray(valid) < 0.5] = cv2.GC_BGD  # padding beyond the photo
    return labels


def head_mask(image: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, landmarks: np.ndarray | None = None,
              valid: np.ndarray | None = None, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """image [S, S, 3] float in [0, 1] (a head-centric crop), its camera (K [3, 3], world_to_cam [4, 4]), optional
    landmarks [68, 2] in crop pixels and valid [S, S] (1 where the crop saw the photo) -> mask [S, S] float32."""
    import cv2

    S = image.shape[0]
    n = min(cfg.work_size, S)
    s = n / S
    Kw = np.diag([s, s, 1.0]) @ K  # continuous pixel frame scales exactly (pixel centres at +0.5)
    lm = None if landmarks is None else np.asarray(landmarks) * s
    v = None if valid is None else cv2.resize(np.asarray(valid, np.float32), (n, n), interpolation=cv2.INTER_AREA)
    labels = seed_map(n, Kw, world_to_cam, lm, v, cfg)
    img8 = (np.clip(cv2.resize(np.asarray(image, np.float32), (n, n), interpolation=cv2.INTER_AREA), 0, 1) * 255 + 0.5)
    img8 = np.ascontiguousarray(img8.astype(np.uint8)[..., ::-1])  # GrabCut wants BGR uint8
    if (labels == cv2.GC_FGD).any() and ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        mask = labels.copy()
        try:
            cv2.setRNGSeed(0)  # GrabCut's k-means initialisation is random: same photo, same mask
            cv2.grabCut(img8, mask, None, bgd, fgd, cfg.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour statistics (e.g. a flat image): keep the geometric seeds
            mask = labels
    else:
        mask = labels
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = _keep_touching(fg, labels == cv2.GC_FGD)
    fg = _fill_holes(fg)
    # smooth upsampling to the crop size, then a soft edge of about a pixel
    out = cv2.resize(fg.astype(np.float32), (S, S), interpolation=cv2.INTER_LINEAR)
    if cfg.feather_px > 0:
        out = cv2.GaussianBlur(out, (0, 0), cfg.feather_px * max(1.0, S / n) * 0.5)
    out = np.clip((out - 0.5) * 1.5 + 0.5, 0, 1)
    if valid is not None:
        out = out * (np.asarray(valid) > 0.5)
    return out.astype(np.float32)


def _keep_touching(fg: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Keep the connected components of fg that overlap the sure-foreground seeds (drops background specks)."""
    import cv2

    n, lab = cv2.connectedComponents(fg, connectivity=8)
    if n <= 2:
        return fg
    keep = np.unique(lab[sure & (fg > 0)])
    keep = keep[keep > 0]
    return np.isin(lab, keep).astype(np.uint8)


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    """Fill background regions enclosed by foreground (eyes, mouth, glasses reflections)."""
    import cv2

    h, w = fg.shape
    flood = np.pad(1 - fg, 1, constant_values=1).astype(np.uint8)
    ff = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 2)
    holes = flood[1:-1, 1:-1] == 1
    return (fg.astype(bool) | holes).astype(np.uint8)
