"""One photo -> four views for Avat3r (the paper's Sec. 4.5 / Fig. 5): the front end gives the photo's camera,
crop and mask; ``invert_photo`` lifts it into the generator; the lifted head is rendered from the GGHead route's
four input views (``avat3r.generate.avatar.input_cameras``) with masks and cameras -> a Capture.

Three modes (``MODES``): "lift" (the four rendered views), "lift+photo" (those and the photo) and "native" (the
photo alone, V = 1). ``DEFAULT_MODE`` is the one the bench (bench/lift.py) measured better; ``default_mode()`` falls
back to "native" where no generator is installed; the app and the CLI can switch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..cameras import Cameras
from ..capture import Capture
from ..errors import InputError
from .config import MODES, InvertConfig
from .invert import LiftResult, invert_photo

__all__ = ["DEFAULT_MODE", "default_mode", "check_mode", "photo_view", "lifted_views", "lift_photo", "load_lift_models",
           "photo_avatar"]

#: The mode used when none is asked for: the one bench/lift.py measured better (docs/LIFT.md, "Which mode").
#: "native" since session 9: the Avat3r weights trained with view dropout reconstruct from one photo as well as the
#: lift does on 6 SynthHeads hold-out identities (23.38 vs 23.38 dB at +-30 deg, 22.16 vs 22.30 at +-60), better on
#: 8 real portraits (20.88 vs 20.21 dB at their own view, and cleaner at +-30 deg), in 0.3 s instead of ~10 s on 2 CPU
#: cores. Sessions 7-8 ("lift+photo", +4 dB over native) predate those weights.
DEFAULT_MODE = "native"

Progress = Callable[[float, str], None]


def default_mode() -> str:
    """DEFAULT_MODE; a lifting DEFAULT_MODE falls back to "native" (the photo alone) where no generator to lift into
    (ours or EG3D) is installed."""
    from ..generate.hub import generator_missing

    if DEFAULT_MODE == "native" or official_installed() or generator_missing() is None:
        return DEFAULT_MODE
    return "native"


def check_mode(mode) -> str:
    mode = default_mode() if mode is None else mode
    if mode not in MODES:
        raise InputError(f"unknown single-photo mode {mode!r}; choose one of {MODES} (lift: GAN inversion -> 4 views; "
                         "lift+photo: those and the photo; native: the photo alone)")
    return mode


def photo_view(photo, size: int = 256, frontend=None):
    """One photo through the front end (face, camera, head crop, mask) -> SourceResult with a 1-view Capture.
    Bad photos (no face, several faces, too small, cut off, too large) raise the front end's InputError."""
    from ..sources.files import as_items
    from ..sources.photos import PhotoSource

    items = as_items(photo)
    if len(items) != 1:
        raise InputError(f"give exactly one photo for the single-photo route, got {len(items)}; for several photos of "
                         "one head use `avat3r reconstruct`")
    return PhotoSource().to_capture(items, size=size, max_views=1, frontend=frontend)


def official_installed() -> bool:
    """True when EG3D's official checkpoint is installed (weights/eg3d/ or $AVAT3R_EG3D_WEIGHTS): the lift then
    uses the paper's own stack (EG3D + GOAE, ``avat3r.lift.official``) instead of GGHead."""
    from .official.load import eg3d_missing

    return eg3d_missing() is None


def load_lift_models(generator=None, encoder=None, device="cpu"):
    """(G, encoder or None): the given ones; else EG3D (+ GOAE) when their official weights are installed; else the
    installed GGHead weights and lift encoder."""
    from ..generate.hub import load_generator
    from .hub import load_encoder
    from .official.eg3d import EG3DGenerator

    if generator is None and encoder is None and official_installed():
        from .official.route import load_official

        G, enc, _ = load_official(device=device)
        return G, enc
    if isinstance(generator, EG3DGenerator):  # EG3D given as an object: its encoder is GOAE's (or none)
        return generator, encoder
    G = generator if generator is not None and not isinstance(generator, (str, bytes)) else load_generator(generator, device=device)
    if encoder is None or isinstance(encoder, (str, bytes)):
        encoder = load_encoder(G, encoder, device=str(G.template_points.device))
    return G, encoder


def _autograd_ready(m):
    """The module with its inference-mode tensors (a model loaded inside ``torch.inference_mode``, e.g. by
    ``Pipeline.reconstruct``, and cached) replaced by ordinary copies in place, so the lift can backpropagate."""
    if m is None:
        return m
    with torch.inference_mode(False), torch.no_grad():
        for mod in m.modules():
            for name, p in list(mod._parameters.items()):
                if p is not None and p.is_inference():
                    mod._parameters[name] = torch.nn.Parameter(p.clone(), requires_grad=p.requires_grad)
            for name, b in list(mod._buffers.items()):
                if b is not None and b.is_inference():
                    mod._buffers[name] = b.clone()
    return m


@torch.no_grad()
def lifted_views(G, out: dict, size: int, render_size: int | None = None) -> tuple[np.ndarray, np.ndarray, Cameras, list[str]]:
    """The lifted head from the four input views -> (images [4, S, S, 3], masks [4, S, S], Cameras, names).

    render_size: as ``generated_capture``'s (default: ``size`` on a GPU, the generator's training resolution on a
    CPU, then resized: the CPU rasteriser's cost grows with the pixels)."""
    import torch.nn.functional as F

    from ..generate.avatar import INPUT_VIEWS, input_cameras

    if render_size is None:
        render_size = size if out["position"].device.type == "cuda" else min(size, int(G.config.image_resolution))
    rgb, alpha = G.render(out, input_cameras(render_size), index=0, background=(0.0, 0.0, 0.0))
    if render_size != size:
        img = F.interpolate(torch.cat([rgb, alpha], -1).permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                            align_corners=False)
        rgb, alpha = img[:, :3].permute(0, 2, 3, 1), img[:, 3:].permute(0, 2, 3, 1)
    names = [f"lift_az{int(az):+d}" for az, _ in INPUT_VIEWS]
    return (rgb.clamp(0, 1).cpu().numpy().astype(np.float32), alpha[..., 0].clamp(0, 1).cpu().numpy().astype(np.float32),
            input_cameras(size), names)


def lift_photo(photo, *, size: int = 256, generator=None, encoder=None, config: InvertConfig | None = None,
               frontend=None, with_photo: bool = False, progress: Progress | None = None
               ) -> tuple[Capture, LiftResult, Capture, list[str]]:
    """One photo -> (the four lifted views as a Capture, the LiftResult, the photo's own 1-view Capture, report).

    photo: a path, PIL image, HxWx3 array or a 1-view Capture (posed and masked: the front end is skipped).
    with_photo: add the photo's own view as a fifth view. generator / encoder: objects or weight paths (default:
    weights/gghead and weights/lift)."""
    tick = progress or (lambda f, m: None)
    tick(0.0, "finding the face (front end)")
    if isinstance(photo, Capture):
        if len(photo) != 1 or photo.masks is None:
            raise InputError("a Capture given to the single-photo route must have exactly one view with a mask")
        view, report = photo, ["a posed, masked photo (Capture): front end skipped"]
    else:
        res = photo_view(photo, size, frontend)
        view, report = res.capture, list(res.report)
    from .official.eg3d import EG3DGenerator

    official = (generator is None and encoder is None and official_installed()) or isinstance(generator, EG3DGenerator)
    tick(0.15, "loading EG3D (+ GOAE), the paper's own generator" if official else "loading the generator and the lift encoder")
    with torch.inference_mode(False):  # Pipeline.reconstruct runs sources in inference mode; the lift needs autograd
        G, enc = load_lift_models(generator, encoder)
        G, enc = _autograd_ready(G), _autograd_ready(enc)
    if isinstance(G, EG3DGenerator):
        return _lift_official(G, enc, view, report, size, config, with_photo, tick)
    if config is None:
        config = InvertConfig.for_device(G.template_points.device)
    with torch.inference_mode(False):
        cam = Cameras(view.cameras.K.clone(), view.cameras.world_to_cam.clone(), view.cameras.width.clone(),
                      view.cameras.height.clone())
        lr = invert_photo(G, enc, view.images[0], view.masks[0], cam, config,
                          progress=lambda f, m: tick(0.2 + 0.65 * f, m))
    report += lr.report
    tick(0.87, "rendering the four views")
    images, masks, cams, names = lifted_views(lr.G, lr.out, size)
    meta = {"source": "lift", "generator": G.config.preset, "encoder": enc is not None, "photo": view.names[0]}
    if with_photo:
        if view.size != (size, size):
            raise InputError(f"the photo's view is {view.size} px; with_photo needs {size} x {size}")
        images = np.concatenate([images, view.images[:1].astype(np.float32)])
        masks = np.concatenate([masks, view.masks[:1].astype(np.float32)])
        cams = Cameras.cat([cams, view.cameras[:1].to("cpu")])
        names = names + ["photo"]
    cap = Capture(images=images, cameras=cams, names=names, masks=masks, meta=meta)
    report.append(f"lifted head rendered from {len(names)} views at {size} px" + (" (+ the photo)" if with_photo else ""))
    tick(1.0, "four views ready")
    return cap, lr, view, report


def _lift_official(G, enc, view: Capture, report: list, size: int, config, with_photo: bool, tick):
    """lift_photo's path through EG3D (+ GOAE): the same outputs, and report lines that say which stack ran."""
    from .official.route import lift_photo_eg3d, loaded_report

    report += loaded_report(G, enc)
    with torch.inference_mode(False):
        cap, lr, lines = lift_photo_eg3d(view, size, G, enc, steps=None if config is None else config.steps,
                                         progress=lambda f, m: tick(0.2 + 0.75 * f, m))
    report += lines
    if with_photo:
        if view.size != (size, size):
            raise InputError(f"the photo's view is {view.size} px; with_photo needs {size} x {size}")
        cap = Capture(images=np.concatenate([cap.images, view.images[:1].astype(np.float32)]),
                      cameras=Cameras.cat([cap.cameras, view.cameras[:1].to("cpu")]), names=cap.names + ["photo"],
                      masks=np.concatenate([cap.masks, view.masks[:1].astype(np.float32)]), meta=cap.meta)
    tick(1.0, "four views ready (EG3D)")
    return cap, lr, view, report


def photo_avatar(photo, pipe, *, mode: str | None = None, generator=None, encoder=None,
                 config: InvertConfig | None = None, frontend=None, with_photo: bool = False,
                 progress: Progress | None = None):
    """One photo -> (Avatar, the Capture Avat3r saw, LiftResult or None (native), report lines).

    mode "lift": the four lifted views go to ``pipe.reconstruct``; "lift+photo": those and the photo's own view
    (as ``with_photo``); "native": the photo's front-end view alone (V = 1)."""
    mode = check_mode(mode)
    with_photo = with_photo or mode == "lift+photo"
    tick = progress or (lambda f, m: None)
    size = pipe.image_size
    if mode == "native":
        tick(0.0, "finding the face (front end)")
        if isinstance(photo, Capture):
            cap, report = photo, ["a posed, masked photo (Capture)"]
        else:
            res = photo_view(photo, size, frontend)
            cap, report = res.capture, list(res.report)
        lr = None
        report.append("native mode: the photo goes to Avat3r alone (V = 1)")
        lo = 0.3
    else:
        cap, lr, _, report = lift_photo(photo, size=size, generator=generator, encoder=encoder, config=config,
                                        frontend=frontend, with_photo=with_photo,
                                        progress=lambda f, m: tick(0.75 * f, m))
        lo = 0.75
    tick(lo, f"Avat3r: reconstructing from {len(cap)} view{'s' if len(cap) > 1 else ''}")
    avatar = pipe.reconstruct(cap, progress=lambda f, m: tick(lo + (1 - lo) * f, m))
    report = report + list(getattr(avatar, "report", []) or [])
    tick(1.0, "avatar ready")
    return avatar, cap, lr, report
