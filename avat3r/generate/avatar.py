"""Generated head -> animatable avatar (the paper's Fig. 7a, Sec. 4.6): sample a GGHead head by seed and
truncation, render four views spread around the face with their cameras (a Capture), and let Avat3r reconstruct
and animate it. The app, the CLI (``avat3r generate``), the input-source registry and the notebook call these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cameras import Cameras
from ..capture import Capture
from ..errors import InputError
from ..gaussians import Gaussians
from ..limits import MAX_SEED, TRUNCATION_RANGE

__all__ = ["INPUT_VIEWS", "check_request", "input_cameras", "generated_capture", "head_gaussians", "generate_avatar"]

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
    from ..pipeline import orbit_camera

    return Cameras.cat([orbit_camera(az, el, size) for az, el in INPUT_VIEWS])


@torch.no_grad()
def generated_capture(G, seed: int, truncation: float = 0.7, size: int = 256) -> tuple[Capture, dict]:
    """Sample head ``seed`` and render the four input views -> (Capture with masks and cameras, GGHead output)."""
    seed, truncation = check_request(seed, truncation)
    out = G.sample(seed, truncation)
    cams = input_cameras(size)
    rgb, alpha = G.render(out, cams, index=0, background=(0.0, 0.0, 0.0))
    names = [f"gghead_az{int(az):+d}" for az, _ in INPUT_VIEWS]
    cap = Capture(images=rgb.clamp(0, 1).cpu().numpy().astype(np.float32), cameras=cams, names=names,
                  masks=alpha[..., 0].clamp(0, 1).cpu().numpy().astype(np.float32),
                  meta={"source": "gghead", "seed": seed, "truncation": truncation, "generator": G.config.preset})
    return cap, out


def head_gaussians(G, out: dict) -> Gaussians:
    """The generated head as Gaussians (world metres) with view-independent (SH DC) colours, for the .ply."""
    return G.gaussians(out, 0).detach().to("cpu")


def generate_avatar(seed: int, truncation: float, out_dir, *, generator=None, pipe=None, size: int | None = None,
                    frames: int = 24, expressions=("neutral", "smile", "surprise"), frames_per_step: int = 8,
                    video_size: int = 256, fps: float = 24.0, progress: Progress | None = None) -> dict[str, Path]:
    """Everything ``avat3r generate`` writes into out_dir: gghead.ply, capture/ (the four views), avatar.ply,
    turntable.mp4 and expressions.mp4. Returns the paths by name."""
    from ..data.capture_folder import write_capture_folder
    from ..io.ply import save_ply
    from ..io.video import write_video
    from ..pipeline import expression_sequence, load_pipeline
    from .hub import load_generator

    tick = progress or (lambda f, m: None)
    seed, truncation = check_request(seed, truncation)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tick(0.0, "loading the generator")
    G = generator if generator is not None else load_generator()
    pipe = pipe if pipe is not None else load_pipeline()
    tick(0.05, f"sampling head {seed} (truncation {truncation:g})")
    cap, gout = generated_capture(G, seed, truncation, size or pipe.image_size)
    paths = {"gghead_ply": save_ply(out / "gghead.ply", head_gaussians(G, gout))}
    paths["capture"] = write_capture_folder(out / "capture", cap)
    tick(0.15, "Avat3r: reconstructing from the four views")
    avatar = pipe.reconstruct(cap)
    paths["avatar_ply"] = avatar.save_ply(out / "avatar.ply")
    if frames > 0:
        tick(0.5, "turntable")
        paths["turntable"] = write_video(out / "turntable.mp4", avatar.turntable(frames, video_size), fps=fps)
    if expressions:
        tick(0.75, "expression clip")
        codes = expression_sequence(pipe.expression_space, list(expressions), frames_per_step)
        paths["expressions"] = write_video(out / "expressions.mp4", avatar.animation(codes, size=video_size), fps=fps)
    tick(1.0, "done")
    return paths
