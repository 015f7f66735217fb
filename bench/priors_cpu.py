"""CPU cost of the foundation priors (a 2-core box: expect minutes, not seconds). Random weights at real size.

    python bench/priors_cpu.py [--threads 2] [--pairs 1] [--sapiens 0.3b]    # writes $OUT/priors_cpu.json

Measures ONE DUSt3R pair at 512² (a 4-view complete graph needs 12 pairs; scale linearly), the known-pose
alignment for 4 views at 512² (synthetic pairwise predictions), and Sapiens feature extraction for one image.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from priors_common import LAST_CPU_S, head_cameras, random_dust3r, random_sapiens, table, timed, write_json  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--sapiens", nargs="*", default=["0.3b"])
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from avat3r.priors.dust3r import AlignConfig, PairPredictions, align_known_cameras, make_pairs, pairwise_inference

    sync = lambda: None  # noqa: E731
    res = {"threads": args.threads, "size": args.size}
    rows = []
    net = random_dust3r("cpu")
    imgs = torch.rand(2, 3, args.size, args.size) * 2 - 1
    edges = [(0, 1), (1, 0)][: args.pairs]
    t, _ = timed(lambda: pairwise_inference(net, imgs, edges, batch_size=1), sync)
    res["dust3r_per_pair_s"] = t / len(edges)
    res["dust3r_per_pair_cpu_s"] = LAST_CPU_S[0] / len(edges)
    res["dust3r_4view_complete_estimate_s"] = 12 * t / len(edges)
    rows.append(("dust3r one pair", f"{t / len(edges):.1f} s wall, {LAST_CPU_S[0] / len(edges):.1f} s CPU  "
                                    f"(4 views, 12 pairs: ~{12 * t / len(edges):.0f} s)"))
    net = None
    # alignment: 4 views, 12 pairs of synthetic predictions at the same size
    cams = head_cameras(4, args.size)
    E, s = 12, args.size
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(E, s, s, 3, generator=g) * 0.1 + torch.tensor([0, 0, 0.6])
    pred = PairPredictions(make_pairs(4), pts, pts.clone(), 1 + torch.rand(E, s, s, generator=g) * 3, 1 + torch.rand(E, s, s, generator=g) * 3)
    t, _ = timed(lambda: align_known_cameras(pred, cams, AlignConfig(iterations=args.iterations)), sync)
    res["align_4views_s"] = t
    res["align_4views_cpu_s"] = LAST_CPU_S[0]
    res["align_iterations"] = args.iterations
    rows.append((f"known-pose alignment (4 views, {args.iterations} it)", f"{t:.1f} s wall, {LAST_CPU_S[0]:.1f} s CPU"))
    for size in args.sapiens:
        m = random_sapiens(size, "cpu")
        x = torch.randn(1, 3, 1024, 1024)
        with torch.no_grad():
            t, f = timed(lambda: m(x), sync)
        res[f"sapiens_{size}_per_image_s"] = t
        res[f"sapiens_{size}_per_image_cpu_s"] = LAST_CPU_S[0]
        rows.append((f"sapiens {size} (1024², 1 image)", f"{t:.1f} s wall, {LAST_CPU_S[0]:.1f} s CPU, out {tuple(f.shape[1:])}"))
        m = None
    res["loadavg_1min_at_end"] = os.getloadavg()[0]
    rows.append(("load average (1 min) at the end", f"{res['loadavg_1min_at_end']:.1f}  (> threads: other work shared the cores)"))
    table(rows)
    write_json("priors_cpu.json", res)


if __name__ == "__main__":
    main()
