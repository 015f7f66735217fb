"""User-supplied names as names, never paths or patterns (issue 13: no path leaves its upload folder).

View names come from ``cameras.json``, ``expressions.json``, file stems and zip members. They become file names
only through ``check_view_name`` and are looked up only through ``find_view_file`` (exact names, no glob), whose
result is checked to lie inside the folder it was looked up in. Messages name the user's own file, relative to
the folder they gave, never a server path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..limits import MAX_NAME_CHARS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif")  # the one list
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".gif", ".avi", ".mkv", ".m4v")

_BAD = re.compile(r"[\\/*?\[\]{}:<>|\"\x00-\x1f\x7f]")


def check_view_name(name, where: str = "cameras.json") -> str:
    """A view name -> itself, or InputError when it could act as a path or pattern (separators, '..', wildcards,
    a leading dot or '~', control characters, longer than MAX_NAME_CHARS)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: view names must be non-empty strings, got {name!r}")
    if (len(name) > MAX_NAME_CHARS or _BAD.search(name) or name.startswith((".", "~", "-")) or ".." in name
            or name != name.strip()):
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise InputError(f"{where}: view name {shown!r} is not allowed; use letters, digits, '_', '-' and '.' "
                         f"(no '/', '\\', '..', wildcards or a leading dot; at most {MAX_NAME_CHARS} characters)")
    return name


def inside(folder: Path, path: Path) -> bool:
    """True when ``path`` (links resolved) lies inside ``folder`` (links resolved)."""
    try:
        path.resolve(strict=False).relative_to(Path(folder).resolve(strict=False))
        return True
    except ValueError:
        return False


def find_view_file(folder: Path, view: str, suffixes: Iterable[str] = IMAGE_SUFFIXES, *,
                   where: str = "images") -> Path | None:
    """The file ``folder/<view><suffix>`` for the first suffix that exists (exact names, no pattern matching), or
    None. Refuses names that are not plain names, symbolic links and anything resolving outside ``folder``."""
    folder = Path(folder)
    check_view_name(view, where)
    for suf in suffixes:
        for cand in (suf, suf.upper()):
            p = folder / f"{view}{cand}"
            if p.is_symlink():
                raise InputError(f"{where}/{view}{cand} is a symbolic link; give the image file itself")
            if p.is_file():
                if not inside(folder, p):
                    raise InputError(f"{where}/{view}{cand} lies outside its folder; give the image file itself")
                return p
    return None
