"""A posed capture: a capture folder (images/ + cameras.json [+ masks/, expressions.json]), a zip of one, or a
``Capture`` object. Read by ``read_capture_folder`` (the one reader); nothing is cropped here.

A zip without cameras.json but with photos is handed to the photos source (a zip of photos)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InputError
from ..io.paths import IMAGE_SUFFIXES
from ..limits import MAX_VIEWS
from .base import Source, SourceResult
from .files import as_items, is_capture_folder, is_zip


def unpack_zip(zip_path, out) -> Path:
    """Extract a zip into ``out`` within the limits (``io.zips.extract_zip``: members, bytes, ratio, names, links)
    -> the capture folder inside (the shallowest folder holding cameras.json), else ``out`` (a zip of photos)."""
    from ..io.zips import extract_zip

    out = Path(out)
    extract_zip(zip_path, out, name=Path(zip_path).name)
    found = sorted(out.rglob("cameras.json"), key=lambda p: len(p.parts))
    return found[0].parent if found else out


class CaptureSource(Source):
    name = "capture"
    label = "Capture folder or .zip (images/ + cameras.json, optional masks/ and expressions.json)"
    takes = "files"
    help = "a posed capture: a capture folder, its .zip, or a Capture object (used as is, only fitted to the model)"
    suffixes = (".zip", ".json")
    order = 30

    def accepts(self, inp) -> bool:
        from ..capture import Capture

        if isinstance(inp, Capture):
            return True
        items = as_items(inp)
        return len(items) == 1 and (is_capture_folder(items[0]) or is_zip(items[0]))

    def to_capture(self, inp, *, size=256, max_views=MAX_VIEWS, cameras=None, masks=None, progress=None,
                   where: str | None = None, **options) -> SourceResult:
        from ..capture import Capture
        from ..data.capture_folder import read_capture_folder

        if cameras is not None:
            raise InputError("cameras were given together with a capture, which has its own cameras; give one of them")
        if isinstance(inp, Capture):
            cap, what = inp, "capture"
        else:
            items = as_items(inp)
            if len(items) != 1:
                raise InputError("give one capture folder or one zip of it")
            if is_zip(items[0]):
                with tempfile.TemporaryDirectory(prefix="avat3r_zip_") as tmp:
                    folder = unpack_zip(items[0], Path(tmp) / "zip")
                    if not (folder / "cameras.json").is_file():  # a zip of photos
                        from .photos import SOURCE as photos

                        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                        if not files:
                            raise InputError(f"{Path(items[0]).name} has neither cameras.json nor photos. Zip a capture "
                                             "folder (images/ + cameras.json)")
                        return photos.to_capture(files, size=size, max_views=max_views, masks=masks, progress=progress,
                                                 **options)
                    rel = folder.relative_to(Path(tmp) / "zip").as_posix()
                    shown = where or (Path(items[0]).name + ("" if rel == "." else f":{rel}"))
                    cap = read_capture_folder(folder, where=shown)
                what = f"capture zip {Path(items[0]).name}"
            else:
                cap = read_capture_folder(items[0], where=where or Path(items[0]).name)
                what = f"capture folder {where or Path(items[0]).name}"
        if masks is not None:
            from ..capture import load_mask

            ms = as_items(masks)
            if len(ms) != len(cap):
                raise InputError(f"got {len(ms)} masks for {len(cap)} views; give one mask per view")
            import numpy as np

            cap = Capture(cap.images, cap.cameras, list(cap.names),
                          np.stack([load_mask(m, f"mask {i + 1}", cap.size) for i, m in enumerate(ms)]),
                          cap.expressions, dict(cap.meta))
        h, w = cap.size
        given = "cameras and masks given" if cap.masks is not None else "cameras given, no masks"
        extra = ", expressions given" if cap.expressions is not None else ""
        return SourceResult(cap, [f"{what}: {len(cap)} views of {w}x{h} px, {given}{extra}"])


SOURCE = CaptureSource()
