"""Drive an avatar's expression and head pose from a person's video (one face, any length up to the bound).

Per frame: dlib face + 68 landmarks (on a copy at most ``DETECT_SIDE`` px), PnP head pose and pose-free features
(``features``), minus the neutral face (median of the first ``CALIBRATION_FRAMES`` frames with a face: start the
video with a relaxed face), the regressor -> code, gaze_x/gaze_y from the irises when the regressor folder has
``gaze.json`` (``gaze``, same calibration), One-Euro smoothing of code and pose. Frames without a face
hold the last code. Checked, with a message saying what to do: unreadable video, 0 frames, frames over
``limits.MAX_VIDEO_PIXELS``, no face, several faces of similar size, another person appearing (identity
embedding checked every ``IDENTITY_EVERY`` frames). Longer videos are cut at ``limits.MAX_VIDEO_DRIVE_FRAMES``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..limits import MAX_VIDEO_DRIVE_FRAMES, MAX_VIDEO_PIXELS
from .features import default_intrinsics, landmark_features
from .smoothing import OneEuro

__all__ = ["DriveResult", "Driver", "code_for_space", "drive_video", "iter_video"]

DETECT_SIDE = 480          # long side the face detector sees
CALIBRATION_FRAMES = 10    # frames with a face whose median is the person's neutral
IDENTITY_EVERY = 15        # frames between identity checks (dlib embedding, ~80 ms each)
SAME_PERSON = 0.6          # dlib embedding distance: below = same person (dlib's own threshold)
SECOND_FACE = 0.6          # a second face at least this fraction of the first's width = "several faces"
DETECT_EVERY = 5           # full face detection every N frames; in between the landmarks follow the tracked box


@dataclass
class DriveResult:
    """codes [T, C] (the driven names, see ``names``); poses [T, 3] yaw/pitch/roll degrees; landmarks [T, 68, 2]
    px (NaN where no face); found [T] bool; fps; size (W, H); ms_per_frame (code extraction, wall clock);
    report lines; cpu_ms_per_frame (median CPU time of a frame's extraction, all threads: the first frame's
    one-off warm-up and the identity checks are outliers)."""

    codes: np.ndarray
    names: list
    poses: np.ndarray
    landmarks: np.ndarray
    found: np.ndarray
    fps: float
    size: tuple
    ms_per_frame: float
    report: list = field(default_factory=list)
    cpu_ms_per_frame: float = 0.0


def iter_video(path, max_frames: int = MAX_VIDEO_DRIVE_FRAMES):
    """Yield (index, uint8 frame [H, W, 3]) of a video, checked and bounded -> generator; .fps/.size on first use."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: video file not found")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as e:  # noqa: BLE001  (ffmpeg reports many different failures; all mean "cannot decode")
        raise InputError(f"{path.name}: cannot decode this video ({type(e).__name__}); use an mp4 (H.264) file") from None
    w, h = meta.get("size", (0, 0))
    if w * h > MAX_VIDEO_PIXELS:
        reader.close()
        raise InputError(f"{path.name}: frames are {w}x{h} pixels; the limit is {MAX_VIDEO_PIXELS / 1e6:.1f} megapixels "
                         "(4K). Downscale the video (e.g. to 720p) first.")
    try:
        for i, f in enumerate(reader):
            if i >= max_frames:
                break
            yield i, np.ascontiguousarray(f[..., :3])
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path.name}: the video breaks off at frame {i} ({type(e).__name__}); re-encode it as mp4") from None
    finally:
        reader.close()


def video_meta(path) -> tuple[float, int]:
    """(fps, frame count estimate) without decoding."""
    import imageio.v2 as imageio

    try:
        with imageio.get_reader(Path(path), format="FFMPEG") as r:
            meta = r.get_meta_data()
    except Exception:  # noqa: BLE001
        raise InputError(f"{Path(path).name}: cannot decode this video (no readable video stream, or 0 frames); "
                         "use an mp4 (H.264) file") from None
    fps = float(meta.get("fps") or 25.0)
    n = int(round(float(meta.get("duration") or 0) * fps))
    return fps, n


def code_for_space(codes: np.ndarray, names: list, space) -> np.ndarray:
    """Driven codes [T, len(names)] -> codes [T, space.dim] of a model's expression space (matched by name;
    dims the driver does not produce stay 0)."""
    out = np.zeros((len(codes), space.dim), np.float32)
    for j, n in enumerate(names):
        if n in space.names:
            out[:, space.names.index(n)] = codes[:, j]
    return out


class Driver:
    """Per-frame state: detector, regressor, calibration, identity reference, smoothing."""

    def __init__(self, regressor=None, *, smooth: bool = True):
        from ..frontend.faces import FaceDetector
        from .regressor import load_regressor

        self.det = FaceDetector(detect_size=DETECT_SIDE, use_cnn=False, try_rotations=False)
        self.reg = regressor if regressor is not None else load_regressor()
        self.smooth = smooth
        self.neutral: np.ndarray | None = None
        self._calib: list[np.ndarray] = []
        self._identity: np.ndarray | None = None
        self._code_f = OneEuro(min_cutoff=2.0, beta=4.0)
        self._pose_f = OneEuro(min_cutoff=1.0, beta=0.05)
        self._prev_box = self._prev_lm = None
        self.gaze = getattr(self.reg, "gaze", None)  # GazeConfig: gaze_x, gaze_y follow the names
        self.names = list(self.reg.config.names) + (["gaze_x", "gaze_y"] if self.gaze is not None else [])
        self._gaze_calib: list[np.ndarray] = []
        self._gaze_neutral: np.ndarray | None = None
        self._gaze = np.zeros(2)

    def _pick(self, faces, index: int):
        faces = sorted(faces, key=lambda f: -f.width)
        if len(faces) > 1 and faces[1].width >= SECOND_FACE * faces[0].width and self._prev_box is None:
            raise InputError(f"frame {index}: {len(faces)} faces of similar size; the driving video must show one "
                             "person (crop it to one face)")
        if self._prev_box is not None and len(faces) > 1:  # follow the tracked face
            c = (self._prev_box[:2] + self._prev_box[2:]) / 2
            faces = sorted(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c))
        return faces[0]

    def _track(self, frame: np.ndarray):
        """Landmarks on the last box moved with the face (dlib's predictor, ~2 ms) instead of a detection (~50 ms);
        None when the face was lost (landmarks collapse or leave the box), which triggers a detection."""
        from ..frontend.faces import Face

        lm = self.det._landmarks(frame, self._prev_box)
        shift = lm.mean(0) - self._prev_lm.mean(0)
        box = self._prev_box + np.r_[shift, shift]
        w = box[2] - box[0]
        span = lm.max(0) - lm.min(0)
        if not (0.5 * w < span[0] < 1.6 * w) or np.abs(shift).max() > 0.25 * w:
            return None
        return Face(box, self.det._landmarks(frame, box), 1.0, "track")

    def _read_gaze(self, frame, landmarks, world_to_cam, w, h, code) -> np.ndarray:
        """(gaze_x, gaze_y) from the irises against the face-fixed eyeballs (``gaze``), minus the calibration
        frames' median; a closed eye (the regressor's blink > 0.5) is not read; nothing read: the last value."""
        from .gaze import eye_directions, gaze_code, iris_centres

        dirs = eye_directions(iris_centres(frame, landmarks), world_to_cam, default_intrinsics(w, h))
        names = self.reg.config.names
        for k, side in enumerate(("blink_right", "blink_left")):  # eye 0 is the subject's right
            if side in names and code[names.index(side)] > 0.5:
                dirs[k] = np.nan
        if self._gaze_neutral is None:
            self._gaze_calib.append(dirs)
            with warnings.catch_warnings():  # an eye never read in the calibration stays NaN (not read later either)
                warnings.simplefilter("ignore", RuntimeWarning)
                neutral = np.nanmedian(np.stack(self._gaze_calib), 0)
            if len(self._gaze_calib) >= CALIBRATION_FRAMES:
                self._gaze_neutral = neutral
        else:
            neutral = self._gaze_neutral
        g = gaze_code(dirs, neutral, self.gaze)
        if g is not None:
            self._gaze = g
        return self._gaze.astype(np.float32)

    def step(self, frame: np.ndarray, index: int, t: float):
        """uint8 frame [H, W, 3] -> (code [C_driven] or None, pose [3] or None, landmarks [68, 2] or None)."""
        face = None
        if self._prev_box is not None and index % DETECT_EVERY:
            face = self._track(frame)
        if face is None:
            faces, _ = self.det.detect(frame, fallbacks=False)
            if not faces:
                self._prev_box = self._prev_lm = None
                return None, None, None
            face = self._pick(faces, index)
        self._prev_box, self._prev_lm = face.box, face.landmarks
        if self._identity is None or index % IDENTITY_EVERY == 0:
            emb = self.det.embedding(frame, face)
            if self._identity is None:
                self._identity = emb
            elif np.linalg.norm(emb - self._identity) > SAME_PERSON:
                raise InputError(f"frame {index} ({t:.1f} s) shows another person than the start of the video (a cut?); "
                                 "trim the video to one person")
        h, w = frame.shape[:2]
        feats, pose = landmark_features(face.landmarks, default_intrinsics(w, h))
        if self.neutral is None:
            self._calib.append(feats)
            if len(self._calib) >= CALIBRATION_FRAMES:
                self.neutral = np.median(np.stack(self._calib), 0)
            neutral = np.median(np.stack(self._calib), 0)
        else:
            neutral = self.neutral
        code = self.reg.predict(feats - neutral)[0]
        if self.gaze is not None:
            code = np.concatenate([code, self._read_gaze(frame, face.landmarks, pose.world_to_cam, w, h, code)])
        angles = np.array([pose.yaw, pose.pitch, pose.roll])
        if self.smooth:
            code = self._code_f(code, t)
            angles = self._pose_f(angles, t)
        return code, angles, face.landmarks


def drive_video(path, *, regressor=None, max_frames: int = MAX_VIDEO_DRIVE_FRAMES, smooth: bool = True,
                progress=None) -> DriveResult:
    """A person's video -> DriveResult (codes of the driven names, poses, landmarks per frame)."""
    fps, n_est = video_meta(path)
    n_total = min(n_est, max_frames) if n_est else max_frames
    drv = Driver(regressor, smooth=smooth)
    names = drv.names
    codes, poses, lms, found = [], [], [], []
    size = None
    t_work = 0.0
    cpu: list[float] = []
    for i, frame in iter_video(path, max_frames):
        size = (frame.shape[1], frame.shape[0])
        if progress is not None and i % 10 == 0:
            progress(min(i / max(n_total, 1), 1.0), f"driving: frame {i + 1}/{n_total}")
        t0, c0 = time.perf_counter(), time.process_time()
        code, pose, lm = drv.step(frame, i, i / fps)
        t_work += time.perf_counter() - t0
        cpu.append(time.process_time() - c0)  # CPU seconds (all threads): the cost without other jobs competing
        found.append(code is not None)
        if code is None:  # hold the last code and pose (or neutral at the start)
            code = codes[-1] if codes else np.zeros(len(names), np.float32)
            pose = poses[-1] if poses else np.zeros(3)
            lm = np.full((68, 2), np.nan)
        codes.append(np.asarray(code, np.float32))
        poses.append(np.asarray(pose, np.float32))
        lms.append(np.asarray(lm, np.float32))
    if not codes:
        raise InputError(f"{Path(path).name}: the video has no frames")
    found = np.asarray(found)
    if not found.any():
        raise InputError(f"{Path(path).name}: no face was found in any of its {len(found)} frames; use a video of one "
                         "face, frontal and well lit, filling a good part of the frame")
    report = [f"{len(found)} frames at {fps:.1f} fps, {size[0]}x{size[1]} px; face found in {found.mean():.0%} of them"]
    if n_est > max_frames:
        report.append(f"the video has about {n_est} frames; only the first {max_frames} were used (the limit)")
    if found.sum() < CALIBRATION_FRAMES:
        report.append(f"only {int(found.sum())} frames with a face: the neutral face is a rough guess")
    return DriveResult(np.stack(codes), names, np.stack(poses), np.stack(lms), found, fps, size,
                       1000 * t_work / len(found), report, 1000 * float(np.median(cpu)))
