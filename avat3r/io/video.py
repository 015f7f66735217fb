"""Video writing (mp4 through imageio-ffmpeg's bundled ffmpeg, GIF through Pillow) and frame reading."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from .images import atomic_save, to_uint8


def write_video(path, frames: Iterable[np.ndarray], fps: float = 24.0) -> Path:
    """Write frames ([H, W, 3] uint8 or float in [0, 1]) to .mp4 (H.264, yuv420p) or .gif, atomically."""
    path = Path(path)
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
            with imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                    macro_block_size=1, quality=7, ffmpeg_log_level="error") as wr:
                for f in frames:
                    wr.append_data(f)

        atomic_save(path, _write)
    else:
        raise InputError(f"{path}: unsupported video extension; use .mp4 or .gif")
    return path


def read_video_frames(path, max_frames: int | None = None, stride: int = 1) -> tuple[list[np.ndarray], float]:
    """Decode a video -> (frames [H, W, 3] float32 in [0, 1], fps). Raises InputError if it cannot be decoded."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: video file not found")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        fps = float(reader.get_meta_data().get("fps", 25.0))
        frames = []
        for i, f in enumerate(reader):
            if i % stride == 0:
                frames.append(f[..., :3].astype(np.float32) / 255.0)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        reader.close()
    except Exception as e:  # ffmpeg reports many different failures; all mean "cannot decode"
        raise InputError(f"{path}: cannot decode this video ({type(e).__name__}: {e}); use an mp4 (H.264) file") from None
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return frames, fps
