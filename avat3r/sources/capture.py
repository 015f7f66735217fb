"""A posed capture: a capture folder (images/ + cameras.json [+ masks/, expressions.json]), a zip of one, or a
``Capture`` object. Read by ``read_capture_folder`` (the one reader); nothing is cropped here.

A zip without cameras.json but with photos is handed to the photos source (a zip of photos)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..io.paths import IMAGE_SUFFIXES
from ..limits import MAX_VIEWS, MAX_ZIP_BYTES, MAX_ZIP_FILES, MAX_ZIP_RATIO
from .base import Source, SourceResult
from .files import as_items, is_capture_folder, is_zip


def unpack_zip(zip_path, out) -> Path:
    """Extract a zip into ``out`` within the limits (members, bytes, ratio; no path outside ``out``, no links)
    -> the capture folder inside (the shallowest folder holding cameras.json), else ``out`` (a zip of photos)."""
    zip_path, out = Path(zip_path), Path(out)
    shown = zip_path.name
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{shown} is not a valid zip file. Zip a capture folder (images/ + cameras.json) or give the "
                         "photos themselves") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_FILES:
            raise InputError(f"{shown} holds {len(infos)} files; a capture-folder zip may hold at most {MAX_ZIP_FILES}")
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_BYTES:
            raise InputError(f"{shown} unpacks to {total / 2**20:.0f} MB; the limit is {MAX_ZIP_BYTES // 2**20} MB. Use at "
                             f"most {MAX_VIEWS} images of a few megapixels")
        root = out.resolve()
        written = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("."):
                continue
            if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_RATIO:
                raise InputError(f"{shown}: {name} would unpack {info.file_size / info.compress_size:.0f} times its size "
                                 f"(the limit is {MAX_ZIP_RATIO}x); re-create the zip from the capture folder")
            target = (out / name).resolve()
            if name.startswith("/") or ".." in parts or root not in target.parents:
                raise InputError(f"{shown} contains an unsafe path {info.filename!r}; re-create the zip from the capture folder")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InputError(f"{shown}: {name} is a symbolic link; zip the files themselves")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > MAX_ZIP_BYTES:
                            raise InputError(f"{shown} unpacks to more than {MAX_ZIP_BYTES // 2**20} MB (the limit)")
                        dst.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:  # corrupt, encrypted, name clashes
                raise InputError(f"{shown}: cannot unpack {name} ({type(e).__name__}); re-create the zip") from None
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
                    folder = unpack_zip(items[0], tmp)
                    if not (folder / "cameras.json").is_file():  # a zip of photos
                        from .photos import SOURCE as photos

                        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                        if not files:
                            raise InputError(f"{Path(items[0]).name} has neither cameras.json nor photos. Zip a capture "
                                             "folder (images/ + cameras.json)")
                        return photos.to_capture(files, size=size, max_views=max_views, masks=masks, progress=progress,
                                                 **options)
                    rel = folder.relative_to(tmp).as_posix()
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
