"""Offline face detection, 68-point landmarks and identity embeddings (dlib, through the optional `faces` extra).

dlib's HOG detector (fast, near-frontal, upright) runs on a downscaled copy of the photo; when it finds nothing
the photo is tried rotated by 90/180/270 degrees (photos with lost EXIF orientation, statues photographed
sideways) and, if enabled, with dlib's CNN (MMOD) detector. Landmarks are predicted on a face-sized patch of the
full-resolution photo. The 128-d ResNet embedding (dlib's face recognition model) tells people apart.

The model files come from the ``face-recognition-models`` package; its ``__init__`` imports ``pkg_resources``
(absent with recent setuptools), so the ``.dat`` files are located through the package directory instead.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError

INSTALL_HINT = 'pip install dlib-bin face-recognition-models  (both are dependencies of avat3r: reinstall it with pip install -e .)'

__all__ = ["Face", "FaceDetector", "faces_available", "require_faces", "INSTALL_HINT"]


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "models"
    return d if (d / "shape_predictor_68_face_landmarks.dat").exists() else None


def faces_available() -> bool:
    """True when dlib and the face model files are installed."""
    return importlib.util.find_spec("dlib") is not None and _models_dir() is not None


def require_faces(why: str) -> None:
    """Raise InputError naming what to install when dlib or its model files are missing."""
    if importlib.util.find_spec("dlib") is None:
        raise InputError(f"{why} needs the offline face detector dlib, which is not installed: {INSTALL_HINT}; "
                         "or give cameras (and masks) with a capture folder")
    if _models_dir() is None:
        raise InputError(f"{why} needs dlib's face model files (package face-recognition-models), which are not "
                         f"installed: {INSTALL_HINT}; or give cameras (and masks) with a capture folder")


@lru_cache(maxsize=1)
def _models() -> dict:
    import dlib

    d = _models_dir()
    return {
        "hog": dlib.get_frontal_face_detector(),
        "shape": dlib.shape_predictor(str(d / "shape_predictor_68_face_landmarks.dat")),
        "embed": dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat")),
        "cnn_path": str(d / "mmod_human_face_detector.dat"),
    }


@lru_cache(maxsize=1)
def _cnn():
    import dlib

    return dlib.cnn_face_detection_model_v1(_models()["cnn_path"])


@dataclass
class Face:
    """One detected face in a photo's pixel frame (after the photo was turned upright by ``rotation`` quarter turns).

    box: (x0, y0, x1, y1) pixels; landmarks: [68, 2] pixels (iBUG 68 order); score: detector confidence;
    detector: which detector found it; embedding: [128] identity descriptor or None."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    detector: str
    embedding: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        """Face size in pixels: outer eye-corner to eye-corner distance x 2.2 (robust to the detector's box)."""
        return float(max(self.box[2] - self.box[0], 2.2 * np.linalg.norm(self.landmarks[45] - self.landmarks[36])))


def _to_u8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    return np.ascontiguousarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if abs(scale - 1) < 1e-6:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class FaceDetector:
    """Detect faces with landmarks in an upright uint8 RGB photo [H, W, 3].

    detect_size: long side of the copy the detectors see (keeps 40-megapixel photos fast);
    use_cnn: also try dlib's CNN detector when HOG finds nothing (slower, finds more poses and statues);
    try_rotations: also try the photo turned by quarter turns when nothing is found upright."""

    def __init__(self, detect_size: int = 640, use_cnn: bool = True, try_rotations: bool = True,
                 min_hog_score: float = 0.3):
        require_faces("finding faces in photos")
        self.min_hog_score = min_hog_score
        self.detect_size = detect_size
        self.use_cnn = use_cnn
        self.try_rotations = try_rotations
        self.models = _models()

    # -- detection on one orientation -----------------------------------------------------------------
    def _boxes(self, small: np.ndarray, cnn: bool) -> list[tuple[np.ndarray, float, str]]:
        """Boxes (x0, y0, x1, y1) in ``small``'s pixels with scores."""
        out = []
        if not cnn:
            ups = (0, 1) if max(small.shape[:2]) <= 800 else (0,)
            for up in ups:  # upsampling finds faces down to ~40 px, at 4x the cost: only when needed
                rects, scores, _ = self.models["hog"].run(small, up, 0.0)
                # scores below ~0.3 were false positives on clothing and backgrounds in our photos (faces: 0.6-3.5)
                out = [(np.array([r.left(), r.top(), r.right(), r.bottom()], float), float(s), "hog")
                       for r, s in zip(rects, scores) if s >= self.min_hog_score]
                if out:
                    break
        else:
            # the CNN needs ~80 px faces at its input; cap its input so it stays about a second on 2 cores
            s = min(1.0, 400 / max(small.shape[:2]))
            im = _resize(small, s)
            for d in _cnn()(im, 0):
                r = d.rect
                out.append((np.array([r.left(), r.top(), r.right(), r.bottom()], float) / s, float(d.confidence), "cnn"))
        return out

    def _landmarks(self, img: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 landmarks [68, 2] on a face-sized patch of the full-resolution image (accurate and cheap)."""
        import dlib

        h, w = img.shape[:2]
        bw = box[2] - box[0]
        m = 0.6 * bw
        x0, y0 = int(max(0, box[0] - m)), int(max(0, box[1] - m))
        x1, y1 = int(min(w, box[2] + m)), int(min(h, box[3] + m))
        patch = np.ascontiguousarray(img[y0:y1, x0:x1])
        s = min(1.0, 320.0 / max(bw, 1.0))  # the predictor gains nothing from faces larger than ~300 px
        patch = _to_u8(_resize(patch, s))
        b = (box - [x0, y0, x0, y0]) * s
        rect = dlib.rectangle(int(round(b[0])), int(round(b[1])), int(round(b[2])), int(round(b[3])))
        shape = self.models["shape"](np.ascontiguousarray(patch), rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        # dlib returns integer pixel indices; +0.5 moves them to the project's pixel-centre convention
        return (pts + 0.5) / s + [x0, y0]

    def embedding(self, img: np.ndarray, face: Face) -> np.ndarray:
        """[128] identity descriptor (dlib ResNet) of ``face`` in the upright image ``img`` (uint8 or float)."""
        import dlib

        bw = face.box[2] - face.box[0]
        s = min(1.0, 300.0 / max(bw, 1.0))
        m = 0.5 * bw
        h, w = img.shape[:2]
        x0, y0 = int(max(0, face.box[0] - m)), int(max(0, face.box[1] - m))
        x1, y1 = int(min(w, face.box[2] + m)), int(min(h, face.box[3] + m))
        patch = _to_u8(_resize(np.ascontiguousarray(img[y0:y1, x0:x1]), s))
        pts = (face.landmarks - 0.5 - [x0, y0]) * s
        b = (face.box - [x0, y0, x0, y0]) * s
        rect = dlib.rectangle(*[int(round(v)) for v in b])
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
        return np.asarray(self.models["embed"].compute_face_descriptor(patch, shape), dtype=np.float64)

    def detect(self, img: np.ndarray, fallbacks: bool = True) -> tuple[list[Face], int]:
        """Faces in ``img`` [H, W, 3] (uint8 or float) -> (faces sorted largest first, quarter turns applied).

        When faces are found only after turning the photo by k quarter turns counter-clockwise (np.rot90),
        the faces are given in the turned photo's pixels and k is returned; the caller turns the photo too.
        fallbacks=False runs upright HOG only (video frames)."""
        # downscale first, convert to 8 bit after: a 40 MP float photo is never converted as a whole
        scale = min(1.0, self.detect_size / max(img.shape[:2]))
        small = _to_u8(_resize(img, scale))
        passes = [(0, False, small, scale)]
        if fallbacks and scale < 0.5:  # a small face in a big photo: look again at up to 1600 px
            s2 = min(1.0, 1600 / max(img.shape[:2]))
            passes.append((0, False, _to_u8(_resize(img, s2)), s2))
        if self.try_rotations and fallbacks:
            passes += [(1, False, small, scale), (3, False, small, scale), (2, False, small, scale)]
        if self.use_cnn and fallbacks:
            passes += [(0, True, small, scale)]  # ~1 s on 2 cores: upright only
        for k, cnn, sm0, sc in passes:
            sm = np.ascontiguousarray(np.rot90(sm0, k)) if k else sm0
            found = self._boxes(sm, cnn)
            if not found:
                continue
            full = np.rot90(img, k) if k else img  # a view: only face patches are copied
            faces = []
            for box, score, name in found:
                box = box / sc
                box[[0, 2]] = np.clip(box[[0, 2]], 0, full.shape[1])
                box[[1, 3]] = np.clip(box[[1, 3]], 0, full.shape[0])
                if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                    continue
                faces.append(Face(box, self._landmarks(full, box), score, name))
            if faces:
                faces.sort(key=lambda f: -f.width)
                return faces, k
        return [], 0
