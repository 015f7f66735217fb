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

__all__ = ["landmark_gaussians", "lid_offsets", "random_head_pose", "synth_landmarks"]

UPPER_LIDS = (37, 38, 43, 44)  # iBUG 68: upper eyelid points
MOUTH_CORNERS = (48, 54, 60, 64)  # between the lips: take a Gaussian that moves a median amount, not the lower lip's
# iBUG 68 eyes: (outer/inner corners, upper lid, lower lid); 36-41 is the subject's right eye (image left)
_EYES = ((36, 39, (37, 38), (41, 40)), (42, 45, (43, 44), (47, 46)))


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
        if i in MOUTH_CORNERS:
            out[i] = front[np.argsort(motion[front])[len(front) // 2]]
        else:
            out[i] = front[np.argmax(motion[front])] if motion[front].max() > 1e-4 else front[np.argmin(d[front])]
    return out


def random_head_pose(rng: np.random.Generator, max_yaw=30.0, max_pitch=15.0, max_roll=10.0, size=512,
                     face_px=(110.0, 330.0)):
    """A random camera seeing the head: (K [3, 3], world_to_cam [4, 4], (yaw, pitch, roll)) with the head turned,
    a 26-50 mm-equivalent lens and the camera at the distance that makes the face ``face_px`` wide (what a
    webcam or phone video of one face shows), the face roughly centred."""
    from scipy.spatial.transform import Rotation

    from ..frontend.pose import intrinsics_from_focal35

    yaw, pitch, roll = rng.uniform(-1, 1, 3) * [max_yaw, max_pitch, max_roll]
    r_head = Rotation.from_euler("YXZ", [yaw, pitch, roll], degrees=True).as_matrix()
    R = np.diag([1.0, -1.0, -1.0]) @ r_head
    K = intrinsics_from_focal35(rng.uniform(26, 50), size, size)
    dist = K[0, 0] * 0.14 / rng.uniform(*face_px)  # a face ~14 cm wide (jaw contour)
    t = np.array([rng.normal(0, 0.02), rng.normal(0, 0.02) - 0.02, dist])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return K, T, (yaw, -pitch, roll)  # pitch + = face up, as drive.features.pose_angles reports it


def synth_landmarks(seed: int, index: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Identity ``seed``, its landmark Gaussians [68] and codes [E, C] -> 3D landmarks [E, 68, 3] (metres)."""
    from ..data.synthheads import build_heads, get_rig

    out = []
    codes = np.asarray(codes, np.float32)
    for i in range(0, len(codes), 64):
        with torch.no_grad():
            heads = build_heads(seed, codes[i:i + 64])
        out.extend(h.means.numpy()[index] for h in heads)
    pts = np.stack(out).astype(np.float64)
    neutral = pts[0] if not codes[0].any() else None
    if neutral is None:
        with torch.no_grad():
            neutral = build_heads(seed, np.zeros((1, codes.shape[1]), np.float32))[0].means.numpy()[index]
    return pts + lid_offsets(get_rig(seed).identity, np.asarray(neutral, np.float64), codes)


def lid_offsets(identity, neutral: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Eyelid landmarks' motion [E, 68, 3] for codes [E, C]. The rig opens and closes the lids with opacity, not by
    moving Gaussians (``HeadRig._eyelids``), so the visible lid edge is computed from the same formula: its height
    above the eye's axis at the landmark's position between the corners, for this code minus for the neutral."""
    from ..data.expressions import EXPRESSION_NAMES

    e = {n: codes[:, EXPRESSION_NAMES.index(n)][:, None] for n in ("eye_wide", "squint", "smile", "blink_left",
                                                                   "blink_right")}
    hu = 0.0058 * identity.eye_open * identity.eye_size
    hl = 0.0045 * identity.eye_open * identity.eye_size
    out = np.zeros((len(codes), 68, 3))
    for c0, c1, upper, lower in _EYES:
        a, b = neutral[c0], neutral[c1]
        mid, axis = (a + b) / 2, (b - a) / np.linalg.norm(b - a)
        blink = e["blink_left" if mid[0] > 0 else "blink_right"]  # +x is the subject's left

        def shape(ids):
            u = (neutral[list(ids)] - mid) @ axis / (np.linalg.norm(b - a) / 2)
            return np.clip(1 - u ** 2, 0, None) ** 0.6

        su, sl = shape(upper)[None], shape(lower)[None]
        closed_u, closed_l = -0.35 * hl * su, -0.35 * hl * sl
        v_hi = hu * su * (1 + 0.55 * e["eye_wide"] - 0.3 * e["squint"])
        v_lo = -hl * sl * np.clip(1 - 0.6 * e["squint"] - 0.25 * e["smile"], 0.1, None)
        out[:, list(upper), 1] = v_hi + (closed_u - v_hi) * blink - hu * su
        out[:, list(lower), 1] = v_lo + (closed_l - v_lo) * blink + hl * sl
    return out


def project(points: np.ndarray, K: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[68, 3] world points -> [68, 2] pixels."""
    pc = points @ T[:3, :3].T + T[:3, 3]
    return pc[:, :2] / pc[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]
