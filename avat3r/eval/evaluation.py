"""``avat3r eval``: few-shot avatar creation on held-out identities (paper Sec. 4.3, Table 1) and ablation
tables (Tables 2-3), with the prior-only and static baselines evaluated on the same samples.

    avat3r eval --checkpoint weights/ --num-samples 24 --out eval/            # Table 1: model + baselines
    avat3r eval --runs runs/full runs/no_pos_skip runs/no_col_skip ... --out eval/ablations   # Tables 2-3

Protocol: the test split (SynthHeads: the 12 hold-out identities), ``num_samples`` samples drawn with a fixed
seed, each = 4 input views showing different expressions (inconsistent inputs) + supervision views of a
novel target expression from novel viewpoints. Every method sees exactly the same samples. Metrics per
supervision image (PSNR, SSIM, LPIPS, AKD, CSIM), and per video (tErr) when the dataset can render one:
``video_frames`` frames of a smooth expression sequence from a frontal camera, one per held-out identity.
Results are also given for the "expressive" subset (targets whose code differs from neutral by > 0.2 in some
dimension), where the static baseline must fall behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import Avat3rError, CheckpointError, InputError
from ..train.batch import Batch, collate, predict_gaussians
from ..train.config import TrainConfig
from .baselines import neutral_expression, prior_only_gaussians
from .metrics import MetricAccumulator
from .tables import ablation_tables, table1, write_tables

__all__ = ["EvalConfig", "evaluate", "load_for_eval", "eval_main", "METHODS"]

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


def load_for_eval(path, device="cpu"):
    """(model, train_config dict or None) from a weights folder (config.json + model.safetensors, or a Hub
    repo id) or a training checkpoint / run folder."""
    from ..train.checkpoint import latest_checkpoint
    from ..train.export import model_from_checkpoint

    p = Path(path)
    if p.exists() and latest_checkpoint(p) is not None and not (p / "config.json").is_file():
        model, meta = model_from_checkpoint(p, device)
        return model, meta["train_config"]
    from ..model import Avat3rModel

    model = Avat3rModel.from_pretrained(str(path), device=device).eval()
    tc = None
    if (p / "training.json").is_file():
        tc = json.loads((p / "training.json").read_text()).get("train_config")
    return model, tc


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


def _dataset_for(train_cfg: dict | None, model, cfg: EvalConfig, overrides: dict):
    from ..train.trainer import build_dataset

    tc = TrainConfig.from_dict(dict(train_cfg)) if train_cfg else TrainConfig()
    tc = tc.replace(consistent_inputs=False, seed=cfg.seed, **overrides)  # evaluation always uses inconsistent inputs
    ds = build_dataset(tc, cfg.split, input_size=tc.input_size or model.config.image_size, length=max(cfg.num_samples, 12),
                       device=cfg.device)  # on CUDA the samples are rendered on the GPU
    return ds, tc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avat3r eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="weights folder (config.json + model.safetensors), Hub id, or training run/checkpoint")
    p.add_argument("--runs", nargs="*", default=None, help="training run folders of the ablations (Tables 2-3); each is evaluated as 'avat3r'")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--num-samples", type=int, default=24)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--video-frames", type=int, default=24, help="frames per identity video for tErr (0 = off)")
    p.add_argument("--video-identities", type=int, default=None)
    p.add_argument("--face-views", type=int, default=2, help="supervision views per sample that get AKD/CSIM (-1 = all)")
    p.add_argument("--no-faces", action="store_true", help="skip AKD/CSIM")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--supervision-size", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="eval", help="folder for eval.md / eval.json (ablations.md / ablations.json)")
    p.add_argument("--quiet", action="store_true")
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``avat3r eval``: prints the tables and writes them (markdown + JSON) to --out."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.checkpoint and not args.runs:
        print("avat3r eval: error: give --checkpoint (Table 1) and/or --runs (ablation tables)", file=sys.stderr)
        return 2
    cfg = EvalConfig(split=args.split, num_samples=args.num_samples, seed=args.seed, faces=not args.no_faces,
                     face_views=None if args.face_views < 0 else args.face_views, video_frames=args.video_frames,
                     video_identities=args.video_identities, lpips_weights=args.lpips_weights, device=args.device)
    overrides = {k: v for k, v in (("input_size", args.input_size), ("supervision_size", args.supervision_size)) if v}
    from ..train.lpips import try_load_lpips

    lpips = try_load_lpips("vgg", args.lpips_weights)
    if lpips is not None:
        lpips = lpips.to(args.device)
    try:
        if args.checkpoint:
            methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
            model, tc = load_for_eval(args.checkpoint, args.device)
            ds, tcfg = _dataset_for(tc, model, cfg, overrides)
            results = evaluate(model, ds, cfg, use_prior=tcfg.use_prior, lpips=lpips, methods=methods, progress=not args.quiet)
            md = table1(results)
            print(md)
            paths = write_tables(args.out, {"results": results, "checkpoint": str(args.checkpoint), "eval": vars(args)}, md, "eval")
            print(f"wrote {paths[0]} and {paths[1]}")
        if args.runs:
            runs = {}
            for r in args.runs:
                model, tc = load_for_eval(r, args.device)
                if tc is None:
                    raise CheckpointError(f"{r}: no training config found; --runs needs training run folders")
                ds, tcfg = _dataset_for(tc, model, cfg, overrides)
                res = evaluate(model, ds, cfg, use_prior=tcfg.use_prior, lpips=lpips, methods=("avat3r",), progress=not args.quiet)
                runs[tcfg.run] = res["avat3r"]
                if tcfg.run == "full":  # the full recipe is also the layer-order row of its own order
                    runs.setdefault(model.config.layer_order, res["avat3r"])
            md = ablation_tables(runs)
            print(md)
            paths = write_tables(args.out, {"runs": runs, "eval": vars(args)}, md, "ablations")
            print(f"wrote {paths[0]} and {paths[1]}")
    except Avat3rError as e:
        print(f"avat3r eval: error: {e}", file=sys.stderr)
        return 2
    return 0
