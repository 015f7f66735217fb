"""Quality of the weight-free visual-hull prior on SynthHeads: mean position error (mm) on foreground pixels
and foreground coverage (confidence > 0.5), for V = 1, 2, 4 input views; ground truth from rendered depth.

    python bench/data_prior.py [--identities 6] [--size 128] [--consistent]

Writes $OUT/data_prior.json when OUT is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avat3r.data.sampler import SynthHeadsSampler  # noqa: E402
from avat3r.priors.visual_hull import VisualHullConfig, depth_to_positions, visual_hull_maps  # noqa: E402
from avat3r.render import render  # noqa: E402


def prior_quality(views: int, identities: int = 4, size: int = 128, consistent: bool = False, device="cpu",
                  hull: VisualHullConfig | None = None, noise: dict | None = None) -> dict:
    """Mean error (mm), median error (mm) and coverage of the hull prior vs rendered-depth positions."""
    s = SynthHeadsSampler(input_size=size, target_size=16, num_targets=1, num_inputs=views, split="test",
                          consistent_inputs=consistent, prior="none", device=device, crop_jitter=0.0)
    errs, cover, times = [], [], []
    for i in range(identities):
        x = s.sample(i)
        cams, masks = x["input_cameras"], x["input_masks"][:, 0]
        # ground truth: depth of the same renders (the oracle; used here only to score the prior)
        from avat3r.data.synthheads import get_rig
        rig = get_rig(x["identity_seed"], s.device)
        gs = rig.pose(x["input_expressions"])
        depth = torch.cat([render(gs[k], cams[k]).depth for k in range(views)])[..., 0]
        gt = depth_to_positions(depth, cams)
        m_in = masks
        c_in = cams
        if noise:
            g = torch.Generator().manual_seed(i)
            if noise.get("dilate_px"):
                k = 2 * noise["dilate_px"] + 1
                m_in = torch.nn.functional.max_pool2d(masks[:, None], k, 1, k // 2)[:, 0]
            if noise.get("rot_deg"):
                from avat3r.data.dome import head_pose_matrix
                R = torch.stack([head_pose_matrix(*(torch.randn(3, generator=g) * noise["rot_deg"]).tolist()) for _ in range(views)])
                w2c = cams.world_to_cam.clone()
                w2c[:, :3, :3] = R @ w2c[:, :3, :3]
                w2c[:, :3, 3] = (R @ w2c[:, :3, 3:])[..., 0]
                from avat3r.cameras import Cameras
                c_in = Cameras(cams.K, w2c, cams.width, cams.height)
        t = time.perf_counter()
        pos, conf = visual_hull_maps(m_in, c_in, hull)
        times.append(time.perf_counter() - t)
        fg = masks > 0.5
        errs.append((pos - gt).norm(dim=-1)[fg])
        cover.append(((conf > 0.5) & fg).sum() / fg.sum())
    e = torch.cat(errs) * 1000
    return {"views": views, "mean_mm": float(e.mean()), "median_mm": float(e.median()),
            "p90_mm": float(e.quantile(0.9)), "coverage": float(torch.stack(cover).mean()),
            "sec_per_capture": sum(times) / len(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--identities", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--consistent", action="store_true")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    rows = [prior_quality(v, a.identities, a.size, a.consistent, a.device) for v in (1, 2, 4)]
    print(f"visual-hull prior on SynthHeads test identities ({a.identities}, {a.size}px, "
          f"{'consistent' if a.consistent else 'inconsistent'} input expressions)")
    print("  V | mean mm | median mm | p90 mm | coverage | s/capture")
    for r in rows:
        print(f"  {r['views']} | {r['mean_mm']:7.1f} | {r['median_mm']:9.1f} | {r['p90_mm']:6.1f} | {r['coverage']:8.3f} | "
              f"{r['sec_per_capture']:.3f}")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        Path(os.environ["OUT"], "data_prior.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    main()
