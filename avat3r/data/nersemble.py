"""NeRSemble loader: one participant folder -> Captures (same interface as ``Ava256Subject``).

Layout::

    <pid>/calibration/camera_params.json  {"world_2_cam": {"<serial>": 4x4 (OpenCV)}, "intrinsics": 3x3}
    <pid>/sequences/<seq>/images/cam_<serial>.mp4

The shared intrinsics refer to ``calibrated_size`` (width, height; default the principal point x 2). Frames are
read from the videos; a video whose frame size is not a uniform rescale of the calibrated size raises. NeRSemble's
world frame is not head-centric: pass ``world_to_head`` (4x4, e.g. from a tracked head pose) to fold it in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cameras import Cameras
from ..capture import Capture
from ..errors import FormatError, InputError
from .ava256 import warp_to_camera
from .dome import HEAD_RADIUS, head_crops


def _read_frame(path: Path, frame: int) -> np.ndarray:
    import imageio

    if not path.exists():
        raise FormatError(f"{path}: video not found")
    try:
        with imageio.get_reader(str(path), format="ffmpeg") as r:
            n = r.count_frames()
            if not 0 <= frame < n:
                raise InputError(f"{path}: frame {frame} out of range (video has {n} frames)")
            img = r.get_data(frame)
    except InputError:
        raise
    except Exception as e:
        raise FormatError(f"{path}: cannot decode the video ({e})") from None
    return np.asarray(img, np.float32)[..., :3] / 255.0


class NeRSembleParticipant:
    """One NeRSemble participant. ``capture(sequence, frame, serials, size)`` -> Capture."""

    def __init__(self, root, calibrated_size: tuple[int, int] | None = None, world_to_head: np.ndarray | None = None):
        self.dir = Path(root)
        p = self.dir / "calibration" / "camera_params.json"
        try:
            data = json.loads(p.read_text())
            w2c = data["world_2_cam"]
            K = np.asarray(data["intrinsics"], np.float64)
        except FileNotFoundError:
            raise FormatError(f"{p}: file not found; a NeRSemble participant needs calibration/camera_params.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{p}: expected {{\"world_2_cam\": {{serial: 4x4}}, \"intrinsics\": 3x3}} ({e!r})") from None
        if K.shape != (3, 3) or not np.isfinite(K).all():
            raise FormatError(f"{p}: intrinsics must be a finite 3x3 matrix, got shape {K.shape}")
        self.K = K
        self.w2c = {}
        for s, M in w2c.items():
            M = np.asarray(M, np.float64)
            if M.shape != (4, 4) or not np.isfinite(M).all():
                raise FormatError(f"{p}: world_2_cam[{s!r}] must be a finite 4x4 matrix, got {M.shape}")
            self.w2c[str(s)] = M
        self.serials = list(self.w2c)
        self.calibrated_size = calibrated_size or (int(round(2 * K[0, 2])), int(round(2 * K[1, 2])))
        self.world_to_head = np.eye(4) if world_to_head is None else np.asarray(world_to_head, np.float64)

    def sequences(self) -> list[str]:
        d = self.dir / "sequences"
        return sorted(x.name for x in d.iterdir() if x.is_dir()) if d.is_dir() else []

    def cameras(self, serials, width: int, height: int) -> Cameras:
        cw, ch = self.calibrated_size
        sx, sy = width / cw, height / ch
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise FormatError(f"{self.dir}: frames are {width}x{height} but the intrinsics are for {cw}x{ch} "
                              "(not a uniform rescale); pass calibrated_size= if the calibration size differs")
        head_to_world = np.linalg.inv(self.world_to_head)
        Ks, w2cs = [], []
        for s in serials:
            if s not in self.w2c:
                raise InputError(f"{self.dir}: unknown camera serial {s!r}; known: {self.serials}")
            K = self.K.copy()
            K[0] *= sx
            K[1] *= sy
            Ks.append(K)
            w2cs.append(self.w2c[s] @ head_to_world)
        return Cameras(np.stack(Ks), np.stack(w2cs), width, height)

    def capture(self, sequence: str, frame: int, serials=None, size: int | None = None) -> Capture:
        serials = list(serials) if serials is not None else self.serials
        for s in serials:
            if s not in self.w2c:
                raise InputError(f"{self.dir}: unknown camera serial {s!r}; known: {self.serials}")
        vids = [self.dir / "sequences" / sequence / "images" / f"cam_{s}.mp4" for s in serials]
        imgs = [_read_frame(v, frame) for v in vids]
        h, w = imgs[0].shape[:2]
        for v, im in zip(vids, imgs):
            if im.shape[:2] != (h, w):
                raise FormatError(f"{v}: frames are {im.shape[1]}x{im.shape[0]}, other cameras {w}x{h}")
        cams = self.cameras(serials, w, h)
        names = [f"cam_{s}" for s in serials]
        meta = {"sequence": sequence, "frame": frame}
        if size is None:
            return Capture(np.stack(imgs), cams, names, meta=meta)
        crop = head_crops(cams, size, radius=HEAD_RADIUS)
        return Capture(np.stack([warp_to_camera(im, cams[i], crop[i]) for i, im in enumerate(imgs)]), crop, names, meta=meta)
