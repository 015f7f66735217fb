"""The browser viewer's scene files (demo/viewer/viewer.js reads them; layout in docs/VIEWER.md).

A folder with ``scene.json`` (counts, code names and ranges, presets, clips, camera), ``base.bin`` (float32
[N, 14]: centre xyz, scale xyz, quaternion wxyz, opacity, rgb of the neutral avatar, metres, y-up head-centric
frame) and ``deltas.bin`` (float16 [C, N, 3], the linear expression basis). A clip is a list of codes per frame
(and optionally a head pose per frame: yaw, pitch, roll in degrees, tx, ty, tz in metres), played through the
basis, so even a long driven clip costs C numbers per frame. Files are written atomically; the folder is
complete once scene.json exists (it is written last).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..head_template import DEFAULT_CAMERA_DISTANCE, DEFAULT_FOV_DEG, HEAD_BOX_CENTER
from ..io.images import atomic_save
from ..limits import MAX_SEQUENCE_FRAMES
from .basis import ExpressionBasis

__all__ = ["FORMAT", "preset_clip", "read_viewer_scene", "write_viewer_scene"]

FORMAT = "avat3r-live"
VERSION = 1


def preset_clip(space, keys=None, frames_per_step: int = 12, fps: float = 12.0) -> dict:
    """A looping clip through preset expressions (default: every preset) -> {"fps", "codes"}."""
    from ..pipeline import expression_sequence

    keys = list(keys or space.presets)
    codes = expression_sequence(space, keys, frames_per_step)
    return {"fps": float(fps), "codes": np.round(codes, 4).tolist()}


def _check_clip(name: str, clip: dict, dims: int) -> dict:
    codes = np.asarray(clip.get("codes"), np.float32)
    if codes.ndim != 2 or codes.shape[1] != dims or not 1 <= len(codes) <= MAX_SEQUENCE_FRAMES:
        raise InputError(f"clip {name!r}: codes must be [T, {dims}] with 1 <= T <= {MAX_SEQUENCE_FRAMES}, "
                         f"got {list(codes.shape)}")
    out = {"fps": float(clip.get("fps", 12.0)), "codes": np.round(codes, 4).tolist(), "poses": None}
    if clip.get("poses") is not None:
        poses = np.asarray(clip["poses"], np.float32)
        if poses.ndim != 2 or poses.shape[0] != len(codes) or poses.shape[1] not in (3, 6):
            raise InputError(f"clip {name!r}: poses must be [T, 3] or [T, 6] with T = {len(codes)}, got {list(poses.shape)}")
        out["poses"] = np.round(poses, 4).tolist()
    if not np.isfinite(codes).all() or not (0 < out["fps"] <= 120):
        raise InputError(f"clip {name!r}: codes must be finite and fps in (0, 120]")
    return out


def write_viewer_scene(folder, basis: ExpressionBasis, *, clips: dict | None = None, presets: dict | None = None,
                       metrics: dict | None = None) -> Path:
    """Write the scene folder for ``basis`` -> path of scene.json. clips: {name: {"fps", "codes" [T, C],
    "poses" [T, 3|6] or None}}; presets: {name: code} (default none); metrics: the basis' measured error."""
    folder = Path(folder)
    g = basis.base
    n, c = len(g), basis.deltas.shape[0]
    checked = {k: _check_clip(k, v, c) for k, v in (clips or {}).items()}  # before any file is written
    folder.mkdir(parents=True, exist_ok=True)
    attrs = np.concatenate([
        g.means.detach().cpu().numpy(), g.scales.detach().cpu().numpy(), g.quats.detach().cpu().numpy(),
        g.opacities.detach().cpu().numpy()[:, None], np.clip(g.colors.detach().cpu().numpy(), 0, 1),
    ], 1).astype("<f4")
    deltas = basis.deltas.astype("<f2")
    if not np.isfinite(deltas).all():
        raise InputError("the expression basis does not fit in float16 (a delta is huge or NaN)")
    atomic_save(folder / "base.bin", lambda tmp: Path(tmp).write_bytes(attrs.tobytes()))
    atomic_save(folder / "deltas.bin", lambda tmp: Path(tmp).write_bytes(deltas.tobytes()))
    scene = {
        "format": FORMAT, "version": VERSION, "count": n, "dims": c, "names": list(basis.names),
        "ranges": np.asarray(basis.ranges, float).round(4).tolist(),
        "presets": {k: np.round(np.asarray(v, float), 4).tolist() for k, v in (presets or {}).items()},
        "clips": checked,
        "center": np.asarray(HEAD_BOX_CENTER, float).tolist(),
        "camera": {"distance": DEFAULT_CAMERA_DISTANCE * 0.8, "fov": DEFAULT_FOV_DEG * 1.5},
        "files": {"base": "base.bin", "deltas": "deltas.bin"},
        "layout": {"base": "float32 [count, 14]: x y z, scale xyz (metres), quat w x y z, opacity, r g b",
                   "deltas": "float16 [dims, count, 3]: centre motion per unit code"},
        "metrics": metrics or {},
    }
    path = folder / "scene.json"
    atomic_save(path, lambda tmp: Path(tmp).write_text(json.dumps(scene)))
    return path


def read_viewer_scene(folder) -> tuple[dict, np.ndarray, np.ndarray]:
    """scene folder -> (scene dict, base [N, 14] float32, deltas [C, N, 3] float32); FormatError when broken."""
    from ..errors import FormatError

    folder = Path(folder)
    try:
        scene = json.loads((folder / "scene.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FormatError(f"{folder}: no readable scene.json ({e})") from None
    if scene.get("format") != FORMAT:
        raise FormatError(f"{folder}/scene.json is not an {FORMAT} scene")
    n, c = int(scene["count"]), int(scene["dims"])
    base = np.fromfile(folder / scene["files"]["base"], "<f4")
    deltas = np.fromfile(folder / scene["files"]["deltas"], "<f2")
    if base.size != n * 14 or deltas.size != c * n * 3:
        raise FormatError(f"{folder}: base.bin/deltas.bin sizes do not match scene.json (count {n}, dims {c})")
    return scene, base.reshape(n, 14), deltas.reshape(c, n, 3).astype(np.float32)
