"""Ground-truth videos for the temporal metric (the paper renders one 100-frame frontal video per held-out person
for JOD): a held-out identity's 4 input views (a regular evaluation sample) + F frames of a smooth expression
sequence through the SynthHeads presets, rendered from a frontal head-centric camera.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["video_sample", "expression_path", "KEYFRAMES"]

KEYFRAMES = ("neutral", "smile", "surprise", "kiss", "angry", "jaw_open", "eyes_closed", "neutral")


def expression_path(presets: dict, frames: int, keys=KEYFRAMES) -> np.ndarray:
    """[F, C] codes moving through ``keys`` with cosine easing (smooth, so a good model changes smoothly)."""
    keys = [k for k in keys if k in presets] or list(presets)[:2]
    kf = np.stack([np.asarray(presets[k], np.float32) for k in keys])
    t = np.linspace(0, len(kf) - 1, frames)
    i = np.minimum(np.floor(t).astype(int), len(kf) - 2)
    w = (1 - np.cos(np.pi * (t - i))) / 2
    return (kf[i] * (1 - w)[:, None] + kf[i + 1] * w[:, None]).astype(np.float32)


def video_sample(dataset, k: int, frames: int) -> dict | None:
    """Sample k's inputs + ``frames`` frontal ground-truth frames (target_* keys, target_expressions [F, C]);
    None when the dataset is not SynthHeads (no renderable ground truth)."""
    sampler = getattr(dataset, "sampler", None)
    if sampler is None or not hasattr(sampler, "seeds"):
        return None
    from ..cameras import Cameras, intrinsics_from_fov, look_at
    from ..data.dome import HEAD_BOX_CENTER, head_crops
    from ..data.expressions import EXPRESSION_PRESETS
    from ..data.synthheads import get_rig
    from ..render import render

    s = dict(sampler.sample(k))
    ident = s["identity_seed"]
    size = sampler.config.target_size
    dev = sampler.device
    center = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    w2c = look_at(center + torch.tensor([0.0, 0.0, 1.0]), center)
    cam = head_crops(Cameras(intrinsics_from_fov(20.0, 1024), w2c, 1024, 1024), size)
    cams = Cameras(cam.K.expand(frames, 3, 3), cam.world_to_cam.expand(frames, 4, 4), size, size)
    z = expression_path(EXPRESSION_PRESETS, frames)
    rig = get_rig(ident, dev)
    imgs = []
    with torch.no_grad():
        for zi in z:
            g = rig.pose(zi[None])[0]
            imgs.append(render(g, cam.to(dev), backend=sampler.config.backend).color)
    s["target_images"] = torch.cat(imgs).permute(0, 3, 1, 2).contiguous()
    s["target_cameras"] = cams.to(dev)
    s["target_expression"] = torch.as_tensor(z[0], device=dev)
    s["target_expressions"] = z
    s.pop("target_masks", None)
    return s
