"""Inputs of the front end: photos (any orientation, size, mode) and video frames.

Pixels go through ``avat3r.io.images`` (EXIF orientation, RGBA, 16-bit, grayscale, palette). This module adds what
the front end needs besides pixels: the 35 mm-equivalent focal length from EXIF, whether the photo is grayscale,
and frame sampling for videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.images import load_image_rgba
from ..io.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES  # noqa: F401  (the one list; re-exported for old imports)

MIN_SIDE = 64  # below this no face detector or crop is meaningful
#: Photos are reduced to at most this long side on loading (a 40 MP photo to ~16 MP): a head crop of the model's
#: size never needs more, and everything after loading gets faster. JPEGs are decoded at reduced scale directly.
MAX_SIDE = 4096

__all__ = ["Photo", "load_photo", "read_video_candidates", "is_video", "focal35_from_exif", "view_names"]


@dataclass
class Photo:
    """One input view. image [H, W, 3] float32 in [0, 1], upright; alpha [H, W] or None (from RGBA files);
    focal_35mm from EXIF or None; grayscale: the photo has no colour; name: for messages and view names."""

    image: np.ndarray
    name: str
    focal_35mm: float | None = None
    grayscale: bool = False
    alpha: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def focal35_from_exif(src) -> float | None:
    """35 mm-equivalent focal length (mm) from a photo's EXIF, or None. Reads FocalLengthIn35mmFilm (0xA405);
    otherwise FocalLength (0x920A) with the focal-plane resolution (0xA20E/0xA210) and the image width."""
    from PIL import Image

    try:
        img = src if isinstance(src, Image.Image) else Image.open(src)
        exif = img.getexif()
        ifd = exif.get_ifd(0x8769) if exif else {}
    except Exception:  # EXIF is optional: a malformed block must not reject a good photo
        return None
    f35 = ifd.get(0xA405) or (exif.get(0xA405) if exif else None)
    try:
        if f35 and float(f35) > 0:
            return float(f35)
        f = ifd.get(0x920A)
        xres, unit = ifd.get(0xA20E), ifd.get(0xA210, 2)
        w = ifd.get(0xA002) or img.size[0]
        if f and xres and float(xres) > 0:
            mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0}.get(int(unit), 25.4)
            sensor_w = float(w) / float(xres) * mm_per_unit
            if sensor_w > 1:
                return float(f) * 36.0 / sensor_w
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None


def _is_gray(img: np.ndarray) -> bool:
    sub = img[:: max(1, img.shape[0] // 128), :: max(1, img.shape[1] // 128)]
    return float(np.abs(sub - sub.mean(-1, keepdims=True)).max()) < 2.0 / 255


def view_names(srcs) -> list[str]:
    """One unique name per input view: the file's stem (``a``, ``a_2`` for a second ``a.png``), else ``view03``."""
    names, used = [], set()
    for i, src in enumerate(srcs):
        base = Path(src).stem if isinstance(src, (str, os.PathLike)) else f"view{i:02d}"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        names.append(name)
    return names


def is_video(src) -> bool:
    return isinstance(src, (str, os.PathLike)) and Path(src).suffix.lower() in VIDEO_SUFFIXES


def load_photo(src, name: str) -> Photo:
    """Read one photo (path, PIL image, bytes or array). Raises InputError naming ``name`` when unusable."""
    from PIL import Image

    if isinstance(src, (str, os.PathLike)) and Path(src).is_dir():
        raise InputError(f"{name}: {src} is a folder; give image files, or a capture folder as the only input")
    f35 = focal35_from_exif(src) if isinstance(src, (str, os.PathLike, Image.Image)) else None
    meta = {}
    src_in = src
    if isinstance(src, (str, os.PathLike)) and Path(src).is_file():
        from ..io.images import check_image_file

        check_image_file(src, name)  # pixels from the header, before anything is decoded (issue 13)
        try:
            pil = Image.open(src)
            if max(pil.size) > MAX_SIDE:
                from PIL import ImageOps

                turned = pil.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap width and height
                meta["original_size"] = pil.size[::-1] if turned else pil.size
                if pil.format == "JPEG":  # DCT-domain downscaling (1/2, 1/4, 1/8): decoding gets several times faster
                    big = max(pil.size)
                    pil.draft("RGB", (pil.size[0] * (MAX_SIDE // 2) // big, pil.size[1] * (MAX_SIDE // 2) // big))
                pil = ImageOps.exif_transpose(pil)  # turn upright now: reduce() below drops the EXIF orientation
                f = -(-max(pil.size) // MAX_SIDE)
                if f > 1:
                    pil = pil.reduce(f)  # box filter in 8 bit, before the float conversion
                src_in = pil
        except Exception:  # unreadable: load_image_rgba below raises the proper message
            src_in = src
            meta.pop("original_size", None)
    rgb, alpha = load_image_rgba(src_in, name)
    h, w = rgb.shape[:2]
    if max(h, w) > MAX_SIDE:
        import cv2

        meta.setdefault("original_size", (w, h))
        s = MAX_SIDE / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        if alpha is not None:
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{name} is too small ({w}x{h} pixels): use a photo of at least 256 pixels on the short "
                         "side where the face is at least 80 pixels wide")
    if "original_size" in meta:
        meta["scale"] = w / meta["original_size"][0]
    return Photo(rgb, name, f35, _is_gray(rgb), alpha, meta)


def read_video_candidates(path, n_candidates: int = 32, name: str | None = None) -> tuple[list[np.ndarray], list[int], float]:
    """Decode about ``n_candidates`` evenly spaced frames of a video -> (frames [H, W, 3] uint8, indices, fps).

    Frames are decoded in one pass and only the sampled ones are kept, so long videos stay within memory."""
    import imageio.v2 as imageio

    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise InputError(f"{name}: video file not found")
    from ..io.video import check_video

    check_video(path, name)  # frame pixels and frame count from the header (limits.py), before decoding
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        meta = reader.get_meta_data()
        fps = float(meta.get("fps") or 25.0)
        n = reader.count_frames() if hasattr(reader, "count_frames") else None
        if not n or n <= 0:
            dur = float(meta.get("duration") or 0)
            n = max(1, int(dur * fps))
        step = max(1, n // n_candidates)
        frames, idx = [], []
        for i, f in enumerate(reader):
            if i % step == 0:
                frames.append(np.ascontiguousarray(f[..., :3]))
                idx.append(i)
        reader.close()
    except Exception as e:  # ffmpeg reports many different failures; all mean "cannot decode"
        raise InputError(f"{name}: cannot decode this video ({type(e).__name__}: {str(e)[:200]}); "
                         "use an mp4 (H.264) file, or give a few photos instead") from None
    if not frames:
        raise InputError(f"{name}: the video has no frames; use another video or a few photos")
    return frames, idx, fps
