"""Train the driving regressor on SynthHeads (CPU, minutes): ``python -m avat3r.drive.train --out weights/drive``.

Data (``avat3r.drive.synth``): for each training identity, its landmark Gaussians (dlib on a frontal neutral
render), then random expression codes (the SynthHeads sampler) -> 3D landmarks -> a random head pose and camera
-> 2D landmarks + 0.6 px noise -> pose-free features, minus the same identity's neutral features seen under
another random pose (what the driver's calibration does with the first frames). Target: the code without gaze
(landmarks do not see the eyes' direction). Validation on held-out identities; the card records everything.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ..data.expressions import EXPRESSION_NAMES, sample_expressions
from .features import landmark_features
from .regressor import DriveRegressor, RegressorConfig
from .synth import landmark_gaussians, project, random_head_pose, synth_landmarks

DRIVEN = [n for n in EXPRESSION_NAMES if not n.startswith("gaze")]


def make_samples(seed: int, index: np.ndarray, n: int, rng: np.random.Generator, noise_px: float = 0.6,
                 n_neutral: int = 6):
    """-> (features [n, 136] minus neutral, codes [n, C_driven], poses [n, 3])."""
    codes = sample_expressions(rng, n).astype(np.float32)
    codes[: max(1, n // 10)] = 0  # some neutral frames: the driver must return zeros at rest
    pts = synth_landmarks(seed, index, np.concatenate([np.zeros((1, codes.shape[1]), np.float32), codes]))
    neutral = []
    for _ in range(n_neutral):
        K, T, _ = random_head_pose(rng)
        neutral.append(landmark_features(project(pts[0], K, T) + rng.normal(0, noise_px, (68, 2)), K)[0])
    feats, poses = [], []
    for i in range(n):
        K, T, pose = random_head_pose(rng)
        f, _ = landmark_features(project(pts[i + 1], K, T) + rng.normal(0, noise_px, (68, 2)), K)
        feats.append(f - neutral[rng.integers(n_neutral)])
        poses.append(pose)
    keep = [EXPRESSION_NAMES.index(k) for k in DRIVEN]
    return np.stack(feats), codes[:, keep], np.asarray(poses, np.float32)


def _samples_job(job):
    seed, idx, n, rng_seed = job
    torch.set_num_threads(1)
    return make_samples(seed, idx, n, np.random.default_rng(rng_seed))


def main(argv=None) -> None:
    from ..data.identity import split_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="weights/drive")
    ap.add_argument("--identities", type=int, default=16, help="training identities (SynthHeads train split)")
    ap.add_argument("--val-identities", type=int, default=3, help="held-out identities (validation split)")
    ap.add_argument("--samples", type=int, default=300, help="samples per identity")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--correspondences", default=None, help="npz {seed: [68] indices} from an earlier run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1, help="processes making training samples (one identity each)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    corr = dict(np.load(args.correspondences)) if args.correspondences else {}

    def identities(split, k):
        out = []
        for s in split_seeds(split):
            if len(out) == k:
                break
            idx = corr.get(str(s))
            if idx is None:
                idx = landmark_gaussians(int(s))
            if idx is not None:
                out.append((int(s), idx))
        return out

    train_ids, val_ids = identities("train", args.identities), identities("validation", args.val_identities)
    t_corr = time.time() - t0
    jobs = [(s, idx, args.samples, k) for k, (s, idx) in enumerate(train_ids)]
    jobs += [(s, idx, args.samples // 2, 1000 + k) for k, (s, idx) in enumerate(val_ids)]
    if args.jobs > 1:  # one identity per process (building an identity's rig dominates the cost)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            made = pool.map(_samples_job, jobs)
    else:
        made = [_samples_job(j) for j in jobs]
    data, val = made[: len(train_ids)], made[len(train_ids):]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    y = torch.tensor(np.concatenate([d[1] for d in data]))
    xv = torch.tensor(np.concatenate([d[0] for d in val]))
    yv = torch.tensor(np.concatenate([d[1] for d in val]))
    t_data = time.time() - t0 - t_corr
    lo = [-1.0 if n.startswith("gaze") else 0.0 for n in DRIVEN]
    hi = [1.0] * len(DRIVEN)
    cfg = RegressorConfig(names=DRIVEN, lo=lo, hi=hi, feature_scale=float(x.abs().mean()) * 3)
    model = DriveRegressor(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    g = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        b = torch.randint(0, len(x), (256,), generator=g)
        loss = torch.nn.functional.smooth_l1_loss(model.net(x[b] / cfg.feature_scale), y[b], beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        err_v = (model(xv) - yv).abs().mean(0).numpy()
        err_t = (model(x) - y).abs().mean(0).numpy()
    out = model.save(args.out)
    card = {
        "what": "driving regressor: pose-free dlib landmark features minus neutral -> SynthHeads expression code",
        "trained_on": f"SynthHeads, {len(train_ids)} train identities x {args.samples} random expressions, random head "
                      "pose (yaw +-30, pitch +-15, roll +-10 deg) and camera, 0.6 px landmark noise; landmarks carried "
                      "by rig Gaussians found with dlib on a frontal neutral render",
        "train_identities": [s for s, _ in train_ids], "validation_identities": [s for s, _ in val_ids],
        "steps": args.steps, "batch": 256, "machine": f"CPU, {args.threads} threads, {args.jobs} sample processes "
                                                        "(a 2-core machine shared with other jobs)",
        "seconds": {"correspondences": round(t_corr, 1), "data": round(t_data, 1), "total": round(time.time() - t0, 1)},
        "validation_mae_per_dim": {n: round(float(e), 4) for n, e in zip(DRIVEN, err_v)},
        "validation_mae": round(float(err_v.mean()), 4), "train_mae": round(float(err_t.mean()), 4),
        "validation_mae_always_zero": round(float(yv.abs().mean()), 4),
    }
    (out / "training.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
