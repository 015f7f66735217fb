"""What a file input is (one classification for the sources, the app and the CLI): suffixes from ``io.paths``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["as_items", "is_path", "is_video", "is_zip", "is_capture_folder", "is_image_file", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]


def is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def is_video(x) -> bool:
    return is_path(x) and Path(x).suffix.lower() in VIDEO_SUFFIXES


def is_zip(x) -> bool:
    return is_path(x) and Path(x).suffix.lower() == ".zip"


def is_image_file(x) -> bool:
    return is_path(x) and Path(x).suffix.lower() in IMAGE_SUFFIXES


def is_capture_folder(x) -> bool:
    return is_path(x) and Path(x).is_dir() and (Path(x) / "cameras.json").is_file()


def as_items(inp) -> list:
    """One input or a list of inputs -> a list (a [V, H, W, 3] array -> V arrays; a PIL image or HxWx3 array -> 1)."""
    if inp is None:
        return []
    if is_path(inp) or isinstance(inp, bytes):
        return [inp]
    if isinstance(inp, np.ndarray):
        return list(inp) if inp.ndim == 4 else [inp]
    if hasattr(inp, "size") and hasattr(inp, "mode"):  # a PIL image
        return [inp]
    try:
        return list(inp)
    except TypeError:  # one object of another kind (a Capture, an int seed): the source decides
        return [inp]
