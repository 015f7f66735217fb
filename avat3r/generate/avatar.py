"""Generated head -> animatable avatar (the paper's Fig. 7a, Sec. 4.6): sample a GGHead head by seed and
truncation, render four views spread around the face with their cameras (a Capture), and let Avat3r reconstruct
and animate it. The app, the CLI (``avat3r generate``), the input-source registry and the notebook call these.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..cameras import Cameras, orbit_camera
from ..capture import Capture
from ..errors import InputError
from ..gaussians import Gaussians
from ..limits import MAX_SEED, TRUNCATION_RANGE

__all__ = ["INPUT_VIEWS", "check_request", "input_cameras", "generated_capture", "head_gaussians"]

#: (azimuth, elevation) of the four input views, degrees: spread over the face like a few-shot capture
INPUT_VIEWS = ((-60.0, 8.0), (-20.0, 0.0), (20.0, 0.0), (60.0, 8.0))

Progress = Callable[[float, str], None]


def check_request(seed, truncation) -> tuple[int, float]:
    """Validate a (seed, truncation) request -> (int, float); InputError naming the bound otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, float)) or (isinstance(seed, float) and not seed.is_integer()):
        raise InputError(f"seed must be a whole number in [0, {MAX_SEED}], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be in [0, {MAX_SEED}] (avat3r.limits.MAX_SEED), got {seed}")
    try:
        t = float(truncation)
    except (TypeError, ValueError):
        raise InputError(f"truncation must be a number in [{TRUNCATION_RANGE[0]}, {TRUNCATION_RANGE[1]}], got {truncation!r}") from None
    lo, hi = TRUNCATION_RANGE
    if not (np.isfinite(t) and lo <= t <= hi):
        raise InputError(f"truncation must be in [{lo}, {hi}] (0 = the average head, 1 = untruncated), got {truncation!r}")
    return seed, t


def input_cameras(size: int) -> Cameras:
    """The four input cameras (``INPUT_VIEWS``), framing the head in size x size images."""
    return Cameras.cat([orbit_camera(az, el, size) for az, el in INPUT_VIEWS])


@torch.no_grad()
def generated_capture(G, seed: int, truncation: float = 0.7, size: int = 256, render_size: int | None = None) -> tuple[Capture, dict]:
    """Sample head ``seed`` and render the four input views -> (Capture with masks and cameras, GGHead output).

    render_size: the views are rasterised at this size and resized to ``size``. Default: ``size`` on a GPU; on the
    CPU the generator's training resolution (``G.config.image_resolution``, when smaller): the samples hold no
    detail beyond it, and the CPU rasteriser's cost grows with the pixels (4 views at 256^2: 13 s of CPU time,
    at 128^2: 3.8 s, small preset)."""
    seed, truncation = check_request(seed, truncation)
    out = G.sample(seed, truncation)
    if render_size is None:
        on_gpu = out["position"].device.type == "cuda"
        render_size = size if on_gpu else min(size, int(G.config.image_resolution))
    cams = input_cameras(render_size)
    rgb, alpha = G.render(out, cams, index=0, background=(0.0, 0.0, 0.0))
    if render_size != size:
        img = torch.cat([rgb, alpha], -1).permute(0, 3, 1, 2)
        img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
        rgb, alpha = img[:, :3].permute(0, 2, 3, 1), img[:, 3:].permute(0, 2, 3, 1)
        cams = input_cameras(size)
    names = [f"gghead_az{int(az):+d}" for az, _ in INPUT_VIEWS]
    cap = Capture(images=rgb.clamp(0, 1).cpu().numpy().astype(np.float32), cameras=cams, names=names,
                  masks=alpha[..., 0].clamp(0, 1).cpu().numpy().astype(np.float32),
                  meta={"source": "gghead", "seed": seed, "truncation": truncation, "generator": G.config.preset,
                        "render_size": render_size})
    return cap, out


def head_gaussians(G, out: dict) -> Gaussians:
    """The generated head as Gaussians (world metres) with view-independent (SH DC) colours, for the .ply."""
    return G.gaussians(out, 0).detach().to("cpu")
