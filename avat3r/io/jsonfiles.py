"""Small JSON files users give (cameras.json, expressions.json): bounded in size, parsed strictly, messages naming
the file as the user knows it (``where``), never a server path (issue 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FormatError
from ..limits import MAX_EXPRESSION_ABS, MAX_JSON_BYTES
from .paths import check_view_name

__all__ = ["read_json", "read_expressions_json"]


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path, where: str | None = None, what: str = "a JSON file") -> Any:
    """Parse a JSON file of at most MAX_JSON_BYTES -> its value. NaN/Infinity literals are refused."""
    path = Path(path)
    shown = where or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise FormatError(f"{shown}: {size / 2**20:.1f} MB is larger than the {MAX_JSON_BYTES // 2**20} MB limit for "
                              f"{what}")
        return json.loads(path.read_text(), parse_constant=_no_constants)
    except FileNotFoundError:
        raise FormatError(f"{shown}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
        if isinstance(e, FormatError):
            raise
        raise FormatError(f"{shown}: not valid JSON ({str(e)[:120]}); fix or re-export {what}") from None
    except OSError as e:
        raise FormatError(f"{shown}: cannot be read ({e.strerror or type(e).__name__})") from None


def read_expressions_json(path, names: Sequence[str], *, where: str | None = None) -> np.ndarray:
    """expressions.json ``{"<view>": [code...]}`` -> codes [V, C] float32 in the order of ``names``.

    Checked: an object, view names that are names and known, one code per view, equal lengths, finite numbers
    within ±MAX_EXPRESSION_ABS. Raises FormatError saying what to fix."""
    shown = where or str(Path(path))
    data = read_json(path, shown, "expressions.json")
    if not isinstance(data, dict) or not data:
        raise FormatError(f"{shown}: expected an object {{\"<view>\": [code...]}} with one code per view")
    for k in data:
        check_view_name(k, shown)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise FormatError(f"{shown}: views {unknown[:5]} are not in cameras.json; use the same view names")
    missing = [n for n in names if n not in data]
    if missing:
        raise FormatError(f"{shown}: no expression for views {missing[:5]}; give one code per view or remove the file")
    rows = []
    for n in names:
        v = data[n]
        if (not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in v)):
            raise FormatError(f"{shown}: the code of view {n!r} must be a non-empty list of numbers")
        rows.append(v)
    if len({len(r) for r in rows}) > 1:
        raise FormatError(f"{shown}: codes have different lengths {sorted({len(r) for r in rows})}; give equal-length codes")
    codes = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(codes).all() or not all(math.isfinite(x) for r in rows for x in r):
        raise FormatError(f"{shown}: expression codes must be finite numbers")
    if np.abs(codes).max() > MAX_EXPRESSION_ABS:
        raise FormatError(f"{shown}: expression value {np.abs(codes).max():g} is out of range (limit ±{MAX_EXPRESSION_ABS:g})")
    return codes.astype(np.float32)
