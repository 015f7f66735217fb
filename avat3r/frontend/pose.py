"""Camera estimation from face landmarks: intrinsics (EXIF focal length or a default) and weighted, robust PnP.

The head-centric world (``avat3r.cameras``) is the frame of the 3D landmark template, so the PnP solution
``X_cam = R X_world + t`` is directly the view's ``world_to_cam``: the head's pose is folded into the camera
(paper supp. C, "head-centric coordinates"). The template's metric size fixes one scale for every photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmark_template import LANDMARK_WEIGHTS, landmark_template

#: Diagonal of a 36x24 mm frame, the reference of "35 mm-equivalent" focal lengths.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
#: Focal length (35 mm equivalent) assumed when a photo carries none: between a phone's main camera (~26 mm)
#: and a portrait lens, and close to what a cropped phone portrait is equivalent to.
DEFAULT_FOCAL_35MM = 35.0

__all__ = ["intrinsics_from_focal35", "PoseEstimate", "solve_pose", "azimuth_elevation", "quarter_turn"]


def intrinsics_from_focal35(focal_35mm: float, width: int, height: int) -> np.ndarray:
    """[3, 3] K for a photo of width x height pixels taken with a 35 mm-equivalent focal length (diagonal rule)."""
    f = focal_35mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


@dataclass
class PoseEstimate:
    """world_to_cam [4, 4]; rms: weighted RMS landmark reprojection error (px); residuals [68] px per landmark."""

    world_to_cam: np.ndarray
    rms: float
    residuals: np.ndarray


def _rodrigues(r: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(r, np.float64).reshape(3, 1))[0]


def solve_pose(landmarks: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None) -> PoseEstimate:
    """landmarks [68, 2] pixels, K [3, 3] -> camera pose in the head-centric frame.

    Initialised with OpenCV's SQPnP on the rigid points (nose, eye corners, mouth corners, brows), then refined by
    weighted robust least squares (soft-L1, scale 3 % of the face size) over all 68 points."""
    import cv2
    from scipy.optimize import least_squares

    X = landmark_template()
    x = np.asarray(landmarks, np.float64)
    w = LANDMARK_WEIGHTS if weights is None else np.asarray(weights, np.float64)
    rigid = np.r_[27:36, 36, 39, 42, 45, 48, 54, 17:27]
    ok, rvec, tvec = cv2.solvePnP(X[rigid], x[rigid], K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:  # fall back to a frontal guess at a plausible distance
        face_px = np.linalg.norm(x[45] - x[36])
        dist = K[0, 0] * np.linalg.norm(X[45] - X[36]) / max(face_px, 1.0)
        rvec = cv2.Rodrigues(np.diag([1.0, -1.0, -1.0]))[0]
        tvec = np.array([[0.0], [0.0], [dist]])
    face_px = max(np.linalg.norm(x[45] - x[36]) * 2.0, 1.0)
    sw = np.sqrt(w)[:, None]

    def resid(p):
        uv = cv2.projectPoints(X, p[:3], p[3:], K, None)[0][:, 0]
        return ((uv - x) * sw).ravel()

    p0 = np.r_[rvec.ravel(), tvec.ravel()]
    sol = least_squares(resid, p0, loss="soft_l1", f_scale=0.03 * face_px, method="trf", max_nfev=200)
    R = _rodrigues(sol.x[:3])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, sol.x[3:]
    uv = cv2.projectPoints(X, sol.x[:3], sol.x[3:], K, None)[0][:, 0]
    res = np.linalg.norm(uv - x, axis=1)
    rms = float(np.sqrt((w * res**2).sum() / w.sum()))
    return PoseEstimate(T, rms, res)


def azimuth_elevation(world_to_cam: np.ndarray) -> tuple[float, float]:
    """Camera centre direction in degrees: azimuth 0 = frontal, + towards +x (subject's left); elevation + up."""
    R, t = world_to_cam[:3, :3], world_to_cam[:3, 3]
    c = -R.T @ t
    az = math.degrees(math.atan2(c[0], c[2]))
    el = math.degrees(math.atan2(c[1], math.hypot(c[0], c[2])))
    return az, el


def quarter_turn(k: int) -> np.ndarray:
    """[4, 4] rotation of the camera frame caused by turning the image with np.rot90(image, k).

    A camera of the turned image is ``quarter_turn(k) @ world_to_cam`` of the original (principal point at the
    image centre); the original is recovered with ``quarter_turn(k).T @ world_to_cam_turned``."""
    R1 = np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = np.linalg.matrix_power(R1, k % 4)
    return T
