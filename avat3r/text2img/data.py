"""Portrait data set for the text-to-portrait model: SynthHeads heads rendered frontal-ish at 64x64 with labels.

Each identity (train seeds) is posed with a few expression classes and rendered from a view class (frontal, or
turned about 20 degrees); labels are the visible attributes (``vocab.attributes_of``) as class indices per group
(-1 = not visible). Captions are drawn from the labels at training time (a new random caption every epoch).
Rig building runs in CPU worker processes; rendering runs on the GPU (gsplat) when there is one, else on the CPU.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from .vocab import (
    _EXPRESSION_P,
    BACKGROUND,
    EXPRESSION_PRESET,
    GROUPS,
    PORTRAIT_FOV_DEG,
    VIEW_AZIMUTH,
    Attributes,
    attributes_of,
)

GROUP_NAMES = list(GROUPS)
_VIEW_P = (0.6, 0.2, 0.2)


def portrait_camera(view: str = "frontal", size: int = 64, azimuth_jitter: float = 0.0, elevation: float = 0.0):
    """The camera of a portrait of view class ``view`` (OpenCV, head-centric world; ``orbit_camera`` framing with
    PORTRAIT_FOV_DEG)."""
    from ..cameras import orbit_camera

    return orbit_camera(VIEW_AZIMUTH[view] + azimuth_jitter, elevation, size, fov_deg=PORTRAIT_FOV_DEG)


def labels_of(attrs: Attributes) -> np.ndarray:
    """Attributes -> [G] int64 class index per group (-1 = not visible)."""
    return np.array([-1 if attrs.labels[g] is None else GROUPS[g].index(attrs.labels[g]) for g in GROUP_NAMES], np.int64)


def attributes_from_labels(labels) -> Attributes:
    return Attributes({g: (None if int(c) < 0 else GROUPS[g][int(c)]) for g, c in zip(GROUP_NAMES, labels)})


def _plan(seed: int, per_identity: int) -> list[dict]:
    """What to render of identity ``seed``: expression class, intensity, view class and camera jitter."""
    rng = np.random.default_rng([seed, 0x7E47])
    names = list(EXPRESSION_PRESET)
    return [dict(expression=names[rng.choice(len(names), p=_EXPRESSION_P)], intensity=float(rng.uniform(0.8, 1.1)),
                 view=list(VIEW_AZIMUTH)[rng.choice(3, p=_VIEW_P)], az=float(rng.uniform(-4, 4)),
                 el=float(rng.uniform(-4, 6))) for _ in range(per_identity)]


def _pose_identity(seed: int, per_identity: int, size: int = 0):
    """Worker: one identity's planned portraits -> (seed, plan, posed Gaussians as CPU tensors, or with size > 0 the
    images rendered here on the CPU [K, size, size, 3] uint8, labels)."""
    from ..data.expressions import EXPRESSION_PRESETS, clip_expression
    from ..data.identity import sample_identity
    from ..data.synthheads import get_rig

    torch.set_num_threads(1)
    ident = sample_identity(seed)
    plan = _plan(seed, per_identity)
    codes = np.stack([clip_expression(EXPRESSION_PRESETS[EXPRESSION_PRESET[p["expression"]]] * p["intensity"])
                      for p in plan]).astype(np.float32)
    heads = get_rig(ident, "cpu").pose(codes)
    labels = [labels_of(attributes_of(ident, p["expression"], p["view"])) for p in plan]
    if size > 0:
        return seed, plan, [_render(g, p, size) for g, p in zip(heads, plan)], labels
    return seed, plan, [(g.means, g.quats, g.scales, g.opacities, g.colors) for g in heads], labels


def _render(g, p: dict, size: int) -> torch.Tensor:
    """One portrait [size, size, 3] uint8 (on the Gaussians' device)."""
    from ..render import render

    cam = portrait_camera(p["view"], size, p["az"], p["el"]).to(g.device)
    img = render(g, cam, background=BACKGROUND).color[0].clamp(0, 1)
    return (img * 255 + 0.5).to(torch.uint8)


def build_portraits(seeds, per_identity: int = 4, size: int = 64, device="cpu", workers: int = 0,
                    render_in_workers: bool = False, max_seconds: float | None = None, log=print) -> dict:
    """Render the portraits of identities ``seeds`` -> {"images": [N, size, size, 3] uint8, "labels": [N, G] int64,
    "seeds": [N], "views": [N] view class names}. workers > 0: rigs built in that many CPU processes, whose heads
    are rendered on ``device`` here (the GPU), or in the workers on the CPU with render_in_workers (no GPU
    renderer build needed: gsplat compiles its CUDA kernels on first use). max_seconds: stop after that long with
    the identities done so far."""
    from ..gaussians import Gaussians

    seeds = [int(s) for s in seeds]
    dev = torch.device(device)
    images, labels, out_seeds, views = [], [], [], []
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(workers) if workers > 0 else None
    try:
        rsize = size if (pool is not None and render_in_workers) else 0
        n = len(seeds)
        results = (pool.map(_pose_identity, seeds, [per_identity] * n, [rsize] * n, chunksize=2) if pool
                   else (_pose_identity(s, per_identity) for s in seeds))
        for k, (seed, plan, heads, labs) in enumerate(results):
            for p, head, lab in zip(plan, heads, labs):
                img = head if rsize else _render(Gaussians(*(t.to(dev) for t in head)), p, size)
                images.append(img.cpu())
                labels.append(lab)
                out_seeds.append(seed)
                views.append(p["view"])
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                if log is not None:
                    log(f"portraits: time budget reached after {k + 1} of {len(seeds)} identities")
                break
            if log is not None and (k + 1) % 200 == 0:
                log(f"portraits: {k + 1}/{len(seeds)} identities, {len(images)} images, {time.perf_counter() - t0:.0f} s")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return {"images": torch.stack(images).numpy(), "labels": np.stack(labels), "seeds": np.array(out_seeds),
            "views": views}
