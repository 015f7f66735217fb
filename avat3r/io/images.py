"""Image reading and writing: any common image to float32 RGB in [0, 1], HxWx3.

Handles paths, PIL images and numpy arrays; EXIF orientation; RGBA (alpha returned separately or composited);
grayscale; 8- and 16-bit; palette images. Writes atomically.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

Image.MAX_IMAGE_PIXELS = 200_000_000  # allow 40+ megapixel photos, still refuse decompression bombs


def _describe(src) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return f"<{type(src).__name__}>"


def _open_pil(src: ImageLike, name: str) -> Image.Image:
    try:
        if isinstance(src, (str, os.PathLike)):
            p = Path(src)
            if not p.exists():
                raise InputError(f"{name}: file not found")
            if p.stat().st_size == 0:
                raise InputError(f"{name}: file is empty (0 bytes); re-export or re-download the image")
            img = Image.open(p)
        elif isinstance(src, bytes):
            img = Image.open(io.BytesIO(src))
        else:
            img = src
        img.load()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: cannot read this file as an image ({e}); use a PNG or JPEG file") from None
    return ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF


def _array_to_float(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype in (np.int32, np.int64) and arr.size and arr.max() > 255:  # PIL "I" mode (16-bit PNG)
        return np.clip(arr.astype(np.float32) / 65535.0, 0, 1)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError(f"{name}: image contains NaN or inf values")
        if out.size and (out.min() < -1e-3 or out.max() > 1 + 1e-3):
            raise InputError(f"{name}: float images must be in [0, 1], got range [{out.min():.3g}, {out.max():.3g}]")
        return np.clip(out, 0, 1)
    raise InputError(f"{name}: unsupported pixel type {arr.dtype}")


def load_image_rgba(src: ImageLike, name: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image -> (rgb [H, W, 3] float32 in [0, 1], alpha [H, W] float32 or None)."""
    name = name or _describe(src)
    if isinstance(src, np.ndarray):
        arr = src
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise InputError(f"{name}: array images must be HxW, HxWx1, HxWx3 or HxWx4, got shape {src.shape}")
        f = _array_to_float(arr, name)
    else:
        img = _open_pil(src, name)
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            f = _array_to_float(np.array(img), name)[..., None]
        else:
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode in ("LA", "PA", "RGBa", "La"):
                img = img.convert("RGBA")
            elif mode not in ("RGB", "RGBA", "L"):
                img = img.convert("RGB")
            arr = np.array(img)
            f = _array_to_float(arr if arr.ndim == 3 else arr[..., None], name)
    if f.shape[0] == 0 or f.shape[1] == 0:
        raise InputError(f"{name}: image has zero size {f.shape[1]}x{f.shape[0]}")
    alpha = None
    if f.shape[-1] == 4:
        f, alpha = f[..., :3], f[..., 3]
    elif f.shape[-1] == 1:
        f = np.repeat(f, 3, axis=-1)
    return np.ascontiguousarray(f, dtype=np.float32), alpha


def load_image(src: ImageLike, name: str | None = None, background: float | None = None) -> np.ndarray:
    """Read an image -> rgb [H, W, 3] float32 in [0, 1]. With ``background`` set, alpha is composited over it."""
    rgb, alpha = load_image_rgba(src, name)
    if alpha is not None and background is not None:
        rgb = rgb * alpha[..., None] + background * (1 - alpha[..., None])
    return rgb


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [.., 3] in [0, 1] (or uint8) -> uint8."""
    if img.dtype == np.uint8:
        return img
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def atomic_save(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move it into place, so a failure never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_image(path, img: np.ndarray) -> None:
    """Write [H, W, 3|4] float in [0, 1] or uint8 (or [H, W] grayscale) to png/jpg, atomically."""
    arr = to_uint8(np.asarray(img))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    pil = Image.fromarray(arr)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported image extension; use .png, .jpg or .webp")
    atomic_save(Path(path), lambda tmp: pil.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {})))
