"""Shared helpers of the front-end benchmarks: real data paths, background photos, SynthHeads renders, rotation errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def out_dir() -> Path | None:
    d = os.environ.get("OUT")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        return Path(d)
    return None


def rot_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix [3, 3] in degrees."""
    return math.degrees(math.acos(float(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def relative_rotation_errors(R_est: list[np.ndarray], R_gt: list[np.ndarray]) -> list[float]:
    """For every pair (i, j): angle between R_i R_j^T estimated and ground truth (frame-independent), degrees."""
    errs = []
    for i in range(len(R_est)):
        for j in range(i + 1, len(R_est)):
            errs.append(rot_angle_deg((R_est[i] @ R_est[j].T) @ (R_gt[i] @ R_gt[j].T).T))
    return errs


def background_photos(size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """n real background windows [size, size, 3] float32 from the statue set's office photos (no faces in them)."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = sorted((REALDATA / "alicevision_dataset_buddha" / "buddha").glob("*.png"))
    if not files:
        return [np.full((size, size, 3), v, np.float32) for v in np.linspace(0.2, 0.8, n)]
    out = []
    for k in range(n):
        img = np.asarray(Image.open(files[k % len(files)]).convert("RGB"))
        h, w = img.shape[:2]
        win = int(rng.integers(500, min(h, w)))
        y, x = int(rng.integers(0, h - win)), int(rng.integers(0, w - win))
        # the statue is usually in the middle: prefer the left/right thirds
        x = int(rng.choice([0, w - win])) if rng.random() < 0.7 else x
        crop = cv2.resize(img[y:y + win, x:x + win], (size, size), interpolation=cv2.INTER_AREA)
        out.append(crop.astype(np.float32) / 255)
    return out


def synth_views(seed: int, azimuths, elevation: float = 5.0, size: int = 384, distance: float = 1.0, fov: float = 20.0):
    """Render a SynthHeads identity from orbit cameras -> (color [V, S, S, 3], alpha [V, S, S], Cameras).

    Photos are wider than the crop: the camera sees the head smaller than the front end's crop frames it."""
    import torch

    from avat3r.cameras import Cameras, intrinsics_from_fov, look_at, spherical_to_cartesian

    az = torch.tensor(list(azimuths), dtype=torch.float32)
    eyes = spherical_to_cartesian(az, torch.full_like(az, elevation), torch.full_like(az, distance))
    w2c = look_at(eyes, (0.0, -0.02, 0.0))
    K = intrinsics_from_fov(fov, size).expand(len(az), 3, 3)
    cams = Cameras(K, w2c, size, size)
    cache = os.environ.get("FRONTEND_BENCH_CACHE")  # renders are slow on CPU: reuse them between benchmarks
    key = f"synth_{seed}_{'_'.join(str(int(a)) for a in azimuths)}_{elevation}_{size}_{distance}_{fov}.npz"
    if cache and (Path(cache) / key).exists():
        z = np.load(Path(cache) / key)
        return z["color"], z["alpha"], cams
    from avat3r.data.synthheads import build_head
    from avat3r.render import render

    g = build_head(seed)
    out = render(g, cams, background=(0.0, 0.0, 0.0))
    color, alpha = out.color.numpy(), out.alpha[..., 0].numpy()
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(cache) / key, color=color, alpha=alpha)
    return color, alpha, cams
