"""Training data for the driving regressor from SynthHeads, where the true expression code is known.

Per identity, once: render the neutral head frontally, detect dlib's 68 landmarks on the render, and attach each
landmark to one Gaussian of the head: among the front-surface Gaussians under the landmark, the one the
expression rig moves most (so an eyelid landmark follows the lid, not the eyeball behind it). After that, any
expression gives the 68 landmarks in 3D for free (the rig keeps the Gaussians' order), and any head pose and
camera give them in 2D: thousands of (landmarks, code) pairs without rendering.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["landmark_gaussians", "random_head_pose", "synth_landmarks"]

UPPER_LIDS = (37, 38, 43, 44)  # iBUG 68: upper eyelid points


def landmark_gaussians(seed: int, size: int = 384, radius_px: float = 2.5) -> np.ndarray | None:
    """Identity ``seed`` -> indices [68] of the Gaussians that carry its landmarks, or None (no face found)."""
    from ..data.expressions import EXPRESSION_PRESETS
    from ..data.synthheads import build_heads
    from ..frontend.faces import FaceDetector
    from ..pipeline import orbit_camera
    from ..render import render

    names = [k for k in EXPRESSION_PRESETS if k != "neutral"]
    codes = np.stack([EXPRESSION_PRESETS["neutral"]] + [EXPRESSION_PRESETS[k] for k in names]).astype(np.float32)
    heads = build_heads(seed, codes)
    g = heads[0]
    cam = orbit_camera(0.0, 0.0, size)
    img = render(g, cam, background=(0.5, 0.5, 0.5)).color[0].clamp(0, 1).numpy()
    faces, _ = FaceDetector(use_cnn=False, try_rotations=False).detect((img * 255 + 0.5).astype(np.uint8), fallbacks=False)
    if len(faces) != 1:
        return None
    lm = faces[0].landmarks
    means = g.means.numpy().astype(np.float64)
    motion = sum(np.linalg.norm(h.means.numpy() - g.means.numpy(), axis=1) for h in heads[1:])
    T = cam.world_to_cam[0].numpy().astype(np.float64)
    K = cam.K[0].numpy().astype(np.float64)
    pc = means @ T[:3, :3].T + T[:3, 3]
    uv = pc[:, :2] / pc[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]
    ok = g.opacities.numpy() > 0.3
    blink = np.linalg.norm(heads[1 + names.index("eyes_closed")].means.numpy() - g.means.numpy(), axis=1)
    out = np.zeros(68, np.int64)
    for i, p in enumerate(lm):
        d = np.linalg.norm(uv - p, axis=1)
        if i in UPPER_LIDS:  # the open lid sits folded above the eye, not on the visible surface: take what closes
            cand = np.where(ok & (d < 2 * radius_px))[0]
            if len(cand) and blink[cand].max() > 1e-3:
                out[i] = cand[np.argmax(blink[cand])]
                continue
        cand = np.where(ok & (d < radius_px))[0]
        if len(cand) == 0:
            cand = np.where(ok)[0][np.argsort(d[ok])[:5]]
        front = cand[pc[cand, 2] < pc[cand, 2].min() + 0.004]  # the visible surface: within 4 mm of the nearest
        out[i] = front[np.argmax(motion[front])] if motion[front].max() > 1e-4 else front[np.argmin(d[front])]
    return out


def random_head_pose(rng: np.random.Generator, max_yaw=30.0, max_pitch=15.0, max_roll=10.0, size=512):
    """A random camera seeing the head: (K [3, 3], world_to_cam [4, 4]) with the head turned and the camera
    at 0.5-1.2 m with a 26-50 mm-equivalent lens, the face roughly centred."""
    from scipy.spatial.transform import Rotation

    from ..frontend.pose import intrinsics_from_focal35

    yaw, pitch, roll = rng.uniform(-1, 1, 3) * [max_yaw, max_pitch, max_roll]
    r_head = Rotation.from_euler("YXZ", [yaw, pitch, roll], degrees=True).as_matrix()
    R = np.diag([1.0, -1.0, -1.0]) @ r_head
    dist = rng.uniform(0.5, 1.2)
    K = intrinsics_from_focal35(rng.uniform(26, 50), size, size)
    t = np.array([rng.normal(0, 0.02), rng.normal(0, 0.02) - 0.02, dist])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return K, T, (yaw, -pitch, roll)  # pitch + = face up, as drive.features.pose_angles reports it


def synth_landmarks(seed: int, index: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Identity ``seed``, its landmark Gaussians [68] and codes [E, C] -> 3D landmarks [E, 68, 3] (metres)."""
    from ..data.synthheads import build_heads

    out = []
    for i in range(0, len(codes), 64):
        with torch.no_grad():
            heads = build_heads(seed, np.asarray(codes[i:i + 64], np.float32))
        out.extend(h.means.numpy()[index] for h in heads)
    return np.stack(out).astype(np.float64)


def project(points: np.ndarray, K: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[68, 3] world points -> [68, 2] pixels."""
    pc = points @ T[:3, :3].T + T[:3, 3]
    return pc[:, :2] / pc[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]
