"""Video writing (mp4 through imageio-ffmpeg's bundled ffmpeg, GIF through Pillow) and frame reading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from ..limits import MAX_FPS, MAX_VIDEO_FRAMES, MAX_VIDEO_PIXELS, MIN_FPS
from .images import atomic_save, check_pixels, to_uint8


def check_fps(fps, what: str = "fps") -> float:
    """A frame rate -> float in [MIN_FPS, MAX_FPS], or InputError naming the range."""
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number of frames per second, got {fps!r}") from None
    if not math.isfinite(f) or not MIN_FPS <= f <= MAX_FPS:
        raise InputError(f"{what} {fps!r} is out of range: use {MIN_FPS:g} to {MAX_FPS:g} frames per second")
    return f


def check_video_path(path) -> Path:
    """An output video path -> Path, or InputError when its extension is not .mp4/.gif (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise InputError(f"{path}: unsupported video extension {path.suffix or '(none)'!r}; use .mp4 or .gif")
    return path


def write_video(path, frames: Iterable[np.ndarray], fps: float = 24.0) -> Path:
    """Write frames ([H, W, 3] uint8 or float in [0, 1]) to .mp4 (H.264, yuv420p) or .gif, atomically.

    The result is checked: an encoder that fails, or writes an empty file, is an InputError and leaves no file."""
    path = check_video_path(path)
    fps = check_fps(fps)
    frames = [to_uint8(np.asarray(f)) for f in frames]
    if not frames:
        raise InputError(f"{path}: no frames to write")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        raise InputError(f"{path}: all frames must have the same size")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        imgs = [Image.fromarray(f) for f in frames]
        atomic_save(
            path,
            lambda tmp: imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0),
        )
    elif suffix == ".mp4":
        import imageio.v2 as imageio

        # yuv420p needs even sizes; pad by one black row/column rather than resample.
        ph, pw = h + h % 2, w + w % 2
        if (ph, pw) != (h, w):
            frames = [np.pad(f, ((0, ph - h), (0, pw - w), (0, 0))) for f in frames]

        def _write(tmp):
            try:
                with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                        macro_block_size=1, quality=7, ffmpeg_log_level="error") as wr:
                    for f in frames:
                        wr.append_data(f)
            except (OSError, RuntimeError, ValueError) as e:  # ffmpeg exited with an error
                raise InputError(f"{path}: the video encoder (ffmpeg) failed ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); "
                                 "try another fps or size, or write a .gif") from None
            if Path(tmp).stat().st_size == 0:
                raise InputError(f"{path}: the video encoder (ffmpeg) wrote nothing; try another fps or size, or write a .gif")

        atomic_save(path, _write)
    return path


def check_video(path, name: str | None = None) -> dict:
    """Read a video's header only -> its metadata (fps, size, estimated frames); InputError when it cannot be read,
    when a frame has more than MAX_VIDEO_PIXELS pixels or the video more than MAX_VIDEO_FRAMES frames."""
    import imageio.v2 as imageio

    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise InputError(f"{name}: video file not found")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        meta = dict(reader.get_meta_data())
        reader.close()
    except Exception as e:  # ffmpeg reports many different failures; all mean "cannot decode"
        raise InputError(f"{name}: cannot decode this video ({type(e).__name__}); use an mp4 (H.264) file") from None
    w, h = (int(v) for v in (meta.get("size") or (0, 0)))
    check_pixels(w, h, f"{name}: a frame", MAX_VIDEO_PIXELS)
    fps = float(meta.get("fps") or 25.0)
    dur = float(meta.get("duration") or 0.0)
    n = int(math.ceil(dur * fps)) if math.isfinite(dur * fps) else MAX_VIDEO_FRAMES + 1
    if n > MAX_VIDEO_FRAMES:
        raise InputError(f"{name} has about {n} frames ({dur:.0f} s at {fps:.0f} fps); the limit is {MAX_VIDEO_FRAMES} "
                         "frames: cut the video shorter")
    meta["frames_estimate"] = n
    return meta


def read_video_frames(path, max_frames: int | None = None, stride: int = 1) -> tuple[list[np.ndarray], float]:
    """Decode a video -> (frames [H, W, 3] float32 in [0, 1], fps). Raises InputError if it cannot be decoded or
    exceeds the limits (frame pixels, MAX_VIDEO_FRAMES frames)."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: video file not found")
    check_video(path, str(path))
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        fps = float(reader.get_meta_data().get("fps", 25.0))
        frames = []
        for i, f in enumerate(reader):
            if i >= MAX_VIDEO_FRAMES:
                raise InputError(f"{path} has more than {MAX_VIDEO_FRAMES} frames: cut the video shorter")
            if i % stride == 0:
                frames.append(f[..., :3].astype(np.float32) / 255.0)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        reader.close()
    except InputError:
        raise
    except Exception as e:  # ffmpeg reports many different failures; all mean "cannot decode"
        raise InputError(f"{path}: cannot decode this video ({type(e).__name__}: {e}); use an mp4 (H.264) file") from None
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return frames, fps
