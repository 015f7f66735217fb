"""GPU cost of the foundation priors: DUSt3R pairwise inference + known-pose alignment for 4 views at 512,
and Sapiens 0.3b / 2b feature extraction per image at 1024. Random weights at the real sizes (timing only).

    python bench/priors_gpu.py [--reps 5] [--iterations 10]     # writes $OUT/priors_gpu.json when $OUT is set
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from priors_common import SMOKE, head_cameras, random_dust3r, random_sapiens, table, timed, write_json  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=10, help="alignment iterations")
    ap.add_argument("--sapiens", nargs="*", default=["0.3b", "2b"])
    ap.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks the script, measures nothing")
    args = ap.parse_args()
    SMOKE[0] = args.smoke
    if not torch.cuda.is_available() and not args.smoke:
        sys.exit("no CUDA device; use bench/priors_cpu.py")
    dev = torch.device("cpu" if args.smoke else "cuda")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    S = 64 if args.smoke else 512
    R = 64 if args.smoke else 1024
    from avat3r.priors.dust3r import AlignConfig, align_known_cameras, make_pairs, pairwise_inference

    res = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (smoke)", "torch": torch.__version__,
           "views": 4, "size": S}
    net = random_dust3r(dev)
    imgs = torch.rand(4, 3, S, S, device=dev) * 2 - 1
    edges = make_pairs(4, "complete")
    cams = head_cameras(4, S)
    rows = []
    for amp in (True, False):
        for bs in (12, 6):
            t_inf, pred = timed(lambda: pairwise_inference(net, imgs, edges, batch_size=bs, amp=amp), sync, args.reps, 1)
            t_al, ar = timed(lambda: align_known_cameras(pred, cams, AlignConfig(iterations=args.iterations)), sync, args.reps, 1)
            key = f"dust3r_{'bf16' if amp else 'fp32'}_bs{bs}"
            res[key] = {"pairs": len(edges), "inference_s": t_inf, "align_s": t_al, "total_s": t_inf + t_al,
                        "align_iterations": args.iterations, "finite": bool(torch.isfinite(ar.positions).all())}
            rows.append((key, f"{len(edges)} pairs {t_inf * 1e3:.0f} ms + align ({args.iterations} it) {t_al * 1e3:.0f} ms "
                              f"= {(t_inf + t_al) * 1e3:.0f} ms"))
    t_half, pred_h = timed(lambda: pairwise_inference(net, imgs, make_pairs(4, "half"), batch_size=6, amp=True), sync, args.reps, 1)
    t_al_h, _ = timed(lambda: align_known_cameras(pred_h, cams, AlignConfig(iterations=args.iterations)), sync, args.reps, 1)
    res["dust3r_bf16_half_graph"] = {"pairs": 6, "inference_s": t_half, "align_s": t_al_h, "total_s": t_half + t_al_h}
    rows.append(("dust3r_bf16_half_graph", f"6 pairs {t_half * 1e3:.0f} ms + align {t_al_h * 1e3:.0f} ms"))
    if dev.type == "cuda":
        res["dust3r_peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    net = pred = None
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    for size in args.sapiens:
        m = random_sapiens(size, dev)
        x = torch.randn(4, 3, R, R, device=dev)
        for amp in (True, False):
            def run():
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
                    return m(x)
            t, f = timed(run, sync, args.reps, 1)
            key = f"sapiens_{size}_{'bf16' if amp else 'fp32'}"
            res[key] = {"batch": 4, "per_image_s": t / 4, "out_shape": list(f.shape)}
            rows.append((key, f"{t / 4 * 1e3:.1f} ms / image (batch 4, {R}², out {tuple(f.shape[1:])})"))
        m = None
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    table(rows)
    write_json("priors_gpu.json", res)


if __name__ == "__main__":
    main()
