"""Evaluation metrics of the paper's Sec. 4.2 / Table 1: PSNR, SSIM, LPIPS, AKD, CSIM, and a video metric.

- PSNR, SSIM (Gaussian 11x11, sigma 1.5; equals scikit-image, see ``avat3r.similarity``), LPIPS (VGG, only
  when its weights are present; see ``avat3r.model.lpips``).
- AKD: mean Euclidean distance in pixels between the 68 dlib landmarks of the rendering and of the ground
  truth (the paper uses PIPNet keypoints, which need weights from the internet).
- CSIM: cosine similarity of dlib's 128-d face-recognition embeddings (the paper uses ArcFace). dlib's
  descriptors are not zero-centred, so different people still score ~0.8-0.9: compare CSIM values across
  methods, not with the paper's ArcFace numbers.
- tErr (stands in for the paper's JOD, which needs the ColorVideoVDP/JOD toolbox): the temporal-gradient error
  ``mean |(p_t - p_{t-1}) - (g_t - g_{t-1})|`` x 100 over a rendered video p and its ground truth g (lower is
  better; flicker and temporal lag both raise it). ``flicker`` = mean |p_t - p_{t-1}| relative to the ground truth's.

All functions take images as HxWx3 (or NxHxWx3) float arrays/tensors in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError
from ..similarity import ssim as _ssim

__all__ = [
    "psnr", "ssim", "temporal_error", "flicker", "face_pair", "MetricAccumulator", "METRICS", "to_nchw",
]

#: metric name -> (display name, higher is better)
METRICS = {
    "psnr": ("PSNR↑", True), "ssim": ("SSIM↑", True), "lpips": ("LPIPS↓", False), "terr": ("tErr↓", False),
    "akd": ("AKD↓", False), "csim": ("CSIM↑", True),
}


def to_nchw(x) -> torch.Tensor:
    """[H, W, 3] or [N, H, W, 3] array/tensor -> float32 [N, 3, H, W] (CPU)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise InputError(f"metrics expect images [H, W, 3] or [N, H, W, 3], got {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).contiguous()


def psnr(pred, gt, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB per image [N] (inf for identical images)."""
    p, g = to_nchw(pred), to_nchw(gt)
    mse = (p - g).pow(2).flatten(1).mean(1).double()
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(data_range**2 / mse.numpy()))


def ssim(pred, gt) -> np.ndarray:
    """SSIM per image [N] (scikit-image's Gaussian SSIM, data_range 1)."""
    return _ssim(to_nchw(pred), to_nchw(gt), reduction="none").double().numpy()


def temporal_error(pred_frames, gt_frames) -> float:
    """Temporal-gradient error x 100 of a video pred [T, H, W, 3] vs its ground truth (T >= 2). Lower is better."""
    p, g = to_nchw(pred_frames), to_nchw(gt_frames)
    if p.shape != g.shape or p.shape[0] < 2:
        raise InputError(f"temporal_error needs two videos of equal shape with >= 2 frames, got {tuple(p.shape)}, {tuple(g.shape)}")
    return float(((p[1:] - p[:-1]) - (g[1:] - g[:-1])).abs().mean() * 100)


def flicker(pred_frames, gt_frames) -> float:
    """Mean |p_t - p_{t-1}| divided by the ground truth's (1 = as much change as the ground truth)."""
    p, g = to_nchw(pred_frames), to_nchw(gt_frames)
    return float((p[1:] - p[:-1]).abs().mean() / (g[1:] - g[:-1]).abs().mean().clamp_min(1e-8))


def face_pair(pred: np.ndarray, gt: np.ndarray, gt_obs=False) -> dict | None:
    """AKD (px) and CSIM of one rendering/ground-truth pair [H, W, 3]; None when the ground truth shows no face.

    gt_obs: the ground truth's ``faces.observe`` result when already known (None = no face), else False."""
    from .faces import observe

    g = observe(np.asarray(gt)) if gt_obs is False else gt_obs
    if g is None:
        return None
    p = observe(np.asarray(pred), fallback_box=g.box)
    akd = float(np.linalg.norm(p.landmarks - g.landmarks, axis=1).mean())
    csim = float(p.embedding @ g.embedding / (np.linalg.norm(p.embedding) * np.linalg.norm(g.embedding) + 1e-12))
    return {"akd": akd, "csim": csim, "pred_detected": p.detected}


@dataclass
class MetricAccumulator:
    """Collects per-image metrics of one method; ``summary()`` -> means and counts.

    lpips: an LPIPS module or None (then LPIPS is reported as missing); faces: compute AKD/CSIM (dlib)."""

    lpips: torch.nn.Module | None = None
    faces: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def _add(self, key: str, vals) -> None:
        self.values.setdefault(key, []).extend(float(v) for v in np.atleast_1d(vals))

    def update(self, pred, gt, gt_faces: dict | None = None) -> None:
        """pred, gt [N, H, W, 3] (or [H, W, 3]) in [0, 1]. gt_faces: {image index: cached ``faces.observe(gt[i])``};
        when given, the face metrics run on those images only (None: on all images)."""
        p, g = to_nchw(pred), to_nchw(gt)
        self._add("psnr", np.minimum(psnr(pred, gt), 100.0))  # cap inf (identical images) so means stay finite
        self._add("ssim", ssim(pred, gt))
        if self.lpips is not None:
            dev = next(self.lpips.parameters()).device
            with torch.no_grad():
                self._add("lpips", self.lpips(p.to(dev), g.to(dev)).cpu().numpy())
        if self.faces:
            pn, gn = p.permute(0, 2, 3, 1).numpy(), g.permute(0, 2, 3, 1).numpy()
            for i, (a, b) in enumerate(zip(pn, gn)):
                if gt_faces is not None and i not in gt_faces:
                    continue
                r = face_pair(a, b, False if gt_faces is None else gt_faces[i])
                self.counts["face_pairs"] = self.counts.get("face_pairs", 0) + 1
                if r is None:
                    self.counts["gt_no_face"] = self.counts.get("gt_no_face", 0) + 1
                    continue
                self._add("akd", r["akd"])
                self._add("csim", r["csim"])
                if not r["pred_detected"]:
                    self.counts["pred_no_face"] = self.counts.get("pred_no_face", 0) + 1
        self.counts["images"] = self.counts.get("images", 0) + p.shape[0]

    def update_video(self, pred_frames, gt_frames) -> None:
        self._add("terr", temporal_error(pred_frames, gt_frames))
        self._add("flicker", flicker(pred_frames, gt_frames))
        self.counts["videos"] = self.counts.get("videos", 0) + 1

    def summary(self) -> dict:
        out = {k: (float(np.mean(v)) if v else math.nan) for k, v in self.values.items()}
        out["counts"] = dict(self.counts)
        return out
