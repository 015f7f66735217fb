"""Evaluation: few-shot avatar creation on held-out identities (paper Sec. 4.3, Table 1) and ablation
tables (Tables 2-3), with the prior-only and static baselines evaluated on the same samples.

    evaluate(model, dataset, EvalConfig(...)) -> {method: metrics}   # the library; the command line
    avat3r eval --checkpoint weights/ ...                              # is avat3r.eval.__main__

Protocol: the test split (SynthHeads: the 12 hold-out identities), ``num_samples`` samples drawn with a fixed
seed, each = 4 input views showing different expressions (inconsistent inputs) + supervision views of a
novel target expression from novel viewpoints. Every method sees exactly the same samples. Metrics per
supervision image (PSNR, SSIM, LPIPS, AKD, CSIM), and per video (tErr) when the dataset can render one:
``video_frames`` frames of a smooth expression sequence from a frontal camera, one per held-out identity.
Results are also given for the "expressive" subset (targets whose code differs from neutral by > 0.2 in some
dimension), where the static baseline must fall behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..data.batch import Batch, collate, predict_gaussians
from ..errors import InputError
from .baselines import neutral_expression, prior_only_gaussians
from .metrics import MetricAccumulator

__all__ = ["EvalConfig", "evaluate", "predict", "METHODS"]

log = logging.getLogger("avat3r.eval")

METHODS = ("avat3r", "prior_only", "static")


@dataclass
class EvalConfig:
    split: str = "test"
    num_samples: int = 24  # paper: 1000 target expressions over the 12 hold-out persons
    seed: int = 1234  # sample selection (same for every method and run)
    methods: tuple[str, ...] = METHODS
    faces: bool = True  # AKD / CSIM (needs dlib + face-recognition-models)
    face_views: int | None = 2  # face metrics on the first k supervision views of a sample (None = all)
    video_frames: int = 24  # frames per held-out identity video (0 = no video metric); paper: 100
    video_identities: int | None = None  # None = all identities the dataset offers videos for
    expressive_threshold: float = 0.2
    lpips_weights: str | None = None
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


def _hwc(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] -> [N, H, W, 3] float32 numpy in [0, 1]."""
    return x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def _render(gaussians, cams, background) -> torch.Tensor:
    from ..render import render

    return render(gaussians.to(torch.float32), cams, background=background).color.permute(0, 3, 1, 2)


class _Evaluator:
    def __init__(self, cfg: EvalConfig, lpips=None):
        self.cfg = cfg
        self.lpips = lpips
        if cfg.faces:
            from .faces import faces_available

            if not faces_available():
                log.warning("face metrics OFF: dlib / face-recognition-models not installed "
                            "(pip install dlib-bin face-recognition-models)")
                cfg.faces = False
        self.acc: dict[str, MetricAccumulator] = {}
        self.seconds: dict[str, float] = {}

    def acc_for(self, key: str) -> MetricAccumulator:
        if key not in self.acc:
            self.acc[key] = MetricAccumulator(lpips=self.lpips, faces=self.cfg.faces)
        return self.acc[key]

    def gt_faces(self, gt: np.ndarray) -> dict | None:
        if not self.cfg.faces:
            return None
        from .faces import observe

        k = len(gt) if self.cfg.face_views is None else min(self.cfg.face_views, len(gt))
        return {i: observe(gt[i]) for i in range(k)}


@torch.no_grad()
def predict(method: str, model, batch: Batch, use_prior: bool, background) -> torch.Tensor:
    """Renderings [B, T, 3, H, W] of one method at the batch's supervision cameras."""
    if method == "prior_only":
        gs = prior_only_gaussians(batch)
    else:
        b = batch if use_prior else batch.without_prior()
        if method == "static":
            b = b.with_expression(neutral_expression(model).to(b.expression.device))
        elif method != "avat3r":
            raise InputError(f"unknown method {method!r}; choose from {METHODS}")
        gs = predict_gaussians(model, b)
    return torch.stack([_render(g, c, background) for g, c in zip(gs, batch.target_cameras)])


@torch.no_grad()
def predict_video(method: str, model, batch: Batch, cameras, expressions: torch.Tensor, use_prior: bool, background) -> torch.Tensor:
    """Frames [F, 3, H, W] of one avatar (batch of 1) under F expressions [F, C] seen by F cameras."""
    if method == "prior_only":
        g = prior_only_gaussians(batch)[0]
        return torch.cat([_render(g, cameras[i], background) for i in range(len(cameras))])
    b = batch if use_prior else batch.without_prior()
    net = model.module if hasattr(model, "module") else model
    state = net.encode(b.images, b.positions, b.confidence, b.plucker, b.features)
    frames = []
    for i in range(len(cameras)):
        z = neutral_expression(net) if method == "static" else expressions[i]
        maps = net.animate(state, z[None].to(b.images.device))
        frames.append(_render(net.to_gaussians(maps)[0], cameras[i], background))
    return torch.cat(frames)


def evaluate(model, dataset, cfg: EvalConfig | None = None, *, use_prior: bool = True, lpips=None,
             methods: Sequence[str] | None = None, progress: bool = True) -> dict[str, dict]:
    """Metrics of each method on ``cfg.num_samples`` samples of ``dataset`` -> {method[@subset]: summary}."""
    cfg = cfg or EvalConfig()
    methods = tuple(methods or cfg.methods)
    dev = torch.device(cfg.device)
    if model is not None:
        model = model.to(dev).eval()
    elif any(m != "prior_only" for m in methods):
        raise InputError("evaluate: a model is needed for methods other than prior_only")
    ev = _Evaluator(cfg, lpips)
    n = min(cfg.num_samples, len(dataset))
    idx = np.random.default_rng(cfg.seed).choice(len(dataset), size=n, replace=False) if n < len(dataset) else np.arange(n)
    it = idx
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(idx, desc="eval", unit="sample")
    for i in it:
        batch = collate([dataset[int(i)]]).to(dev)
        gt = _hwc(batch.target_images[0])
        gt_faces = ev.gt_faces(gt)
        neutral = neutral_expression(model) if model is not None else torch.zeros_like(batch.expression[0].cpu())
        expressive = bool((batch.expression[0].cpu() - neutral).abs().max() > cfg.expressive_threshold)
        for m in methods:
            t0 = time.perf_counter()
            pred = _hwc(predict(m, model, batch, use_prior, cfg.background)[0])
            ev.seconds[m] = ev.seconds.get(m, 0.0) + time.perf_counter() - t0
            ev.acc_for(m).update(pred, gt, gt_faces)
            if expressive:
                ev.acc_for(f"{m}@expressive").update(pred, gt, gt_faces)
    if cfg.video_frames > 1:
        from .video import video_sample

        n_ids = len(getattr(getattr(dataset, "sampler", None), "seeds", [])) or 0
        if cfg.video_identities is not None:
            n_ids = min(n_ids, cfg.video_identities)
        if n_ids == 0:
            log.warning("the dataset offers no ground-truth videos (SynthHeads only): no video metric (tErr)")
        for k in range(n_ids):
            v = video_sample(dataset, k, cfg.video_frames)
            if v is None:
                break
            batch = collate([v]).to(dev)
            gt = batch.target_images[0]
            z = torch.as_tensor(np.asarray(v["target_expressions"]), dtype=torch.float32, device=dev)
            for m in methods:
                frames = predict_video(m, model, batch, batch.target_cameras[0], z, use_prior, cfg.background)
                ev.acc_for(m).update_video(_hwc(frames), _hwc(gt))
    out = {}
    for k, a in ev.acc.items():
        s = a.summary()
        base = k.split("@")[0]
        if "@" not in k and base in ev.seconds:
            s["seconds_per_sample"] = ev.seconds[base] / max(1, n)
        out[k] = s
    return out
