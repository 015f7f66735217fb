"""Face landmarks and identity embeddings for the face metrics (AKD, CSIM), on top of the front end's dlib detector.

The detector itself (HOG + CNN fallback, 68 landmarks, 128-d dlib ResNet embedding, model files found through
the ``face_recognition_models`` package directory) lives in ``avat3r.frontend.faces``; this module only adapts
it to paired-image evaluation: no rotation search, the largest face, and, when a rendering has no detectable
face, landmarks predicted inside the ground truth's face box (so AKD measures misalignment rather than
detector recall; such pairs are counted separately).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["FaceObservation", "faces_available", "observe", "get_detector"]


def faces_available() -> bool:
    """True when dlib and its model files are installed (``pip install dlib-bin face-recognition-models``)."""
    try:
        from ..frontend.faces import faces_available as fa
    except ImportError:
        return False
    return fa()


@lru_cache(maxsize=1)
def get_detector():
    """One shared FaceDetector (models load once per process)."""
    from ..frontend.faces import FaceDetector

    return FaceDetector(detect_size=640, use_cnn=True, try_rotations=False)


@dataclass
class FaceObservation:
    """box (x0, y0, x1, y1) px; landmarks [68, 2] px; embedding [128]; detected: False if the box was borrowed."""

    box: np.ndarray
    landmarks: np.ndarray
    embedding: np.ndarray
    detected: bool


def _u8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    return np.ascontiguousarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def observe(img: np.ndarray, fallback_box: np.ndarray | None = None) -> FaceObservation | None:
    """Largest face in img [H, W, 3] (float [0, 1] or uint8); with ``fallback_box`` used when none is found."""
    from ..frontend.faces import Face

    det = get_detector()
    u8 = _u8(img)
    faces, _ = det.detect(u8)
    if faces:
        face, detected = faces[0], True
    elif fallback_box is not None:
        box = np.asarray(fallback_box, dtype=float)
        face, detected = Face(box, det._landmarks(u8, box), 0.0, "borrowed"), False
    else:
        return None
    return FaceObservation(face.box, face.landmarks, det.embedding(u8, face), detected)
