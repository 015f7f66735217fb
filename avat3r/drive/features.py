"""Landmarks -> head pose and pose-free expression features.

The pose comes from the front end's PnP against the 68-point head template (``avat3r.frontend.pose``). What the
rigid template cannot explain is the face's own motion: each landmark's reprojection residual, scaled from pixels
to metres at the head's depth and turned from the camera's into the head's axes (x right, y up), gives 136
numbers that do not change when the head turns, moves or the camera zooms (to first order). Subtracting the same
person's neutral features removes their face shape, leaving the expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FEATURE_DIM", "FramePose", "default_intrinsics", "landmark_features", "pose_angles"]

FEATURE_DIM = 136
# OpenCV camera looking at the head's face from the front (head-centric world is y-up, face towards +z)
_R_FRONT = np.diag([1.0, -1.0, -1.0])


@dataclass
class FramePose:
    """world_to_cam [4, 4] (PnP); yaw/pitch/roll degrees of the head seen from the camera; rms px."""

    world_to_cam: np.ndarray
    yaw: float
    pitch: float
    roll: float
    rms: float


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """K for a video frame without metadata (the front end's default 35 mm-equivalent focal length)."""
    from ..frontend.pose import DEFAULT_FOCAL_35MM, intrinsics_from_focal35

    return intrinsics_from_focal35(DEFAULT_FOCAL_35MM, width, height)


def pose_angles(world_to_cam: np.ndarray) -> tuple[float, float, float]:
    """The head's rotation relative to a frontal camera -> (yaw, pitch, roll) degrees, three.js order YXZ in the
    head-centric frame: yaw + turns the face towards +x (subject's left), pitch + tilts it up, roll + about +z."""
    r = _R_FRONT.T @ np.asarray(world_to_cam)[:3, :3]  # head rotation in world axes
    # R = Ry(yaw) Rx(pitch) Rz(roll)
    pitch = math.asin(max(-1.0, min(1.0, -r[1, 2])))
    yaw = math.atan2(r[0, 2], r[2, 2])
    roll = math.atan2(r[1, 0], r[1, 1])
    return math.degrees(yaw), -math.degrees(pitch), math.degrees(roll)


def landmark_features(landmarks: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, FramePose]:
    """landmarks [68, 2] pixels, K [3, 3] -> (features [136] metres in head axes, FramePose)."""
    import cv2

    from ..frontend.landmark_template import landmark_template
    from ..frontend.pose import solve_pose

    x = np.asarray(landmarks, np.float64)
    est = solve_pose(x, K)
    T = est.world_to_cam
    X = landmark_template()
    rvec = cv2.Rodrigues(T[:3, :3])[0]
    uv = cv2.projectPoints(X, rvec, T[:3, 3], K, None)[0][:, 0]
    depth = (X @ T[:3, :3].T + T[:3, 3])[:, 2:3]  # each landmark's depth
    d_cam = np.concatenate([(x - uv) * depth / K[0, 0], np.zeros((68, 1))], 1)  # metres in camera axes
    d_head = d_cam @ T[:3, :3]  # camera -> head axes (R^T d)
    feats = np.stack([d_head[:, 0], d_head[:, 1]], 1).reshape(-1).astype(np.float32)
    yaw, pitch, roll = pose_angles(T)
    return feats, FramePose(T, yaw, pitch, roll, est.rms)
