"""The user-facing pipeline: photos or a capture -> Avatar -> animated Gaussians, renders, videos, .ply.

This is the object behind the CLI, the Gradio app and the notebooks (ARCHITECTURE.md, "Public contract")::

    pipe = avat3r.load_pipeline()                    # shipped weights/ (or AVAT3R_WEIGHTS, a path, a Hub id)
    avatar = pipe.reconstruct(images, cameras=None)  # 1..8 photos / arrays / PIL, a capture folder, a Capture
    gaussians = avatar.animate("smile")              # a preset name or a code of the model's size
    frame = avatar.render((30, 5), expression=None)  # HxWx3 uint8, camera = Cameras of 1 or (azimuth, elevation)
    avatar.save_ply("head.ply")

Stages of ``reconstruct`` (each is one module's job): the input source (``avat3r.sources``: the front end for
photos and video frames, the capture reader for a capture folder / zip / Capture, SynthHeads for a seed) and one
``conform`` step for every route (views selected, fitted to the model's input size, masks where missing; a posed
capture is never re-cropped); the position prior the weights were trained with (eq. 2; visual hull for the
shipped model); the optional feature backbone (eqs. 5-6); the network's expression-independent ``encode`` once.
Each ``animate`` then runs only the expression-dependent layers (eqs. 8-13) on the cached state. Settings live in
one ``PipelineConfig``.

``progress`` callbacks everywhere are ``progress(fraction in [0, 1], message)``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .cameras import Cameras, orbit_camera  # noqa: F401  (orbit_camera: public here too)
from .capture import Capture
from .errors import Avat3rError, CheckpointError, InputError
from .gaussians import Gaussians
from .head_template import HEAD_BOX_CENTER
from .limits import MAX_VIEWS  # the network runs any V >= 1; beyond 8 views attention cost grows (paper uses 4)

__all__ = ["load_pipeline", "Pipeline", "PipelineConfig", "Avatar", "default_weights_dir", "orbit_camera",
           "expression_sequence", "MAX_VIEWS", "FIT_POLICIES"]

Progress = Callable[[float, str], None]
WEIGHTS_ENV = "AVAT3R_WEIGHTS"
#: How a posed capture is fitted to the model's square input: "center" cuts the long side's ends (nothing for a
#: square capture), "pad" adds empty borders on the short side, "head" crops the head-centric window from the
#: cameras (the front end's crop; for captures whose head is small in the frame). Only then is it resized.
FIT_POLICIES = ("center", "pad", "head")


@dataclass
class PipelineConfig:
    """Everything ``load_pipeline`` and ``Pipeline.reconstruct`` need besides the inputs.

    weights: checkpoint directory or Hub repo id (None: ``default_weights_dir()``); device: "cpu", "cuda", ...
    (None: cuda when available); prior: the position prior to use, which must be the one the weights were
    trained with (None: the checkpoint's); max_views: views given to the network (chosen spread out around the
    head); fit: how a posed capture is fitted to the model's input size (``FIT_POLICIES``); frontend: the front
    end's settings for photos and videos (``avat3r.frontend.FrontendConfig``; None: its defaults)."""

    weights: str | None = None
    device: str | None = None
    prior: str | None = None
    max_views: int = MAX_VIEWS
    fit: str = "center"
    frontend: Any = None

    def __post_init__(self) -> None:
        if self.fit not in FIT_POLICIES:
            raise InputError(f"PipelineConfig.fit must be one of {FIT_POLICIES}, got {self.fit!r}")
        if not 1 <= int(self.max_views) <= MAX_VIEWS:
            raise InputError(f"PipelineConfig.max_views must be in 1..{MAX_VIEWS}, got {self.max_views!r}")


def _tick(progress: Progress | None, frac: float, msg: str) -> None:
    if progress is not None:
        progress(float(min(max(frac, 0.0), 1.0)), msg)


def _sub(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """A callback that maps [0, 1] onto [lo, hi] of ``progress``."""
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * float(f), msg)


# ---- weights ------------------------------------------------------------------------------------------
def default_weights_dir() -> Path:
    """``$AVAT3R_WEIGHTS`` when set, else the ``weights/`` folder shipped beside the package (repo root)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "weights"


def load_pipeline(source: str | os.PathLike | None = None, *, device: str | torch.device | None = None,
                  prior: str | None = None, config: PipelineConfig | None = None) -> "Pipeline":
    """Load an Avat3r checkpoint (``config.json`` + ``model.safetensors``) into a Pipeline.

    source: None -> ``default_weights_dir()``; a local directory; or a Hugging Face Hub repo id ``owner/name``
    (with HF_HUB_OFFLINE=1 only the local Hub cache is used). device: "cpu", "cuda", ... (default: cuda when
    available). prior: must equal the prior the weights were trained with (``config.prior``) when given.
    config: a PipelineConfig (the arguments above, when given, override its fields).
    Raises CheckpointError saying where to put the weights when none are found.
    """
    from .model import Avat3rModel

    cfg = config or PipelineConfig()
    cfg = replace(cfg, weights=str(source) if source is not None else cfg.weights,
                  device=str(device) if device is not None else cfg.device, prior=prior if prior is not None else cfg.prior)
    source, device, prior = cfg.weights, cfg.device, cfg.prior
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if source is None:
        path = default_weights_dir()
        missing = [n for n in ("config.json", "model.safetensors") if not (path / n).is_file()]
        if missing:
            where = f"${WEIGHTS_ENV}={path}" if os.environ.get(WEIGHTS_ENV) else str(path)
            raise CheckpointError(
                f"no Avat3r weights found in {where} (missing {', '.join(missing)}). Put a checkpoint's config.json and "
                f"model.safetensors there, set {WEIGHTS_ENV} to a checkpoint directory, or pass a directory or Hub repo "
                "id to load_pipeline(...) / --weights"
            )
        source = path
    try:
        model = Avat3rModel.from_pretrained(source, device=dev)
    except Avat3rError:
        raise
    except (OSError, RuntimeError, ValueError) as e:  # anything else from the hub/safetensors layer
        raise CheckpointError(f"cannot load Avat3r weights from {source!s}: {e}") from e
    return Pipeline(model, source=str(source), prior=prior, config=cfg)


# ---- cameras and expressions --------------------------------------------------------------------------
def turntable_cameras(n_frames: int, size: int = 256, *, elevation: float = 5.0,
                      azimuth_range: tuple[float, float] = (-180.0, 180.0)) -> Cameras:
    """n_frames cameras on an orbit around the head over ``azimuth_range`` (a full loop excludes its endpoint)."""
    a0, a1 = azimuth_range
    full = abs((a1 - a0) - 360.0) < 1e-6
    az = np.linspace(a0, a1, n_frames + 1 if full else n_frames)[:n_frames]
    return Cameras.cat([orbit_camera(a, elevation, size) for a in az])


def expression_sequence(space, keys: Sequence[Any], frames_per_step: int = 12, *, loop: bool = True) -> np.ndarray:
    """Smoothly interpolate between expressions (preset names or codes) -> codes [T, C] (smoothstep easing).

    With ``loop`` the sequence returns to the first key, so the video loops without a jump."""
    keys = list(keys)
    frames_per_step = check_frame_count(frames_per_step, "frames per step")
    check_frame_count(max(1, len(keys) - 1 + bool(loop)) * frames_per_step + 1, "expression sequence")  # before building it
    codes = [np.asarray(space.resolve(k), dtype=np.float32) for k in keys]
    if not codes:
        raise InputError("an expression sequence needs at least one preset or code")
    if len(codes) == 1:
        return np.repeat(codes[0][None], max(1, frames_per_step), 0)
    if loop:
        codes = codes + [codes[0]]
    frames_per_step = max(1, int(frames_per_step))
    out = []
    for a, b in zip(codes[:-1], codes[1:]):
        t = np.arange(frames_per_step, dtype=np.float32) / frames_per_step
        t = t * t * (3 - 2 * t)
        out.append(a[None] * (1 - t[:, None]) + b[None] * t[:, None])
    if not loop:
        out.append(codes[-1][None])
    return np.concatenate(out, 0)


# ---- fitting a posed capture to the model ------------------------------------------------------------------
def _resize_square(arr: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = arr.shape[:2]
    if (h, w) == (size, size):
        return arr
    interp = cv2.INTER_AREA if size < h else cv2.INTER_LINEAR
    return cv2.resize(arr, (size, size), interpolation=interp)


def fit_capture(capture: Capture, size: int, policy: str = "center") -> Capture:
    """Make each view a size x size square, K kept consistent: "center" cuts the long side's ends, "pad" adds
    empty (black, mask 0) borders on the short side; then resize. A square capture is only resized."""
    if policy not in ("center", "pad"):
        raise InputError(f"fit_capture: policy must be 'center' or 'pad', got {policy!r}")
    h, w = capture.size
    images, masks, cams = capture.images, capture.masks, capture.cameras
    if h != w:
        s = min(h, w) if policy == "center" else max(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        if policy == "center":
            images = images[:, y0:y0 + s, x0:x0 + s]
            masks = None if masks is None else masks[:, y0:y0 + s, x0:x0 + s]
        else:  # y0 or x0 <= 0: the borders to add
            pad = ((0, 0), (-y0, s - h + y0), (-x0, s - w + x0))
            images = np.pad(images, pad + ((0, 0),))
            masks = None if masks is None else np.pad(masks, pad)
        cams = cams.crop([x0, y0, s, s])
        h = w = s
    if h != size:
        images = np.stack([_resize_square(im, size) for im in images]).astype(np.float32)
        masks = None if masks is None else np.stack([_resize_square(m, size) for m in masks]).astype(np.float32)
        cams = cams.resize(size, size)
    return Capture(np.ascontiguousarray(images, np.float32), cams, list(capture.names),
                   None if masks is None else np.ascontiguousarray(masks, np.float32), capture.expressions, dict(capture.meta))


def select_views(capture: Capture, max_views: int = MAX_VIEWS) -> Capture:
    """Keep at most ``max_views`` views, spread out (``avat3r.capture.select_view_indices``; deterministic)."""
    return capture.select(max_views)


def head_crop_capture(capture: Capture, size: int, frontend=None) -> tuple[Capture, list[str], np.ndarray]:
    """The front end's head-centric crop of a posed capture (fit policy "head") -> (capture, report, preview);
    masks given are cropped with the images, missing ones computed; expressions follow their views."""
    from .frontend import prepare

    masks = None if capture.masks is None else list(capture.masks)
    res = prepare(list(capture.images), size=size, cameras=capture.cameras, masks=masks, max_views=len(capture),
                  config=frontend)
    idx = [v.source_index for v in res.views]
    cap = res.capture
    cap = Capture(cap.images, cap.cameras, [capture.names[i] for i in idx], cap.masks,
                  None if capture.expressions is None else capture.expressions[idx], {**capture.meta, **cap.meta})
    return cap, [ln for ln in res.report if not ln.startswith("capture:")], res.preview


def camera_masks(capture: Capture, config=None) -> Capture:
    """A posed capture without masks -> the same views with masks from GrabCut seeded by the cameras (no crop)."""
    from .frontend.mask import MaskConfig, head_mask

    cfg = config or MaskConfig()
    K, w2c = capture.cameras.K.double().numpy(), capture.cameras.world_to_cam.double().numpy()
    masks = np.stack([head_mask(im, K[i], w2c[i], None, None, cfg) for i, im in enumerate(capture.images)])
    return Capture(capture.images, capture.cameras, list(capture.names), masks.astype(np.float32), capture.expressions,
                   dict(capture.meta))


# ---- priors -------------------------------------------------------------------------------------------
def _training_config(source: str) -> dict | None:
    """The TrainConfig dict in ``training.json`` beside local weights (what the run's data used), if any."""
    import json

    p = Path(source) / "training.json" if source else None
    if p is None or not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("train_config")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{p}: unreadable ({e}); fix or delete it") from None


def _make_features(name: str, device: torch.device):
    """Feature backbone (eqs. 5-6) named by the config, e.g. "sapiens-2b" -> callable(images [V,H,W,3]) -> [V,C,h,w]."""
    try:
        from .priors.sapiens import SapiensFeatures

        return SapiensFeatures.from_pretrained(name, device=device)
    except Avat3rError as e:
        raise CheckpointError(
            f"these weights were trained with {name} features, but that backbone is not available: {e}. "
            "Download it (see docs/PRIORS.md) or use a checkpoint without features (config.features = null)"
        ) from None
    except ImportError as e:
        raise CheckpointError(f"these weights need {name} features, which cannot be imported here ({e})") from None


# ---- the pipeline -------------------------------------------------------------------------------------
class Pipeline:
    """A loaded model plus the stages around it. Build with ``load_pipeline``."""

    def __init__(self, model, *, source: str = "", prior: str | None = None, config: PipelineConfig | None = None):
        self.model = model.eval()
        self.config = model.config
        self.pipeline_config = config or PipelineConfig(weights=source or None, prior=prior)
        self.source = source
        self.device = next(model.parameters()).device
        # refuse now, not at the first reconstruction, weights that would be served with another prior than their data's
        from .priors.registry import check_checkpoint_prior

        check_checkpoint_prior(self.config.prior, requested=prior if prior is not None else self.pipeline_config.prior,
                               train_config=_training_config(source),
                               where=f"these weights ({source or 'model'})")
        self._prior = None
        self._features = None

    # ---- properties -----------------------------------------------------------------------------------
    @property
    def expression_space(self):
        """``ExpressionSpace(dim, names, presets)`` of the loaded model (presets always include "neutral")."""
        return self.config.expression_space

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    def __repr__(self) -> str:
        c = self.config
        return (f"Pipeline(model={c.name!r}, image_size={c.image_size}, prior={c.prior!r}, features={c.features!r}, "
                f"expression_dim={c.expression_dim}, device={self.device}, source={self.source!r})")

    @property
    def prior(self):
        """The position prior the weights were trained with (built on first use)."""
        if self._prior is None:
            from .priors.registry import serving_prior

            self._prior = serving_prior(self.config.prior, self.device)
        return self._prior

    def check_priors(self) -> None:
        """Build the prior and feature backbone now, raising CheckpointError if the config needs missing ones."""
        _ = self.prior
        if self.config.features is not None and self._features is None:
            self._features = _make_features(self.config.features, self.device)

    # ---- inputs ---------------------------------------------------------------------------------------
    def prepare(self, images, cameras: Cameras | None = None, *, masks=None, source: str | None = None,
                progress: Progress | None = None, **options):
        """Inputs -> (Capture at the model's size with masks, report lines, preview image or None).

        images: what the input source takes (``avat3r.sources``): photos (paths, PIL, HxWx3 arrays, a folder of
        photos), a video path, a capture folder or its zip, a Capture, or, with ``source="synth"``, a seed.
        source: the source's name; None picks it from the input (``detect_source``). cameras: Cameras of the
        photos (OpenCV, head-centric world): photos of one size with cameras are a posed capture, used as is.
        masks: one HxW mask per view. Then one step for every route (``conform``): at most ``max_views`` views,
        fitted to the model's input size (``PipelineConfig.fit``), masks computed where missing."""
        from .sources import detect_source, get_source

        _tick(progress, 0.0, "preparing the inputs")
        if source is None:
            from .sources.files import as_items

            if not as_items(images):
                raise InputError(f"no images given; give 1 to {MAX_VIEWS} photos of the same head, a video or a "
                                 "capture folder")
        src = get_source(source) if source is not None else detect_source(images)
        cfg = self.pipeline_config
        res = src.to_capture(images, size=self.image_size, max_views=cfg.max_views, cameras=cameras, masks=masks,
                             progress=_sub(progress, 0.0, 0.9), frontend=cfg.frontend, **options)
        capture, report, preview = self.conform(res.capture, list(res.report), res.preview)
        _tick(progress, 1.0, "inputs ready")
        return capture, report, preview

    def conform(self, capture: Capture, report: list[str] | None = None, preview=None):
        """Any source's Capture -> the network's: views selected, fitted to the model's size, masks where missing.
        Nothing else: a posed, masked capture is not re-cropped (unless ``fit="head"``). -> (capture, report, preview)."""
        report = list(report or [])
        cfg, size = self.pipeline_config, self.image_size
        n = len(capture)
        capture = capture.select(cfg.max_views)
        if len(capture) < n:
            report.append(f"using {len(capture)} of {n} views (spread out around the head)")
        if capture.size != (size, size) or (cfg.fit == "head" and capture.meta.get("frontend") is None):
            if cfg.fit == "head":
                capture, lines, preview = head_crop_capture(capture, size, cfg.frontend)
                report.extend(lines)
            else:
                h, w = capture.size
                capture = fit_capture(capture, size, cfg.fit)
                report.append(f"fitted {w}x{h} -> {size}x{size} px ({cfg.fit})")
        if capture.masks is None:
            capture = camera_masks(capture, getattr(cfg.frontend, "mask", None))
            report.append("masks: none given, computed from the images (GrabCut seeded by the cameras)")
        return capture, report, preview

    # ---- reconstruction ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def reconstruct(self, images, cameras: Cameras | None = None, *, masks=None, source: str | None = None,
                    progress: Progress | None = None, **options) -> "Avatar":
        """1..8 images (or any source's input, see ``prepare``) -> Avatar. Runs the source (front end, capture
        reader, ...), prior, features and ``encode`` once."""
        capture, report, preview = self.prepare(images, cameras, masks=masks, source=source,
                                                progress=_sub(progress, 0.0, 0.6), **options)
        if self.config.features is not None and self._features is None:
            self._features = _make_features(self.config.features, self.device)
        _tick(progress, 0.6, f"position prior ({self.config.prior})")
        from .model.inputs import NetworkInputs

        prior_out = self.prior(capture)  # tensors on self.device
        features = None
        if self._features is not None:
            _tick(progress, 0.7, f"features ({self.config.features})")
            features = self._features(capture.images)  # [V, Cf, h, w]
        _tick(progress, 0.8, "encoding the views")
        inputs = NetworkInputs.from_capture(capture, prior_out, features, device=self.device)  # [1, V, ...]
        state = inputs.encode(self.model)
        kept = inputs.kept(self.config.conf_threshold)
        if kept == 0:
            raise InputError(
                "no pixel of the inputs was kept as a Gaussian (the prior's confidence is empty): the head was not "
                "found in the masks; use photos where the head is clearly visible, or give masks"
            )
        report.append(f"{len(capture)} views at {self.image_size}² -> {kept} Gaussians")
        avatar = Avatar(self, capture, state, report=report, preview=preview, prior=prior_out)
        _tick(progress, 1.0, "avatar ready")
        return avatar


# ---- the avatar: checks on what callers pass (issue 13: bounded, finite, clear messages) -------------------
def check_render_size(size, what: str = "size") -> int:
    """A render/video side length in pixels -> int, or InputError naming the limits."""
    from .limits import MAX_RENDER_SIZE, MIN_RENDER_SIZE

    if isinstance(size, bool) or not isinstance(size, (int, np.integer, float)) or not np.isfinite(size) or int(size) != size:
        raise InputError(f"{what} must be a whole number of pixels, got {size!r}")
    if not MIN_RENDER_SIZE <= int(size) <= MAX_RENDER_SIZE:
        raise InputError(f"{what} {int(size)} is out of range: renders are {MIN_RENDER_SIZE} to {MAX_RENDER_SIZE} pixels "
                         "per side")
    return int(size)


def check_frame_count(n, what: str = "frames") -> int:
    """A number of frames -> int in [1, MAX_SEQUENCE_FRAMES], or InputError naming the limit."""
    from .limits import MAX_SEQUENCE_FRAMES

    if isinstance(n, bool) or not isinstance(n, (int, np.integer, float)) or not np.isfinite(n) or int(n) != n:
        raise InputError(f"{what} must be a whole number, got {n!r}")
    if not 1 <= int(n) <= MAX_SEQUENCE_FRAMES:
        raise InputError(f"{what}: {int(n)} frames is out of range; a sequence has 1 to {MAX_SEQUENCE_FRAMES} frames "
                         "(shorten it or lower the frames per step)")
    return int(n)


def check_angles(azimuth, elevation) -> tuple[float, float]:
    """Viewing angles in degrees -> floats, or InputError when not finite numbers."""
    try:
        a, e = float(azimuth), float(elevation)
    except (TypeError, ValueError):
        raise InputError(f"azimuth and elevation must be numbers (degrees), got {azimuth!r}, {elevation!r}") from None
    if not (np.isfinite(a) and np.isfinite(e)):
        raise InputError("azimuth and elevation must be finite numbers of degrees (got NaN or inf)")
    if not -90.0 <= e <= 90.0:
        raise InputError(f"elevation {e:g} is out of range: use -90 to 90 degrees")
    return a, e


def check_codes(codes, dim: int) -> np.ndarray:
    """Expression codes [T, C] -> float32 array, or InputError (shape, NaN/inf, range, length)."""
    from .limits import MAX_EXPRESSION_ABS

    try:
        z = np.asarray(codes, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"expression codes must be numbers [T, {dim}] (one row per frame)") from None
    if z.ndim != 2 or z.shape[1] != dim:
        raise InputError(f"expression codes must be [T, {dim}] (one row per frame), got shape {list(z.shape)}")
    check_frame_count(len(z), "expression sequence")
    if not np.isfinite(z).all():
        raise InputError("expression codes contain NaN or inf; give finite numbers (the presets span about [-1, 1])")
    if np.abs(z).max() > MAX_EXPRESSION_ABS:
        raise InputError(f"expression code value {float(np.abs(z).max()):g} is out of range: values must lie within "
                         f"±{MAX_EXPRESSION_ABS:g} (the presets span about [-1, 1])")
    return z


# ---- the avatar ---------------------------------------------------------------------------------------
class Avatar:
    """A reconstructed head: the cached expression-independent state plus what made it.

    capture: the Capture the network saw (model size); report: lines saying what the front end did;
    preview: the front end's preview image (uint8) or None; prior: the PriorOutput used."""

    _CACHE = 8  # animated Gaussians kept per avatar (a render and a .ply of one expression share them)

    def __init__(self, pipeline: Pipeline, capture: Capture, state, *, report=None, preview=None, prior=None):
        self.pipeline = pipeline
        self.capture = capture
        self.state = state
        self.report = list(report or [])
        self.preview = preview
        self.prior = prior
        self._cache: OrderedDict[tuple, Gaussians] = OrderedDict()

    @property
    def expression_space(self):
        return self.pipeline.expression_space

    def expression_code(self, expression) -> np.ndarray:
        space = self.pipeline.expression_space
        if expression is None:
            return np.zeros(space.dim, np.float32)
        return np.asarray(space.resolve(expression), dtype=np.float32)

    # ---- animation --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def animate(self, expression=None) -> Gaussians:
        """Gaussians of the avatar under ``expression`` (a preset name, a code [C], or None = neutral)."""
        z = self.expression_code(expression)
        key = tuple(np.round(z, 6).tolist())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        g = self.animate_batch(z[None])[0]
        self._cache[key] = g
        while len(self._cache) > self._CACHE:
            self._cache.popitem(last=False)
        return g

    @torch.inference_mode()
    def animate_batch(self, codes, batch: int | None = None) -> list[Gaussians]:
        """codes [T, C] -> T Gaussian sets, reusing the cached state (``batch`` expressions per network call;
        default 1 on CPU, where batching was measured 3-4x slower per frame, 8 on GPU)."""
        if batch is None:
            batch = 1 if self.pipeline.device.type == "cpu" else 8
        z = torch.as_tensor(check_codes(codes, self.pipeline.expression_space.dim), device=self.pipeline.device)
        out: list[Gaussians] = []
        for i in range(0, len(z), batch):
            maps = self.pipeline.model.animate(self.state, z[i:i + batch])
            out.extend(g.detach() for g in self.pipeline.model.to_gaussians(maps))
        return out

    # ---- rendering --------------------------------------------------------------------------------------
    def _cameras(self, camera, size: int | None) -> Cameras:
        if size is not None:
            size = check_render_size(size)
        if isinstance(camera, Cameras):
            if size is None:
                for w, h in zip(camera.width.tolist(), camera.height.tolist()):
                    check_render_size(w, "camera width")
                    check_render_size(h, "camera height")
            return camera if size is None else camera.resize(size, size)
        if camera is None:
            camera = (0.0, 0.0)
        if isinstance(camera, (tuple, list)) and len(camera) == 2:
            return orbit_camera(*check_angles(camera[0], camera[1]), 256 if size is None else size)
        raise InputError(f"camera must be a Cameras object or (azimuth, elevation) in degrees, got {camera!r}")

    @torch.inference_mode()
    def render_gaussians(self, gaussians: Gaussians, cameras: Cameras, background=(0.0, 0.0, 0.0)) -> np.ndarray:
        """Render one Gaussian set into cameras -> [N, H, W, 3] uint8."""
        from .render import render

        dev = gaussians.device
        out = render(gaussians, cameras.to(dev), background=background)
        return (out.color.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def render(self, camera=None, expression=None, *, size: int | None = None, background=(0.0, 0.0, 0.0)) -> np.ndarray:
        """One view -> HxWx3 uint8. camera: Cameras of 1, or (azimuth, elevation) in degrees (default frontal)."""
        cams = self._cameras(camera, size)
        if len(cams) != 1:
            raise InputError(f"render takes one camera, got {len(cams)}; use turntable() or render_gaussians() for many")
        return self.render_gaussians(self.animate(expression), cams, background)[0]

    def turntable(self, n_frames: int = 48, size: int = 256, expression=None, *, elevation: float = 5.0,
                  background=(0.0, 0.0, 0.0), progress: Progress | None = None) -> list[np.ndarray]:
        """A full orbit around the head -> n_frames HxWx3 uint8 frames (starts frontal)."""
        n_frames = check_frame_count(n_frames, "turntable")
        size = check_render_size(size)
        _, elevation = check_angles(0.0, elevation)
        g = self.animate(expression)
        cams = turntable_cameras(n_frames, size, elevation=elevation, azimuth_range=(0.0, 360.0))
        frames: list[np.ndarray] = []
        step = 8
        for i in range(0, n_frames, step):
            _tick(progress, i / n_frames, f"turntable frame {i + 1}/{n_frames}")
            frames.extend(self.render_gaussians(g, cams[list(range(i, min(i + step, n_frames)))], background))
        _tick(progress, 1.0, "turntable done")
        return frames

    def animation(self, codes, camera=None, *, size: int = 256, background=(0.0, 0.0, 0.0),
                  progress: Progress | None = None) -> list[np.ndarray]:
        """Expression codes [T, C] (see ``expression_sequence``) seen from one camera -> T uint8 frames."""
        cams = self._cameras(camera, size)
        codes = check_codes(codes, self.pipeline.expression_space.dim)
        frames: list[np.ndarray] = []
        step = 1 if self.pipeline.device.type == "cpu" else 8
        for i in range(0, len(codes), step):
            _tick(progress, i / len(codes), f"animation frame {i + 1}/{len(codes)}")
            for g in self.animate_batch(codes[i:i + step]):
                frames.append(self.render_gaussians(g, cams, background)[0])
        _tick(progress, 1.0, "animation done")
        return frames

    # ---- export ----------------------------------------------------------------------------------------
    def save_ply(self, path, expression=None, *, orientation: str = "y_up") -> Path:
        """Write the avatar under ``expression`` as a standard 3DGS .ply (metres, y-up head-centric frame)."""
        from .io.ply import save_ply

        if orientation not in ("y_up", "y_down"):
            raise InputError(f"orientation must be 'y_up' or 'y_down', got {orientation!r}")
        return save_ply(path, self.animate(expression), orientation=orientation)


def viewer_gaussians(g: Gaussians, *, scale: float | None = None) -> Gaussians:
    """Gaussians re-posed for Gradio's Model3D splat viewer (gsplat.js): centred on the head box, scaled to fill
    its default orbit camera (5 units away), and turned into its y-down frame so the head is right side up and
    the face points at the default camera. Only for viewing: the metric y-up .ply is ``Avatar.save_ply``."""
    centre = torch.as_tensor(HEAD_BOX_CENTER, dtype=g.means.dtype, device=g.device)
    if scale is None:
        scale = VIEWER_SCALE
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=g.means.dtype, device=g.device))
    return g.transform(t=-centre).transform(R=flip, scale=scale)


VIEWER_SCALE = 4.0  # head + hair (~0.3 m) -> ~1.2 viewer units: about 2/3 of the gsplat.js default view (distance 5)
