"""The source protocol ("input -> Capture") and the registry that discovers the sources in this package."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InputError
from ..limits import MAX_VIEWS

if TYPE_CHECKING:  # listing sources stays light (no torch): Capture is imported by the sources that build one
    import numpy as np

    from ..capture import Capture

__all__ = ["Source", "SourceResult", "list_sources", "get_source", "detect_source", "TAKES"]

Progress = Callable[[float, str], None]
#: What a source takes: a list of files (photos, a video, a capture folder/zip), an integer seed, one photo, a prompt.
TAKES = ("files", "seed", "photo", "text")


@dataclass
class SourceResult:
    """capture: the views with cameras (head-centric world, OpenCV); report: what was done, one line each;
    preview: [H, W, 3] uint8 image of what the source did (or None)."""

    capture: Capture
    report: list[str] = field(default_factory=list)
    preview: np.ndarray | None = None


class Source:
    """One route into an avatar. Subclass, set the class attributes, implement ``to_capture``; put an instance
    in a module-level ``SOURCE`` of a module in ``avat3r/sources/`` (see the package docstring)."""

    name: str = ""        # unique, used by the CLI (--source NAME) and the API (reconstruct(x, source=NAME))
    label: str = ""       # one line for the app's input choice
    takes: str = "files"  # one of TAKES
    help: str = ""        # one line for `avat3r reconstruct --help`
    suffixes: tuple[str, ...] = ()  # file suffixes it reads (sources that take files): the app's upload accepts them
    order: int = 100      # position in listings

    def accepts(self, inp: Any) -> bool:
        """Whether ``inp`` is this source's kind of input (for ``detect_source``); only file sources say yes."""
        return False

    def available(self) -> str | None:
        """None when usable here, else why not (e.g. its weights are missing): listed but not offered."""
        return None

    def to_capture(self, inp: Any, *, size: int = 256, max_views: int = MAX_VIEWS, cameras=None, masks=None,
                   progress: Progress | None = None, **options) -> SourceResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<source {self.name!r}: {self.label}>"


_REGISTRY: dict[str, Source] = {}
_LOCK = threading.Lock()


def _discover() -> dict[str, Source]:
    """Import every module of this package once and collect its ``SOURCE`` (or ``SOURCES``)."""
    if _REGISTRY:
        return _REGISTRY
    with _LOCK:
        if _REGISTRY:
            return _REGISTRY
        from .. import sources as pkg

        found: dict[str, Source] = {}
        for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
            if mod in ("base",):
                continue
            module = importlib.import_module(f"{pkg.__name__}.{mod}")
            for src in [getattr(module, "SOURCE", None), *getattr(module, "SOURCES", ())]:
                if src is None:
                    continue
                if not isinstance(src, Source) or not src.name or src.takes not in TAKES:
                    raise TypeError(f"avat3r/sources/{mod}.py: SOURCE must be a Source with a name and takes in {TAKES}")
                if src.name in found:
                    raise TypeError(f"avat3r/sources/{mod}.py: a source named {src.name!r} exists already")
                found[src.name] = src
        _REGISTRY.update(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
    return _REGISTRY


def list_sources(*, available_only: bool = False) -> list[Source]:
    """All sources, in listing order (``available_only``: those usable here)."""
    return [s for s in _discover().values() if not available_only or s.available() is None]


def get_source(name: str) -> Source:
    """The source called ``name``; InputError listing the known ones otherwise."""
    reg = _discover()
    if name not in reg:
        raise InputError(f"unknown input source {name!r}; known: {', '.join(reg)}")
    return reg[name]


def detect_source(inp: Any) -> Source:
    """The file source whose kind of input ``inp`` is (a Capture, a capture folder or zip, a video, photos)."""
    for s in _discover().values():
        if s.accepts(inp):
            return s
    raise InputError(f"cannot tell what {type(inp).__name__} {str(inp)[:80]!r} is: give 1 to {MAX_VIEWS} photos, a video, "
                     "a capture folder (images/ + cameras.json) or its zip")
