"""Image reading and writing: any common image to float32 RGB in [0, 1], HxWx3.

Handles paths, PIL images and numpy arrays; EXIF orientation; RGBA (alpha returned separately or composited);
grayscale; 8- and 16-bit; palette images. Writes atomically.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from ..limits import MAX_IMAGE_PIXELS

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, bytes]

# Pillow's own bomb guard stays on as a backstop (its error is caught below); ours (MAX_IMAGE_PIXELS, from the
# header, before any decoding) is lower, so a user sees our message with the limit.
Image.MAX_IMAGE_PIXELS = 4 * MAX_IMAGE_PIXELS


def check_pixels(width: int, height: int, name: str, limit: int = MAX_IMAGE_PIXELS) -> None:
    """InputError when an image of width x height exceeds ``limit`` pixels (checked before decoding)."""
    if width * height > limit:
        raise InputError(f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
                         f"{limit / 1e6:.0f} megapixels: downscale it")


def check_image_file(src, name: str, limit: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Read only the header of an image file (path or bytes) -> (width, height); InputError when it is not an
    image or has more than ``limit`` pixels. Nothing is decoded, so a decompression bomb costs nothing."""
    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise InputError(f"{name} declares far more pixels than the {limit / 1e6:.0f} megapixel limit (a "
                         "decompression bomb?): use an ordinary photo") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: cannot read this file as an image ({_short(e)}); use a PNG or JPEG file") from None
    check_pixels(w, h, name, limit)
    return w, h


def _short(e: Exception) -> str:
    """An exception's message without server paths (PIL names the file it could not read)."""
    msg = str(e)
    return re.sub(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*", "<file>", msg)[:200]


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
            check_image_file(p, name)
            img = Image.open(p)
        elif isinstance(src, bytes):
            check_image_file(src, name)
            img = Image.open(io.BytesIO(src))
        else:
            img = src
            check_pixels(*img.size, name)
        img.load()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{name} has far more pixels than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixel limit (a "
                         "decompression bomb?): use an ordinary photo") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as e:
        raise InputError(f"{name}: cannot read this file as an image ({_short(e)}); use a PNG or JPEG file") from None
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_path(path, what: str = "output") -> Path:
    """Check that ``path`` can be written (its folder exists or can be made, it is not a folder) -> Path.
    Messages name the path the user gave, never a temporary file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot create its folder ({e.strerror or e}); choose another place for the {what}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"{path}: its folder is not writable; choose another place for the {what}")
    return path


def atomic_save(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move it into place, so a failure never leaves a half-written file. The file
    gets the usual mode (0666 less the umask, e.g. 0644), not mkstemp's private 0600. An OSError names ``path``
    (what the user asked for), never the hidden temporary file."""
    path = output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as e:
        raise InputError(f"{path}: cannot be written ({e.strerror or e}); choose another place") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"{path}: cannot be written ({e.strerror or type(e).__name__}); check the disk space and the "
                         "folder's permissions") from None
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
