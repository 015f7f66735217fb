"""The canonical head: where the head-centric world frame (see ``avat3r.cameras``) puts the face.

One source of truth for every stage that must agree on it: SynthHeads builds its heads around these anchors,
the front end solves PnP against a 3D landmark template placed on them, the default cameras frame them.
Units are metres; +x the subject's left ear, +y up, +z out of the face; origin midway between the ears at eye height.
"""

import numpy as np

#: Named 3D anchor points of an average adult head in canonical pose, [3] each, metres.
ANCHORS: dict[str, np.ndarray] = {
    "eye_left": np.array([0.0315, 0.0, 0.078]),     # centre of the subject's left eye (image right)
    "eye_right": np.array([-0.0315, 0.0, 0.078]),
    "nose_tip": np.array([0.0, -0.036, 0.106]),
    "nose_bridge": np.array([0.0, 0.004, 0.092]),
    "mouth_center": np.array([0.0, -0.066, 0.090]),
    "mouth_left": np.array([0.025, -0.064, 0.082]),
    "mouth_right": np.array([-0.025, -0.064, 0.082]),
    "chin": np.array([0.0, -0.112, 0.080]),
    "ear_left": np.array([0.074, -0.012, 0.0]),
    "ear_right": np.array([-0.074, -0.012, 0.0]),
    "crown": np.array([0.0, 0.112, -0.010]),
    "occiput": np.array([0.0, 0.010, -0.108]),
}

#: Half-extents of a box that holds a head with ordinary hair and the upper neck, metres (x, y, z).
HEAD_BOX_HALF = np.array([0.12, 0.16, 0.14])
#: Centre of that box; the head is not centred vertically on the eyes (neck below, crown above).
HEAD_BOX_CENTER = np.array([0.0, -0.01, 0.0])
#: Default distance of a camera from the origin and its field of view such that the box fills a square crop.
DEFAULT_CAMERA_DISTANCE = 1.0
DEFAULT_FOV_DEG = 20.0
