"""Does the model animate? Avat3r vs the static baseline inside the pixels that the expression changes.

Whole-image PSNR hardly sees an expression (a smile changes a few percent of the pixels), so the "beats the
static baseline" check of ``avat3r eval`` is a small margin. Here, for the same hold-out samples as ``avat3r
eval``, the ground truth at the target expression is compared with the ground truth at the neutral expression
(same identity, head pose and cameras); pixels where they differ by more than --threshold (max over RGB, dilated
by 2 px) are the expression region. Reported: PSNR inside it for Avat3r (target expression), the static baseline
(the same network at neutral) and the neutral ground truth itself (what a perfect non-animating model scores);
and the response: the mean |avatar - static| inside the region over the mean |truth - neutral truth| there (1 = the
avatar changes as much as the truth, 0 = it ignores the expression), with the sample's largest expression values.
The response measures how much, not how well (changing the wrong way also responds): read it with the region PSNR.

    python bench/expression_effect.py --checkpoint weights --num-samples 12     # 2-core CPU: ~2 min
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch


def masked_psnr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> float:
    """a, b [N, 3, H, W] in [0, 1]; m [N, 1, H, W] bool -> PSNR over the masked pixels."""
    mse = (((a - b) ** 2) * m).sum() / (m.sum() * 3).clamp(min=1)
    return float(10 * torch.log10(1 / mse.clamp(min=1e-10)))


def expression_response(model_pred: torch.Tensor, static_pred: torch.Tensor, gt: torch.Tensor, gt0: torch.Tensor,
                        m: torch.Tensor) -> float:
    """How much of the true change the avatar makes inside the region m [T, 1, H, W] bool: mean |model - static|
    over mean |truth - neutral truth| (1 = all of it, 0 = the expression is ignored); renders [T, 3, H, W]."""
    mm = m.expand_as(model_pred)
    return float((model_pred - static_pred).abs()[mm].mean() / (gt - gt0).abs()[mm].mean().clamp_min(1e-6))


def expression_region(sample: dict, neutral: np.ndarray, threshold: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels a SynthHeads sample's target expression changes -> (mask [T, 1, H, W] bool, neutral ground truth
    [T, 3, H, W]): the target views re-rendered at ``neutral`` (same identity, head pose and cameras), pixels that
    differ by more than ``threshold`` (max over RGB), dilated by 2 px."""
    from avat3r.data.sampler import expression_region_mask
    from avat3r.data.synthheads import get_rig
    from avat3r.render import render

    gt = sample["target_images"]
    g0 = get_rig(sample["identity_seed"], gt.device).pose(np.asarray(neutral)[None])[0]
    gt0 = render(g0, sample["target_cameras"]).color.permute(0, 3, 1, 2)  # neutral ground truth, same pose and cameras
    return expression_region_mask(gt, gt0, threshold) > 0, gt0  # the training loss's region (lambda_expression)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="weights")
    p.add_argument("--num-samples", type=int, default=12)
    p.add_argument("--seed", type=int, default=1234, help="the evaluation seed (avat3r eval's default)")
    p.add_argument("--threshold", type=float, default=0.05)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the JSON result here")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    from avat3r.data.batch import collate
    from avat3r.eval.__main__ import _dataset_for, load_for_eval
    from avat3r.eval.baselines import neutral_expression
    from avat3r.eval.evaluation import EvalConfig, predict

    model, tc = load_for_eval(args.checkpoint, args.device)
    model = model.eval()
    cfg = EvalConfig(num_samples=args.num_samples, seed=args.seed, device=args.device, faces=False, video_frames=0)
    ds, tcfg = _dataset_for(tc, model, cfg, {})
    neutral = neutral_expression(model).cpu().numpy()
    names = model.config.expression_names
    rows, t0 = [], time.time()
    for i in range(min(args.num_samples, len(ds))):
        plan = ds.sampler.plan(ds.offset + i)
        sample = ds.sampler.realize(plan)
        gt = sample["target_images"]
        m, gt0 = expression_region(sample, neutral, args.threshold)
        frac = float(m.float().mean())
        batch = collate([sample])
        pa = predict("avat3r", model, batch, tcfg.use_prior, cfg.background)[0]
        ps = predict("static", model, batch, tcfg.use_prior, cfg.background)[0]
        top = np.argsort(-np.abs(plan["z_t"] - neutral))[:3]
        row = {"index": i, "identity": plan["identity_seed"], "region_fraction": frac,
               "expression_distance": float(np.abs(plan["z_t"] - neutral).max()),
               "expression": {names[k]: round(float(plan["z_t"][k]), 2) for k in top}}
        if frac > 1e-4:
            row.update(avat3r=masked_psnr(pa, gt, m), static=masked_psnr(ps, gt, m), neutral_gt=masked_psnr(gt0, gt, m))
            row["response"] = expression_response(pa, ps, gt, gt0, m)
        rows.append(row)
        print(json.dumps(row))
    scored = [r for r in rows if "avat3r" in r]
    mean = {k: float(np.mean([r[k] for r in scored])) for k in ("avat3r", "static", "neutral_gt")} if scored else {}
    wins = sum(r["avat3r"] > r["static"] for r in scored)
    summary = {"checkpoint": args.checkpoint, "samples": len(rows), "with_region": len(scored),
               "threshold": args.threshold, "mean_region_fraction": float(np.mean([r["region_fraction"] for r in rows])),
               "mean_psnr_in_region": mean, "avat3r_beats_static": f"{wins}/{len(scored)}",
               "mean_response": float(np.mean([r["response"] for r in scored])) if scored else None,
               "seconds": time.time() - t0, "rows": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x)


if __name__ == "__main__":
    main()
