"""A 3D template of the 68 iBUG face landmarks in the head-centric frame, placed on ``avat3r.head_template.ANCHORS``.

The front end solves PnP (camera pose from 2D landmarks) against this template, so it decides where photos put
the face relative to the canonical head, and it fixes the metric scale (metres) for every photo alike.

How it was built (reproducible from the two tables below):
- x, y: the mean frontal 2D shape of dlib's 68-point predictor, measured on 23 near-frontal real faces
  (4 portraits and 19 video frames from ``../shared/realdata``), each aligned by its eye centres (similarity),
  averaged, then made exactly left/right symmetric (averaged with its mirror image). Units: the distance
  between the eye centres = 1, image y down. These are our own measurements, not copied from any dataset.
- Placement: x is scaled so that the eye centres land on ANCHORS eye_left/eye_right (+-31.5 mm, at y = 0);
  y is scaled by least squares so that nose tip (point 30), mouth centre (mean of 62, 66) and chin (point 8)
  land as close as possible to ANCHORS nose_tip, mouth_center and chin (the anchors' lower face is ~10 %
  shorter than the measured mean; residuals are a few millimetres, see ``anchor_residuals``).
- z (depth, out of the face): an anthropometric profile per landmark (table ``_DEPTH``), set so the eye
  centres sit at ANCHORS' z (78 mm), the nose bridge at 92 mm, the nose tip 106 mm, mouth corners 82 mm, chin 80 mm;
  the jaw contour runs back towards the ears (25 mm at the ear end). Contour points are silhouette points
  whose 3D position slides with the pose: PnP gives them a low weight (``LANDMARK_WEIGHTS``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..head_template import ANCHORS

# Mean frontal dlib landmarks (x right, y down), eye-centre distance 1, origin between the eye centres.
_MEAN_2D = np.array([
    (-1.139, 0.085), (-1.122, 0.396), (-1.083, 0.708), (-1.027, 1.013), (-0.925, 1.302), (-0.758, 1.555),
    (-0.544, 1.768), (-0.296, 1.936), (0.000, 1.986), (0.296, 1.936), (0.544, 1.768), (0.758, 1.555),
    (0.925, 1.302), (1.027, 1.013), (1.083, 0.708), (1.122, 0.396), (1.139, 0.085),            # 0-16 jaw
    (-0.922, -0.178), (-0.795, -0.333), (-0.599, -0.392), (-0.392, -0.378), (-0.200, -0.305),  # 17-21 brow
    (0.200, -0.305), (0.392, -0.378), (0.599, -0.392), (0.795, -0.333), (0.922, -0.178),       # 22-26 brow
    (0.000, -0.051), (0.000, 0.151), (0.000, 0.348), (0.000, 0.552),                           # 27-30 nose ridge
    (-0.240, 0.712), (-0.123, 0.746), (0.000, 0.779), (0.123, 0.746), (0.240, 0.712),          # 31-35 nostrils
    (-0.685, 0.008), (-0.567, -0.059), (-0.430, -0.059), (-0.308, 0.023), (-0.438, 0.043), (-0.572, 0.044),
    (0.308, 0.023), (0.430, -0.059), (0.567, -0.059), (0.685, 0.008), (0.572, 0.044), (0.438, 0.043),  # 36-47 eyes
    (-0.449, 1.152), (-0.292, 1.045), (-0.124, 0.996), (0.000, 1.025), (0.124, 0.996), (0.292, 1.045),
    (0.449, 1.152), (0.302, 1.324), (0.135, 1.406), (0.000, 1.420), (-0.135, 1.406), (-0.302, 1.324),  # 48-59 lips
    (-0.381, 1.156), (-0.124, 1.104), (0.000, 1.115), (0.124, 1.104), (0.381, 1.156), (0.127, 1.246),
    (0.000, 1.262), (-0.127, 1.246),                                                            # 60-67 inner lips
])

# Depth (metres, +z out of the face) per landmark; symmetric by construction (see MIRROR).
_DEPTH = np.array([
    0.025, 0.027, 0.030, 0.035, 0.042, 0.052, 0.064, 0.074, 0.080, 0.074, 0.064, 0.052, 0.042, 0.035, 0.030,
    0.027, 0.025,                                    # jaw: from in front of the ear down to the chin
    0.070, 0.080, 0.087, 0.091, 0.092, 0.092, 0.091, 0.087, 0.080, 0.070,  # brows: the brow ridge
    0.092, 0.097, 0.102, 0.106,                      # nose ridge: bridge to tip
    0.086, 0.092, 0.096, 0.092, 0.086,               # nostril base, subnasale in the middle
    0.068, 0.078, 0.081, 0.079, 0.081, 0.078,        # right eye: outer corner, upper, inner corner, lower
    0.079, 0.081, 0.078, 0.068, 0.078, 0.081,        # left eye (mirror order)
    0.082, 0.090, 0.095, 0.096, 0.095, 0.090, 0.082, 0.089, 0.093, 0.094, 0.093, 0.089,  # outer lips
    0.084, 0.092, 0.093, 0.092, 0.084, 0.091, 0.092, 0.091,                              # inner lips
])

#: Index permutation that maps the landmarks of a face to those of its mirror image.
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 21, -1)) + list(range(21, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)

#: PnP weights: rigid parts (nose, eye corners) count most; the jaw contour (a silhouette that slides with
#: pose) and the lips and brows (they move with expression) count less.
LANDMARK_WEIGHTS = np.concatenate([
    np.full(17, 0.15),             # jaw contour
    np.full(10, 0.5),              # brows
    np.full(9, 1.0),               # nose
    np.full(12, 1.0),              # eyes
    np.full(12, 0.4),              # outer lips
    np.full(8, 0.2),               # inner lips
])

EYE_RIGHT = slice(36, 42)  # the subject's right eye (image left)
EYE_LEFT = slice(42, 48)


@lru_cache(maxsize=1)
def _build() -> np.ndarray:
    m = _MEAN_2D
    eye_l, eye_r = m[EYE_LEFT].mean(0), m[EYE_RIGHT].mean(0)
    sx = (ANCHORS["eye_left"][0] - ANCHORS["eye_right"][0]) / (eye_l[0] - eye_r[0])
    x = (m[:, 0] - (eye_l[0] + eye_r[0]) / 2) * sx
    yi = -(m[:, 1] - (eye_l[1] + eye_r[1]) / 2)  # world y is up
    mouth = (yi[62] + yi[66]) / 2
    src = np.array([yi[30], mouth, yi[8]])
    dst = np.array([ANCHORS["nose_tip"][1], ANCHORS["mouth_center"][1], ANCHORS["chin"][1]])
    sy = float(src @ dst / (src @ src))
    y = yi * sy + ANCHORS["eye_left"][1]
    z = _DEPTH + (ANCHORS["eye_left"][2] - _DEPTH[EYE_LEFT].mean())  # eye centres exactly at the anchors' depth
    pts = np.stack([x, y, z], -1)
    pts.setflags(write=False)
    return pts


def landmark_template() -> np.ndarray:
    """[68, 3] landmark positions in the head-centric frame, metres (read-only)."""
    return _build()


def anchor_residuals() -> dict[str, float]:
    """Distance (metres) between the template's landmark for each anchor and the anchor itself."""
    t = landmark_template()
    pairs = {
        "eye_left": t[EYE_LEFT].mean(0), "eye_right": t[EYE_RIGHT].mean(0), "nose_tip": t[30],
        "nose_bridge": t[27], "mouth_center": (t[62] + t[66]) / 2, "mouth_left": t[54], "mouth_right": t[48],
        "chin": t[8],
    }
    return {k: float(np.linalg.norm(v - ANCHORS[k])) for k, v in pairs.items()}
