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
import os
from pathlib import Path

import numpy as np

from ..cameras import _atomic_write_text, read_cameras_json, write_cameras_json
from ..capture import Capture, camera_mismatch, load_mask
from ..errors import FormatError, InputError
from ..io.images import load_image, save_image
from ..io.paths import IMAGE_SUFFIXES, check_view_name, find_view_file
from ..limits import MAX_JSON_BYTES

WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what write_capture_folder writes (all in IMAGE_SUFFIXES)


def is_capture_folder(path) -> bool:
    """A folder with a cameras.json: read it with ``read_capture_folder``."""
    return isinstance(path, (str, os.PathLike)) and Path(path).is_dir() and (Path(path) / "cameras.json").is_file()


def _read_json(path: Path, shown: str):
    if path.stat().st_size > MAX_JSON_BYTES:
        raise FormatError(f"{shown}: larger than the {MAX_JSON_BYTES // 2**20} MB limit; it should hold one small entry per view")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{shown}: not valid JSON ({e})") from None


def read_capture_folder(folder, views=None, *, where: str | None = None) -> Capture:
    """Load a capture folder -> Capture (images [V, H, W, 3], masks [V, H, W] or None, expressions [V, C] or None).

    The one reader of the format (the pipeline, app, CLI and notebooks all come here). views: optional
    subset/order of view names. where: how messages name the folder (default: its path; the app passes the
    upload's name so that no server path is shown). View names are names, never paths or patterns
    (``io.paths``). Raises FormatError naming the file on any inconsistency."""
    folder = Path(folder)
    shown = where or str(folder)
    if not folder.is_dir():
        raise FormatError(f"{shown}: not a directory; a capture folder holds images/ and cameras.json")
    names, cams = read_cameras_json(folder / "cameras.json", views, where=f"{shown}/cameras.json")
    img_dir, mask_dir = folder / "images", folder / "masks"
    if not img_dir.is_dir():
        raise FormatError(f"{shown}/images: missing; a capture folder needs images/<view>.png|jpg")
    images, masks = [], []
    for name in names:
        check_view_name(name, f"{shown}/cameras.json")
        p = find_view_file(img_dir, name, IMAGE_SUFFIXES, where=f"{shown}/images")
        if p is None:
            raise FormatError(f"{shown}/images: no image for view {name!r} listed in cameras.json (expected {name}.png "
                              "or .jpg); add the image or remove the view from cameras.json")
        images.append(load_image(p, f"{shown}/images/{p.name}", background=0.0))
        bad = camera_mismatch(cams, len(images) - 1, *images[-1].shape[:2], f"{shown}/images/{p.name}", head_in_front=False)
        if bad:
            raise FormatError(f"{shown}/cameras.json: {bad}")
        mp = find_view_file(mask_dir, name, IMAGE_SUFFIXES, where=f"{shown}/masks") if mask_dir.is_dir() else None
        if mp is not None:
            masks.append(load_mask(mp, f"{shown}/masks/{mp.name}", images[-1].shape[:2]))
    if masks and len(masks) != len(names):
        raise FormatError(f"{shown}/masks: masks exist for {len(masks)} of {len(names)} views; provide all or none")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise FormatError(f"{shown}/images: views have different sizes {sorted(shapes)}; crop/resize them to one size")
    expr = None
    ep = folder / "expressions.json"
    if ep.is_file():  # one validation of the format (io/jsonfiles.py): names, lengths, finite, within range
        from ..io.jsonfiles import read_expressions_json

        # validated against every view of cameras.json, then the chosen subset taken
        all_names = names if views is None else read_cameras_json(folder / "cameras.json", where=f"{shown}/cameras.json")[0]
        expr = read_expressions_json(ep, all_names, where=f"{shown}/expressions.json")
        expr = expr[[all_names.index(n) for n in names]]
    meta = {}
    sp = folder / "synth.json"
    if sp.is_file():
        try:
            meta = _read_json(sp, f"{shown}/synth.json")
        except FormatError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
    return Capture(np.stack(images), cams, names, np.stack(masks) if masks else None, expr, meta)


def write_capture_folder(folder, capture: Capture, *, image_ext: str = ".png") -> Path:
    """Write a Capture as a capture folder (images, cameras.json, masks and expressions when present)."""
    folder = Path(folder)
    if image_ext not in WRITE_SUFFIXES:
        raise InputError(f"image_ext must be one of {WRITE_SUFFIXES}, got {image_ext!r}")
    for i, name in enumerate(capture.names):
        check_view_name(name, "Capture.names")
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
