"""Read and write capture folders (the project's interchange format, see ``avat3r.capture``), and write
SynthHeads capture folders for demos and tests (``avat3r synth``).

    capture/
      images/<view>.png|jpg
      cameras.json        # {"<view>": {"K", "world_to_cam", "width", "height"}}  (OpenCV, metres, head-centric)
      masks/<view>.png    # optional, foreground = white
      expressions.json    # optional, {"<view>": [code...]}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cameras import _atomic_write_text, read_cameras_json, write_cameras_json
from ..capture import Capture
from ..errors import FormatError, InputError
from ..io.images import load_image, load_image_rgba, save_image

_IMG_EXT = (".png", ".jpg", ".jpeg", ".webp")


def _find_image(folder: Path, view: str) -> Path | None:
    for ext in _IMG_EXT:
        p = folder / f"{view}{ext}"
        if p.exists():
            return p
    return None


def read_capture_folder(folder, views=None) -> Capture:
    """Load a capture folder -> Capture (images [V, H, W, 3], masks [V, H, W] or None, expressions or None).

    views: optional subset/order of view names. Raises FormatError naming the file on any inconsistency."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a directory; a capture folder holds images/ and cameras.json")
    names, cams = read_cameras_json(folder / "cameras.json", views)
    img_dir, mask_dir = folder / "images", folder / "masks"
    if not img_dir.is_dir():
        raise FormatError(f"{img_dir}: missing; a capture folder needs images/<view>.png|jpg")
    images, masks = [], []
    for i, name in enumerate(names):
        p = _find_image(img_dir, name)
        if p is None:
            raise FormatError(f"{img_dir}: no image for view {name!r} listed in cameras.json (expected {name}.png or .jpg)")
        img = load_image(p, background=0.0)
        w, h = int(cams.width[i]), int(cams.height[i])
        if img.shape[:2] != (h, w):
            raise FormatError(f"{p}: image is {img.shape[1]}x{img.shape[0]} but cameras.json says {w}x{h} for view "
                              f"{name!r}; K must belong to the image as stored")
        images.append(img)
        mp = _find_image(mask_dir, name) if mask_dir.is_dir() else None
        if mp is not None:
            m, _ = load_image_rgba(mp)
            m = m.mean(-1)
            if m.shape != (h, w):
                raise FormatError(f"{mp}: mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}")
            masks.append(m.astype(np.float32))
    if masks and len(masks) != len(names):
        raise FormatError(f"{mask_dir}: masks exist for {len(masks)} of {len(names)} views; provide all or none")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise FormatError(f"{img_dir}: views have different sizes {sorted(shapes)}; crop/resize them to one size")
    expr = None
    ep = folder / "expressions.json"
    if ep.exists():
        try:
            data = json.loads(ep.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{ep}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise FormatError(f"{ep}: expected {{\"<view>\": [code...]}}")
        missing = [n for n in names if n not in data]
        if missing:
            raise FormatError(f"{ep}: no expression for views {missing}")
        try:
            expr = np.asarray([data[n] for n in names], dtype=np.float32)
        except (TypeError, ValueError):
            raise FormatError(f"{ep}: expression codes must be equal-length lists of numbers") from None
        if expr.ndim != 2 or not np.isfinite(expr).all():
            raise FormatError(f"{ep}: expression codes must be equal-length lists of finite numbers")
    meta = {}
    sp = folder / "synth.json"
    if sp.exists():
        try:
            meta = json.loads(sp.read_text())
        except json.JSONDecodeError:
            meta = {}
    return Capture(np.stack(images), cams, names, np.stack(masks) if masks else None, expr, meta)


def write_capture_folder(folder, capture: Capture, *, image_ext: str = ".png") -> Path:
    """Write a Capture as a capture folder (images, cameras.json, masks and expressions when present)."""
    folder = Path(folder)
    if image_ext not in _IMG_EXT:
        raise InputError(f"image_ext must be one of {_IMG_EXT}, got {image_ext!r}")
    for i, name in enumerate(capture.names):
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise InputError(f"view name {name!r} cannot be used as a file name")
        save_image(folder / "images" / f"{name}{image_ext}", capture.images[i])
        if capture.masks is not None:
            save_image(folder / "masks" / f"{name}.png", capture.masks[i])
    write_cameras_json(folder / "cameras.json", capture.names, capture.cameras)
    if capture.expressions is not None:
        _atomic_write_text(folder / "expressions.json",
                           json.dumps({n: [round(float(x), 6) for x in capture.expressions[i]] for i, n in enumerate(capture.names)}))
    if capture.meta:
        _atomic_write_text(folder / "synth.json", json.dumps(capture.meta, indent=1, default=str))
    return folder


def synth_capture(identity_seed: int, views: int = 4, size: int = 256, *, seed: int = 0, consistent: bool = False,
                  device="cpu", backend: str = "auto") -> Capture:
    """Render one SynthHeads capture: ``views`` k-farthest dome views (never back-only) of identity
    ``identity_seed``, each at its own random expression (or one shared expression with consistent=True)."""
    from .sampler import SamplerConfig, SynthHeadsSampler

    cfg = SamplerConfig(num_inputs=views, num_targets=1, input_size=size, target_size=8, prior="none",
                        identities=(int(identity_seed),), seed=seed, consistent_inputs=consistent, device=str(device),
                        backend=backend, crop_jitter=0.0)
    s = SynthHeadsSampler(cfg).sample(0)
    names = [f"cam{int(i):03d}" for i in s["input_camera_ids"]]
    return Capture(
        images=s["input_images"].permute(0, 2, 3, 1).cpu().numpy().astype(np.float32),
        cameras=s["input_cameras"].to("cpu"),
        names=names,
        masks=s["input_masks"][:, 0].cpu().numpy().astype(np.float32),
        expressions=s["input_expressions"].cpu().numpy().astype(np.float32),
        meta={"source": "synthheads", "identity_seed": int(identity_seed), "sample_seed": int(seed)},
    )


def write_synth_captures(out_dir, subjects: int = 1, seed: int = 0, views: int = 4, size: int = 256,
                         split: str = "test", device="cpu", backend: str = "auto") -> list[Path]:
    """Write ``subjects`` SynthHeads capture folders ``out_dir/subject_XX`` (images, masks, cameras.json,
    expressions.json, synth.json). Identities are taken from ``split`` (default: the 12 hold-out identities),
    starting at offset ``seed``."""
    from .identity import split_seeds

    if subjects < 1 or views < 1 or views > 8 or size < 16:
        raise InputError(f"synth: need subjects >= 1, 1 <= views <= 8, size >= 16 (got {subjects}, {views}, {size})")
    seeds = split_seeds(split)
    out = []
    for k in range(subjects):
        ident = int(seeds[(seed + k) % len(seeds)])
        cap = synth_capture(ident, views, size, seed=seed + k, device=device, backend=backend)
        cap.meta["split"] = split
        out.append(write_capture_folder(Path(out_dir) / f"subject_{k:02d}", cap))
    return out


def synth(out, subjects: int = 1, seed: int = 0, views: int = 4, size: int = 256) -> list[Path]:
    """CLI entry (``avat3r synth --out DIR --subjects N --seed S --views V --size PX``)."""
    return write_synth_captures(out, subjects=subjects, seed=seed, views=views, size=size)
