"""Train the driving regressor on SynthHeads (CPU, minutes): ``python -m avat3r.drive.train --out weights/drive``.

Data (``avat3r.drive.synth``): for each training identity, its landmark Gaussians (dlib on a frontal neutral
render), then random expression codes (the SynthHeads sampler) -> 3D landmarks -> a random head pose and camera
-> 2D landmarks + 0.6 px noise -> pose-free features, minus the same identity's neutral features seen under
a few near-frontal neutral frames (what the driver's calibration does with the first frames). Each landmark's motion is scaled
by a random factor in [0.75, 1.25] per sample: where a landmark sits on the rig differs between identities (and
between dlib and the rig), and the regressor must not learn one identity's attachment. Target: the code without gaze
(landmarks do not see the eyes' direction). With ``--rendered N``, N renders per identity with dlib's landmarks
detected on them (``avat3r.drive.rendered``: what dlib does on turned heads and moving eyes) make half of each batch,
and with ``--gaze`` the same renders fit the gaze gains (``gaze.json``). Validation on held-out identities; a
dimension the regressor reads worse than always answering neutral there (on the renders when there are any) is
switched off (its range clipped to 0). The card records everything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ..data.expressions import EXPRESSION_NAMES, sample_expressions
from .features import landmark_features
from .regressor import DriveRegressor, RegressorConfig
from .synth import landmark_gaussians, project, random_head_pose, synth_landmarks

DRIVEN = [n for n in EXPRESSION_NAMES if not n.startswith("gaze")]


def make_samples(seed: int, index: np.ndarray, n: int, rng: np.random.Generator, noise_px: float = 0.6,
                 n_neutral: int = 6, jitter: float = 0.25):
    """-> (features [n, 136] minus neutral, codes [n, C_driven], poses [n, 3])."""
    codes = sample_expressions(rng, n).astype(np.float32)
    codes[: max(1, n // 10)] = 0  # some neutral frames: the driver must return zeros at rest
    pts = synth_landmarks(seed, index, np.concatenate([np.zeros((1, codes.shape[1]), np.float32), codes]))
    def calibration():  # the driver's: the median of the first frames' features (here 5, each with a slight pose)
        return np.median([landmark_features(project(pts[0], K, T) + rng.normal(0, noise_px, (68, 2)), K)[0]
                          for K, T, _ in (random_head_pose(rng, 5, 5, 3) for _ in range(5))], 0)

    neutral = [calibration() for _ in range(n_neutral)]
    feats, poses = [], []
    for i in range(n):
        K, T, pose = random_head_pose(rng)
        p = pts[0] + (pts[i + 1] - pts[0]) * rng.uniform(1 - jitter, 1 + jitter, (68, 1))
        f, _ = landmark_features(project(p, K, T) + rng.normal(0, noise_px, (68, 2)), K)
        feats.append(f - neutral[rng.integers(n_neutral)])
        poses.append(pose)
    keep = [EXPRESSION_NAMES.index(k) for k in DRIVEN]
    return np.stack(feats), codes[:, keep], np.asarray(poses, np.float32)


def _samples_job(job):
    seed, idx, n, rng_seed = job
    torch.set_num_threads(1)
    return make_samples(seed, idx, n, np.random.default_rng(rng_seed))


def main(argv=None) -> None:
    from pathlib import Path

    from ..data.identity import split_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="weights/drive")
    ap.add_argument("--identities", type=int, default=16, help="training identities (SynthHeads train split)")
    ap.add_argument("--val-identities", type=int, default=3, help="held-out identities (validation split)")
    ap.add_argument("--samples", type=int, default=300, help="samples per identity")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--correspondences", default=None, help="npz {seed: [68] indices} from an earlier run")
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--samples-cache", default=None, help="npz of made samples: read when it exists, else written")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1, help="processes making training samples (one identity each)")
    ap.add_argument("--rendered", type=int, default=0, help="rendered samples per training identity (dlib's "
                    "landmarks on renders with random head turns, avat3r.drive.rendered); 0: none")
    ap.add_argument("--rendered-identities", type=int, default=12, help="training identities that get rendered samples")
    ap.add_argument("--rendered-val", type=int, default=60, help="rendered samples per validation identity")
    ap.add_argument("--rendered-share", type=float, default=0.5, help="share of each batch from rendered samples")
    ap.add_argument("--gaze", action="store_true", help="fit the gaze gains on the rendered samples' eyes and write "
                    "gaze.json (a dimension whose best gain is 0 on the training identities stays off)")
    ap.add_argument("--rendered-cache", default=None, help="npz of rendered samples: read when it exists, else written")
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
    Path(args.out).mkdir(parents=True, exist_ok=True)  # the landmark Gaussians used, for --correspondences
    np.savez(Path(args.out) / "correspondences.npz", **{str(s): idx for s, idx in train_ids + val_ids})
    jobs = [(s, idx, args.samples, k) for k, (s, idx) in enumerate(train_ids)]
    jobs += [(s, idx, args.samples // 2, 1000 + k) for k, (s, idx) in enumerate(val_ids)]
    cache = Path(args.samples_cache) if args.samples_cache else None
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            made = [(z[f"f{s}"], z[f"c{s}"], z[f"p{s}"]) for s, *_ in jobs]
    elif args.jobs > 1:  # one identity per process (building an identity's rig dominates the cost)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            made = pool.map(_samples_job, jobs)
    else:
        made = [_samples_job(j) for j in jobs]
    if cache is not None and not cache.is_file():
        np.savez(cache, **{f"{k}{s}": m[i] for (s, *_), m in zip(jobs, made) for i, k in enumerate("fcp")})
    data, val = made[: len(train_ids)], made[len(train_ids):]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    y = torch.tensor(np.concatenate([d[1] for d in data]))
    xv = torch.tensor(np.concatenate([d[0] for d in val]))
    yv = torch.tensor(np.concatenate([d[1] for d in val]))
    xr = yr = xrv = yrv = None
    if args.rendered:
        xr, yr, xrv, yrv, gaze_card = _rendered_data(args, [s for s, _ in val_ids])
    t_data = time.time() - t0 - t_corr
    lo = [-1.0 if n.startswith("gaze") else 0.0 for n in DRIVEN]
    hi = [1.0] * len(DRIVEN)
    cfg = RegressorConfig(names=DRIVEN, lo=lo, hi=hi, feature_scale=float(x.abs().mean()) * 3, dropout=args.dropout)
    model = DriveRegressor(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    g = torch.Generator().manual_seed(0)
    n_r = int(round(256 * args.rendered_share)) if xr is not None else 0
    for step in range(args.steps):
        b = torch.randint(0, len(x), (256 - n_r,), generator=g)
        xb, yb = x[b], y[b]
        if n_r:  # rendered samples: what dlib does on a turned head, which the rig's landmarks cannot show
            br = torch.randint(0, len(xr), (n_r,), generator=g)
            xb, yb = torch.cat([xb, xr[br]]), torch.cat([yb, yr[br]])
        loss = torch.nn.functional.smooth_l1_loss(model.net(xb / cfg.feature_scale), yb, beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():  # a dimension it reads worse than always answering neutral on new identities: switched off
        xo, yo = (xrv, yrv) if xrv is not None else (xv, yv)  # rendered: closer to what the driver sees
        off = [n for n, e, z in zip(DRIVEN, (model(xo) - yo).abs().mean(0), yo.abs().mean(0)) if e >= z]
        for n in off:
            model.hi[DRIVEN.index(n)] = model.lo[DRIVEN.index(n)] = 0.0
            cfg.hi[DRIVEN.index(n)] = cfg.lo[DRIVEN.index(n)] = 0.0
        err_v = (model(xv) - yv).abs().mean(0).numpy()
        err_t = (model(x) - y).abs().mean(0).numpy()
        err_r = (model(xrv) - yrv).abs().mean(0).numpy() if xrv is not None else None
    out = model.save(args.out)
    card = {
        "what": "driving regressor: pose-free dlib landmark features minus neutral -> SynthHeads expression code",
        "trained_on": f"SynthHeads, {len(train_ids)} train identities x {args.samples} random expressions, random head "
                      "pose (yaw +-30, pitch +-15, roll +-10 deg) and camera (face 110-330 px wide in 512 px), 0.6 px "
                      "landmark noise, each landmark's motion scaled by U(0.75, 1.25); landmarks carried by rig "
                      "Gaussians found with dlib on a frontal neutral render, eyelid edges from the rig's lid formula",
        "train_identities": [s for s, _ in train_ids], "validation_identities": [s for s, _ in val_ids],
        "steps": args.steps, "batch": 256, "weight_decay": args.weight_decay, "dropout": args.dropout,
        "samples_per_identity": args.samples,
        "command": "python -m avat3r.drive.train " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"CPU, {args.threads} threads, {args.jobs} sample processes (a 2-core machine shared with other jobs)",
        "seconds": {"correspondences": round(t_corr, 1), "data": round(t_data, 1), "total": round(time.time() - t0, 1)},
        "switched_off": off,  # validation error >= always-neutral's: output clipped to 0
        "validation_mae_per_dim": {n: round(float(e), 4) for n, e in zip(DRIVEN, err_v)},
        "validation_mae": round(float(err_v.mean()), 4), "train_mae": round(float(err_t.mean()), 4),
        "validation_mae_always_zero": round(float(yv.abs().mean()), 4),
        "validation_mae_per_dim_always_zero": {n: round(float(e), 4) for n, e in zip(DRIVEN, yv.abs().mean(0))},
    }
    if err_r is not None:
        card["trained_on"] += (f"; plus {args.rendered} rendered samples per identity for the first "
                               f"{args.rendered_identities} identities of the train split (dlib's landmarks on 256 px "
                               "renders, head yaw +-30, pitch +-15, roll +-10 deg; the eyes look everywhere for the "
                               f"first half of them, near the camera for the rest), {args.rendered_share:.0%} of each batch")
        card["rendered_validation_mae_per_dim"] = {n: round(float(e), 4) for n, e in zip(DRIVEN, err_r)}
        card["rendered_validation_mae"] = round(float(err_r.mean()), 4)
        card["rendered_validation_mae_always_zero"] = round(float(yrv.abs().mean()), 4)
        card["rendered_validation_mae_per_dim_always_zero"] = {n: round(float(e), 4) for n, e in zip(DRIVEN, yrv.abs().mean(0))}
        card["rendered_validation_samples"] = len(yrv)
    if args.rendered and args.gaze:
        (out / "gaze.json").write_text(json.dumps(gaze_card, indent=1) + "\n")
        card["gaze"] = gaze_card
    (out / "training.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))


def _rendered_data(args, val_seeds):
    """-> (features, codes) tensors of rendered samples for training, the same for validation, and gaze.json's
    content (``--gaze``) or None; the samples are made, or read from the cache."""
    from pathlib import Path

    from ..data.identity import split_seeds
    from .rendered import load_rendered, make_rendered, sample_features, save_rendered

    cache = Path(args.rendered_cache) if args.rendered_cache else None
    tr, va = [int(s) for s in split_seeds("train")[: args.rendered_identities]], val_seeds
    if cache is not None and cache.is_file():
        made = load_rendered(cache)
    else:  # the first half of the identities look everywhere, the second half near the camera (as people do)
        half = (len(tr) + 1) // 2
        jobs = [(s, args.rendered, 5000 + k, 256, k < half) for k, s in enumerate(tr)]
        jobs += [(s, args.rendered_val, 5100 + k, 256, True) for k, s in enumerate(va)]
        made = make_rendered(jobs, args.jobs)
        if cache is not None:
            save_rendered(cache, made)
    keep = [EXPRESSION_NAMES.index(k) for k in DRIVEN]

    def stack(seeds):
        fs = [sample_features(made[s]) for s in seeds if s in made]
        if not fs:
            raise SystemExit(f"no rendered samples for identities {seeds} in {cache}")
        return (torch.tensor(np.concatenate([f[0] for f in fs])),
                torch.tensor(np.concatenate([f[1][:, keep] for f in fs])))

    gaze = fit_gaze([made[s] for s in tr if s in made], [made[s] for s in va if s in made]) if args.gaze else None
    return (*stack(tr), *stack(va), gaze)


def fit_gaze(train, val) -> dict:
    """Rendered samples (dicts) of training and validation identities -> gaze.json's content: per dimension the
    gain (code units per radian) with the least absolute error on the training identities (a grid 0..4: least
    squares is ruled by the eyes that were misread), and both errors on the validation identities against 0."""
    from .gaze import GazeConfig, gaze_code
    from .rendered import sample_gaze

    def errors(sets, gain):
        e = []
        for rel, true in sets:
            for r, t in zip(rel, true):
                g = gaze_code(r, np.zeros((2, 2)), GazeConfig(gain=tuple(gain)))
                e.append(np.abs((np.zeros(2) if g is None else g) - t))
        return np.mean(e, 0)

    tr, va = [sample_gaze(d) for d in train], [sample_gaze(d) for d in val]
    grid = np.arange(0.0, 4.01, 0.25)
    err = np.stack([errors(tr, (g, g)) for g in grid])  # [G, 2]: each dimension's error depends on its gain only
    gain = [float(grid[np.argmin(err[:, j])]) for j in range(2)]
    e_val, z_val = errors(va, gain), errors(va, (0.0, 0.0))
    return {"gain": gain, "fit": "least absolute error over gains 0..4 (step 0.25) on the training identities' "
            "rendered samples; 0 = the dimension stays off",
            "train_mae": [round(float(v), 4) for v in err[grid.tolist().index(gain[0]), :1].tolist() +
                          err[grid.tolist().index(gain[1]), 1:].tolist()],
            "train_mae_always_zero": [round(float(v), 4) for v in err[0]],
            "validation_mae": [round(float(v), 4) for v in e_val],
            "validation_mae_always_zero": [round(float(v), 4) for v in z_val],
            "dims": ["gaze_x", "gaze_y"]}


if __name__ == "__main__":
    main()
