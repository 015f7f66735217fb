"""Render a driven avatar: codes + head poses per frame -> video (optionally beside the driving video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

__all__ = ["draw_landmarks", "driven_frames", "write_driven_video"]

MAX_HEAD_TURN = 60.0  # degrees: poses beyond are clipped (the avatar has no back views to show past that)


def driven_frames(avatar, codes: np.ndarray, poses: np.ndarray | None, size: int = 256, *, progress=None):
    """Yield T frames [size, size, 3] uint8: the avatar under codes [T, C] turned by poses [T, 3] (yaw, pitch, roll
    degrees about the head centre), seen by a frontal camera."""
    from ..export.sequence import head_rotation
    from ..head_template import HEAD_BOX_CENTER
    from ..pipeline import orbit_camera

    cam = orbit_camera(0.0, 0.0, size)
    centre = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    for i, z in enumerate(np.asarray(codes, np.float32)):
        if progress is not None:
            progress(i / len(codes), f"rendering frame {i + 1}/{len(codes)}")
        g = avatar.animate(z)
        if poses is not None:
            yaw, pitch, roll = np.clip(poses[i], -MAX_HEAD_TURN, MAX_HEAD_TURN)
            c = centre.to(g.device)
            g = g.transform(t=-c).transform(R=head_rotation(yaw, pitch, roll).to(g.device), t=c)
        yield avatar.render_gaussians(g, cam)[0]


def draw_landmarks(img: np.ndarray, lm: np.ndarray | None, color=(0, 255, 0)) -> np.ndarray:
    import cv2

    out = img.copy()
    if lm is None or not np.isfinite(lm).all():
        return out
    r = max(1, round(img.shape[0] / 200))
    for x, y in lm:
        cv2.circle(out, (int(round(x)), int(round(y))), r, color, -1, lineType=cv2.LINE_AA)
    return out


def _fit(frame: np.ndarray, size: int, lm=None):
    """Centre-crop to a square and resize to size -> (frame, landmarks moved along)."""
    import cv2

    h, w = frame.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    out = cv2.resize(frame[y0:y0 + s, x0:x0 + s], (size, size), interpolation=cv2.INTER_AREA)
    if lm is not None:
        lm = (lm - [x0, y0]) * (size / s)
    return out, lm


def write_driven_video(path, avatar, drive, codes: np.ndarray, *, size: int = 256, side_by_side: bool = False,
                       video=None, with_pose: bool = True, progress=None) -> Path:
    """Write the driven avatar (and, with ``side_by_side``, the driving video with its landmarks on the left) as
    mp4, frame by frame (bounded memory), atomically. drive: a DriveResult; codes [T, C] in the avatar's space."""
    import imageio.v2 as imageio

    from ..io.images import atomic_save
    from .video import iter_video

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: the driven video is written as .mp4; give a path ending in .mp4")
    if side_by_side and video is None:
        raise InputError("side_by_side needs the driving video")
    poses = drive.poses if with_pose else None
    fr = driven_frames(avatar, codes, poses, size, progress=progress)
    src = iter_video(video, len(codes)) if side_by_side else None

    def _write(tmp):
        with imageio.get_writer(tmp, format="FFMPEG", fps=drive.fps, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=1, quality=7, ffmpeg_log_level="error") as wr:
            for i, img in enumerate(fr):
                if src is not None:
                    _, f = next(src)
                    left, lm = _fit(f, size, drive.landmarks[i] if drive.found[i] else None)
                    img = np.concatenate([draw_landmarks(left, lm), img], 1)
                wr.append_data(img)

    try:
        atomic_save(path, _write)
    finally:
        fr.close()
        if src is not None:
            src.close()
    return path
