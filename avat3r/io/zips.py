"""Safe extraction of an uploaded zip (a capture folder or a bundle of photos), bounded at every step (issue 13).

Checked before anything is written: the number of members (MAX_ZIP_FILES), their declared total size
(MAX_ZIP_BYTES), each member's compression ratio (MAX_ZIP_RATIO), encryption, member names (no absolute paths,
'..', drive letters, backslashes, control characters, links) and clashes (a file and a folder of one name, two
members of one name). While extracting, the bytes actually read are counted, so a zip whose headers lie about
sizes is stopped at the limit. Image members have their pixel count checked from the header (MAX_IMAGE_PIXELS).
Messages name the zip and the member as the user made them, never a server path.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..limits import MAX_ZIP_BYTES, MAX_ZIP_FILES, MAX_ZIP_RATIO, MAX_ZIP_RATIO_MIN_BYTES
from .paths import IMAGE_SUFFIXES, inside

__all__ = ["extract_zip"]

_SKIP = ("__MACOSX/",)  # Finder's resource forks: ignored, never extracted
_BAD_PART = re.compile(r"[\x00-\x1f\x7f:*?\"<>|]")
_CHUNK = 1 << 16


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def _member_parts(name: str, zip_name: str) -> tuple[str, ...] | None:
    """A member name -> its path parts, None for members to skip, InputError when it could leave the folder."""
    if name.startswith(_SKIP):
        return None
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise InputError(f"{zip_name} contains an unsafe path {name[:80]!r} (absolute, or with a drive letter or "
                         "backslashes); re-create the zip from the capture folder")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if not parts:
        return None
    if any(p == ".." for p in parts) or any(_BAD_PART.search(p) for p in parts):
        raise InputError(f"{zip_name} contains an unsafe path {name[:80]!r} ('..' or special characters); re-create "
                         "the zip from the capture folder")
    if parts[-1].startswith("."):  # .DS_Store and other hidden files: ignored
        return None
    return parts


def extract_zip(zip_path, out, *, name: str | None = None) -> Path:
    """Extract ``zip_path`` into the (new or empty) folder ``out`` within the limits -> ``out``.

    Raises InputError naming the zip (``name``, default its file name) and the limit on any violation; on error
    nothing extracted is left in ``out``."""
    from .images import check_image_file

    zip_path, out = Path(zip_path), Path(out)
    name = name or zip_path.name
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise InputError(f"{name} is not a valid zip file. Zip a capture folder (images/ + cameras.json) or upload "
                         "the photos themselves.") from None
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_FILES:
                raise InputError(f"{name} holds {len(infos)} entries; a zip may hold at most {MAX_ZIP_FILES} files")
            members, dirs, seen = [], set(), {}
            for info in infos:
                parts = _member_parts(info.filename, name)
                if parts is None:
                    continue
                if info.flag_bits & 0x1:
                    raise InputError(f"{name}: {info.filename[:80]!r} is encrypted; upload a zip without a password")
                mode = (info.external_attr >> 16) & 0xFFFF
                if stat.S_ISLNK(mode):
                    raise InputError(f"{name}: {info.filename[:80]!r} is a symbolic link; zip the files themselves")
                key = "/".join(parts).lower()  # clashes on case-insensitive file systems count too
                if key in seen:
                    raise InputError(f"{name}: {info.filename[:80]!r} appears twice (names differ at most in case); "
                                     "keep one file of each name")
                seen[key] = info.is_dir()
                for i in range(1, len(parts)):
                    dirs.add("/".join(parts[:i]).lower())
                if not info.is_dir():
                    members.append((info, parts))
            clash = sorted(k for k, is_dir in seen.items() if not is_dir and k in dirs)
            if clash:
                raise InputError(f"{name}: {clash[0]!r} is both a file and a folder; re-create the zip from the "
                                 "capture folder")
            declared = sum(i.file_size for i, _ in members)
            if declared > MAX_ZIP_BYTES:
                raise InputError(f"{name} unpacks to {_mb(declared)}; the limit is {_mb(MAX_ZIP_BYTES)}. Use at most 8 "
                                 "images of a few megapixels")
            for info, _ in members:
                if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1) and info.file_size > MAX_ZIP_RATIO_MIN_BYTES:
                    raise InputError(f"{name}: {info.filename[:80]!r} is compressed {info.file_size // max(info.compress_size, 1)}"
                                     f"-fold (the limit is {MAX_ZIP_RATIO}x): a decompression bomb? Upload ordinary images")
            out.mkdir(parents=True, exist_ok=True)
            total = 0
            for info, parts in members:
                target = out.joinpath(*parts)
                if not inside(out, target):
                    raise InputError(f"{name} contains an unsafe path {info.filename[:80]!r}; re-create the zip")
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as src, open(target, "wb") as dst:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        written += len(chunk)
                        total += len(chunk)
                        if written > info.file_size or total > MAX_ZIP_BYTES:  # headers that lie about sizes
                            raise InputError(f"{name}: {info.filename[:80]!r} unpacks to more than its header says "
                                             f"(or the zip to more than {_mb(MAX_ZIP_BYTES)}): a forged or damaged zip")
                        dst.write(chunk)
                if target.suffix.lower() in IMAGE_SUFFIXES:
                    check_image_file(target, f"{name}: {'/'.join(parts)}")
    except InputError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as e:
        shutil.rmtree(out, ignore_errors=True)
        why = "an unsupported compression method" if isinstance(e, NotImplementedError) else "damaged data"
        raise InputError(f"{name} cannot be unpacked ({why}); re-create the zip with ordinary (deflate) "
                         "compression") from None
    return out
