"""Gaze from the eyes, against a face-fixed eyeball (not against dlib's eye points, which follow the iris).

Per eye: the iris centre in the image (the darkness-weighted centroid inside dlib's eye outline), the eyeball as a
sphere fixed in the head (the head template's eyeball centre, 12 mm radius) placed by the frame's PnP head pose,
the camera ray through the iris centre meets the sphere: the direction from the eyeball centre to that point, in
the head's axes, is the eye's direction (yaw, pitch). Minus the same person's neutral direction (median of the
calibration frames: the start of the video, looking at the camera) and times a gain per dimension (fitted on
SynthHeads renders with known gaze, ``GazeConfig``) it is the code's gaze_x, gaze_y. Where the template's eyeball
centre misses the person's, the error is mostly constant and drops out with the neutral.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..head_template import _EYE_CENTERS

__all__ = ["EYEBALL_RADIUS", "EYES", "GazeConfig", "eye_directions", "gaze_code", "iris_centres"]

EYEBALL_RADIUS = 0.012  # metres (the SynthHeads rig's and a human eye's)
# iBUG 68 eye outlines: the subject's right eye (image left) first; its eyeball centre in the head frame
EYES = ((slice(36, 42), _EYE_CENTERS[1]), (slice(42, 48), _EYE_CENTERS[0]))
MIN_OPEN = 0.15  # eye outline height / width below which the eye counts as closed (no iris to measure)
IRIS_R = 0.2  # disc radius / eye width


@dataclass
class GazeConfig:
    """gain: code units per radian of eye rotation for (gaze_x, gaze_y), fitted on SynthHeads renders
    (``avat3r.drive.train``); the rig turns its eyes by 0.45 and 0.35 rad per unit, so about 2.2 and 2.9."""

    gain: tuple = (1 / 0.45, 1 / 0.35)


def iris_centres(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """uint8 frame [H, W, 3], landmarks [68, 2] -> iris centres [2, 2] px (NaN for a closed or unreadable eye)."""
    gray = np.asarray(frame, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([_iris(gray, np.asarray(landmarks, np.float64)[sl]) for sl, _ in EYES])


def _iris(gray: np.ndarray, eye: np.ndarray) -> np.ndarray:
    import cv2

    nan = np.full(2, np.nan)
    width = np.linalg.norm(eye[3] - eye[0])
    height = (np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / 2
    if width < 4 or height < MIN_OPEN * width:
        return nan
    s = max(1.0, 40.0 / width)  # the eye at least 40 px wide: the centroid is sub-pixel either way
    x0, y0 = np.floor(eye.min(0)).astype(int) - 2
    x1, y1 = np.ceil(eye.max(0)).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    crop = gray[y0:y1, x0:x1]
    if crop.size == 0:
        return nan
    crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(mask, [np.round((eye - [x0, y0]) * s).astype(np.int32)], 1)
    inside = mask.astype(bool)
    if inside.sum() < 10:
        return nan
    v = crop[inside]
    hi, lo = np.percentile(v, 90), np.percentile(v, 3)
    if hi - lo < 15:  # no dark iris against the white of the eye (e.g. dark glasses)
        return nan
    # darkness inside the outline, filtered with a disc of the iris's size (~40 % of the eye's width): the iris
    # is a blob, the lashes along the lid a thin line, so the disc's best place is the iris, not the lash line
    dark = np.where(inside, np.clip(hi - crop, 0, None), 0).astype(np.float32)
    r = max(2, int(round(IRIS_R * width * s)))
    disc = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    cv2.circle(disc, (r, r), r, 1.0, -1)
    score = cv2.filter2D(dark, -1, disc / disc.sum(), borderType=cv2.BORDER_CONSTANT)
    py, px = np.unravel_index(np.argmax(np.where(inside, score, -1)), score.shape)
    ys, xs = np.mgrid[: crop.shape[0], : crop.shape[1]]
    w = dark * (((xs - px) ** 2 + (ys - py) ** 2) <= r * r)
    if w.sum() <= 0:
        return nan
    c = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
    return (c + 0.5) / s - 0.5 + [x0, y0]


def eye_directions(iris: np.ndarray, world_to_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """iris centres [2, 2] px, the head's PnP pose [4, 4] and K [3, 3] -> each eye's (yaw, pitch) [2, 2] radians in
    the head's axes (yaw + towards +x, the subject's left; pitch + up); NaN where the iris is NaN."""
    R, t = world_to_cam[:3, :3], world_to_cam[:3, 3]
    out = np.full((2, 2), np.nan)
    for k, (_, centre) in enumerate(EYES):
        if not np.isfinite(iris[k]).all():
            continue
        c = R @ centre + t
        v = np.linalg.solve(K, [iris[k][0], iris[k][1], 1.0])
        v /= np.linalg.norm(v)
        b = v @ c
        disc = b * b - (c @ c - EYEBALL_RADIUS ** 2)
        q = (b - np.sqrt(disc)) * v if disc > 0 else b * v  # the front hit, or the ray's nearest point
        d = R.T @ (q - c)  # camera -> head axes
        d /= np.linalg.norm(d)
        out[k] = np.arctan2(d[0], d[2]), np.arcsin(np.clip(d[1], -1, 1))
    return out


def gaze_code(directions: np.ndarray, neutral: np.ndarray, config: GazeConfig = GazeConfig()) -> np.ndarray | None:
    """Eye directions [2, 2] and the person's neutral ones [2, 2] (radians) -> (gaze_x, gaze_y) in [-1, 1], or None
    when neither eye was read (the caller holds the last value)."""
    d = directions - neutral
    ok = np.isfinite(d).all(1)
    if not ok.any():
        return None
    return np.clip(d[ok].mean(0) * np.asarray(config.gain), -1.0, 1.0)
