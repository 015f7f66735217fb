"""Several (weights, refine) configurations on the same SynthHeads hold-out samples, data built once
(bench/fidelity.py's protocol: test identities, V inconsistent input views, 8 novel views of a novel expression;
whole-image PSNR and PSNR inside the pixels the expression changes). One JSON line per sample, flushed, so a cut-off
run keeps what it finished. docs/eval/refine.md.

    python bench/refine_compare.py --configs shipped=weights:off,shipped=weights:rays --samples 12 --supervision-size 128
    python bench/refine_compare.py ... --consistent    # inputs of one moment (a rig, a statue): where rays is meant for
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from expression_effect import expression_region, masked_psnr  # noqa: E402  (the one definition of the region)


def main(argv=None) -> int:
    from avat3r.data.batch import collate
    from avat3r.eval.__main__ import _dataset_for, load_for_eval
    from avat3r.eval.baselines import neutral_expression
    from avat3r.eval.evaluation import EvalConfig, _hwc, predict
    from avat3r.eval.metrics import psnr

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", required=True, help="comma-separated NAME=WEIGHTS:REFINE")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--samples", type=int, default=12)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--supervision-size", type=int, default=None, help="default the protocol's (667/512 of the input)")
    p.add_argument("--consistent", action="store_true", help="inputs of one moment (one expression and head pose, "
                   "as a camera rig or a statue gives) instead of the protocol's inconsistent ones")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    configs = []
    for item in args.configs.split(","):
        name, rest = item.split("=", 1)
        path, refine = rest.rsplit(":", 1)
        configs.append((name, path, refine))
    models = {path: load_for_eval(path, args.device) for _, path, _ in configs}
    model0, tc0 = models[configs[0][1]]
    neutral = neutral_expression(model0).cpu().numpy()
    cfg = EvalConfig(num_samples=args.samples, seed=args.seed, device=args.device, faces=False, video_frames=0)
    overrides: dict = {"num_inputs": args.views, "consistent_inputs": args.consistent}
    if args.supervision_size:
        overrides["supervision_size"] = args.supervision_size
    ds, tcfg = _dataset_for(tc0, model0, cfg, overrides)
    with torch.no_grad():
        for i in range(min(args.samples, len(ds))):
            t0 = time.time()
            sample = ds[i]
            batch = collate([sample]).to(args.device)
            gt = batch.target_images[0]
            mask, _ = expression_region(sample, neutral, 0.05)
            row: dict = {"i": i, "identity": int(sample["identity_seed"]), "region_fraction": round(float(mask.float().mean()), 4)}
            for name, path, refine in configs:
                pred = predict("avat3r", models[path][0].eval(), batch, tcfg.use_prior, cfg.background, refine=refine)[0]
                row[f"{name}:{refine}"] = round(float(psnr(_hwc(pred), _hwc(gt)).mean()), 3)
                if row["region_fraction"] > 1e-4:
                    row[f"{name}:{refine}:region"] = round(masked_psnr(pred, gt, mask), 3)
            row["seconds"] = round(time.time() - t0, 1)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
