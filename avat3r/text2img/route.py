"""Text -> portrait -> 3D head -> animation (the paper's Fig. 7b route), shared by the CLI, the app and the notebook.

``text_portrait``: a prompt -> a portrait with our small model (64x64, SynthHeads-like, the camera it was trained
with is known) or a local turbo snapshot (then cropped around the face). ``portrait_capture``: the portrait as a
one-view Capture for Avat3r: ours with its known camera, a real photo through the photo front end. When the
single-image lifting route (``avat3r.sources`` "lift": GAN inversion -> 4 views) is installed and usable, it lifts
the portrait instead. ``generate_from_prompt``: everything ``avat3r generate --prompt`` writes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError

Progress = Callable[[float, str], None]
_MODELS: dict = {}


@dataclass
class Portrait:
    """image [H, W, 3] float32 in [0, 1]; kind: 'ours' or 'real'; view: the view class of our portraits;
    unknown: prompt words the model did not understand; report: what was done, one line each."""

    image: np.ndarray
    kind: str
    prompt: str
    view: str = "frontal"
    unknown: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


def _tick(progress, f, msg):
    if progress is not None:
        progress(f, msg)


def load_model(model=None, device=None):
    """(kind, pipeline) for a model folder (default: ``hub.default_model_dir()``), cached per folder and device."""
    from .hub import default_model_dir, load_portrait_pipeline, model_kind

    path = Path(model) if model is not None else default_model_dir()
    kind = model_kind(path)
    key = (str(path.resolve()), str(device))
    if key not in _MODELS:
        if kind == "ours":
            _MODELS[key] = (kind, load_portrait_pipeline(path, device))
        else:
            from .real import load_text2img

            _MODELS[key] = (kind, load_text2img(path, device))
        while len(_MODELS) > 2:
            _MODELS.pop(next(iter(_MODELS)))
    return _MODELS[key]


def check_prompt(prompt) -> str:
    """Bounds every model shares (limits.MAX_PROMPT_*), and not empty."""
    from .vocab import Vocabulary

    Vocabulary([]).check(prompt)
    if not prompt.strip():
        raise InputError("the prompt is empty; describe the head, e.g. 'long blond hair, glasses, smiling'")
    return prompt


def text_portrait(prompt: str, *, seed: int = 0, steps: int | None = None, guidance: float | None = None, model=None,
                  device=None, progress: Progress | None = None) -> Portrait:
    """A prompt -> Portrait. steps/guidance default to the model's (ours: 20 steps, guidance 3; turbo: 2, 0)."""
    from .pipeline import check_sampling
    from .vocab import parse_prompt

    check_prompt(prompt)
    kind, pipe = load_model(model, device)
    if kind == "ours":
        steps, guidance, seed = check_sampling(20 if steps is None else steps, 3.0 if guidance is None else guidance, seed)
        out = pipe(prompt, seed=seed, steps=steps, guidance=guidance,
                   progress=None if progress is None else (lambda f, m: progress(f, m)))
        view = parse_prompt(prompt).get("view", "frontal")
        report = [f"portrait: our SynthHeads text-to-portrait model, {steps} DPM-Solver steps, guidance {guidance:g}, "
                  f"seed {seed}; understood: {', '.join(out.understood[0])}"]
        if out.unknown[0]:
            report.append(f"not understood (ignored): {', '.join(out.unknown[0])}")
        return Portrait(out.images[0], kind, prompt, view, out.unknown[0], report)
    from .real import face_crop, turbo_portrait

    steps, guidance, seed = check_sampling(2 if steps is None else steps, 0.0 if guidance is None else guidance, seed)
    _tick(progress, 0.1, f"turbo model: {steps} steps")
    img = turbo_portrait(pipe, prompt, seed=seed, steps=steps, guidance=guidance)
    crop, line = face_crop(img)
    return Portrait(crop, kind, prompt, "frontal", [], [f"portrait: local turbo snapshot, {steps} steps, seed {seed}", line])


#: Lift generated portraits through the single-image route (avat3r.lift) when it is installed. Off: since session 9's
#: weights one view is as good as the lift on SynthHeads and better on real photos, at a thirtieth of the time
#: (docs/LIFT.md, "Which mode").
LIFT_PORTRAITS = False


def _lift_source():
    """The single-image lifting source (avat3r.lift, docs/LIFT.md) when LIFT_PORTRAITS and it is usable here (GGHead
    weights), else None. Its "native" mode (the photo alone) would only redo, with a face detector, the camera our
    portraits already have."""
    from ..sources import list_sources

    if not LIFT_PORTRAITS:
        return None
    for s in list_sources():
        if s.name == "lift" and s.available() is None:
            return s
    return None


def portrait_capture(portrait: Portrait, size: int = 256, progress: Progress | None = None):
    """Portrait -> (Capture for Avat3r, report lines). Uses the lifting route when present; else one view (V = 1):
    ours with the camera it was rendered with (PORTRAIT_FOV_DEG, the view class's azimuth) and a mask from the
    plain background, a real photo through the photo front end (face detection, pose, crop, mask)."""
    from ..capture import Capture
    from ..sources import get_source

    lift = _lift_source()
    report = list(portrait.report)
    photo = _resize(portrait.image, max(size, portrait.image.shape[0]))
    if lift is not None:
        res = lift.to_capture(photo, size=size, progress=progress, mode="lift")
        return res.capture, report + ["lifted with the single-image route (GAN inversion -> views)"] + list(res.report)
    if portrait.kind == "real":
        res = get_source("photos").to_capture([photo], size=size, progress=progress)
        return res.capture, report + ["one view (V = 1) through the photo front end; the single-image lifting route "
                                      "(GAN inversion -> 4 views) is not installed here"] + list(res.report)
    from .data import portrait_camera

    img = _resize(portrait.image, size)
    cam = portrait_camera(portrait.view, size)
    cap = Capture(img[None], cam, ["portrait"], background_mask(img)[None],
                  meta={"source": "prompt", "prompt": portrait.prompt})
    return cap, report + [f"one view (V = 1) with the portrait model's {portrait.view} camera; the single-image "
                          "lifting route (avat3r.lift: GAN inversion -> 4 views) is not used for generated portraits (not yet "
                          "measured on them), so the back of the head is guessed by Avat3r alone"]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img.astype(np.float32)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(pil, np.float32) / 255.0


def background_mask(img: np.ndarray, tol: float = 0.08) -> np.ndarray:
    """[H, W, 3] portrait on a plain background -> [H, W] float32 head mask.

    The background colour is estimated from the top and upper side borders (median; the generated backgrounds are
    tinted and blotchy, 0.05-0.15 away from the training grey, so a fixed colour marked ~the whole image as head);
    pixels of the lightly smoothed image further than a threshold from it are the head (threshold 4x the border's
    median deviation, within [tol, 0.2], so long hair reaching a side does not inflate it); then an opening, the
    largest blob, holes filled."""
    from scipy import ndimage

    H = img.shape[0]
    b, h6 = max(2, H // 20), int(0.6 * H)
    sm = ndimage.gaussian_filter(img.astype(np.float32), (H / 128, H / 128, 0))
    ring = np.concatenate([sm[:b].reshape(-1, 3), sm[:h6, :b].reshape(-1, 3), sm[:h6, -b:].reshape(-1, 3)])
    bg = np.median(ring, 0)
    thr = float(np.clip(4.0 * np.median(np.abs(ring - bg).max(-1)), tol, 0.2))
    fg = np.abs(sm - bg).max(-1) > thr
    fg = ndimage.binary_opening(fg, iterations=2)
    lab, n = ndimage.label(fg)
    if n > 1:
        fg = lab == (1 + int(np.argmax(ndimage.sum(fg, lab, range(1, n + 1)))))
    return ndimage.binary_fill_holes(fg).astype(np.float32)


def check_out_dir(out_dir) -> Path:
    """An output folder the user named -> Path, or InputError (an existing file, an unusable name)."""
    if out_dir is None or not str(out_dir).strip():
        raise InputError("give an output folder (-o DIR)")
    if "\x00" in str(out_dir):
        raise InputError("the output folder name contains a NUL character")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another output folder")
    return out


def generate_from_prompt(prompt: str, out_dir, *, seed: int = 0, steps: int | None = None, guidance: float | None = None,
                         model=None, pipe=None, device=None, frames: int = 24,
                         expressions=("neutral", "smile", "surprise"), frames_per_step: int = 8, video_size: int = 256,
                         fps: float = 24.0, progress: Progress | None = None) -> dict[str, Path]:
    """Everything ``avat3r generate --prompt`` writes into out_dir: portrait.png, capture/ (the view(s) Avat3r saw),
    avatar.ply, turntable.mp4, expressions.mp4, report.txt. Files are written into a hidden temporary folder beside
    out_dir and moved in at the end: a failure leaves nothing half-written. Returns the paths by name."""
    from ..data.capture_folder import write_capture_folder
    from ..export.clips import write_avatar_files
    from ..io.images import save_image
    from ..pipeline import _sub, check_frame_count, check_render_size, load_pipeline

    out = check_out_dir(out_dir)
    check_prompt(prompt)
    check_render_size(video_size, "video size")
    check_frame_count(frames, "frames") if frames else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".generate.", dir=out))
    except OSError as e:
        raise InputError(f"{out}: cannot create the output folder ({e.strerror or e}); choose another place") from None
    try:
        _tick(progress, 0.0, "text -> portrait")
        portrait = text_portrait(prompt, seed=seed, steps=steps, guidance=guidance, model=model, device=device,
                                 progress=_sub(progress, 0.0, 0.3))
        files = {"portrait": tmp / "portrait.png"}
        save_image(files["portrait"], portrait.image)
        pipe = pipe if pipe is not None else load_pipeline(device=device)
        _tick(progress, 0.3, "portrait -> views for Avat3r")
        cap, report = portrait_capture(portrait, pipe.image_size, _sub(progress, 0.3, 0.4))
        files["capture"] = write_capture_folder(tmp / "capture", cap)
        _tick(progress, 0.4, "Avat3r: reconstructing")
        avatar = pipe.reconstruct(cap, source="capture")
        report += list(avatar.report)
        files.update(write_avatar_files(avatar, tmp, frames=frames, video_size=video_size, fps=fps,
                                        expressions=expressions, frames_per_step=frames_per_step,
                                        tick=lambda f, m: _tick(progress, f, m), span=(0.55, 0.95)))
        files["report"] = tmp / "report.txt"
        files["report"].write_text("\n".join([f"prompt: {prompt}"] + report) + "\n")
        paths = {}
        for name, p in files.items():
            dst = out / Path(p).name
            if dst.is_dir() and Path(p).is_dir():
                shutil.rmtree(dst)
            os.replace(p, dst)
            paths[name] = dst
        _tick(progress, 1.0, "done")
        return paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
