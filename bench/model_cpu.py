"""CPU numbers of the Avat3r network: parameters per preset; `small` time per avatar and per animated frame.

Usage: python bench/model_cpu.py [--threads 2] [--reps 3]   (writes $OUT/model_cpu.json when $OUT is set)
Avatar = encode + animate + masking (images, priors -> Gaussians) from 4 views at 256²; frame = animate +
masking for a new expression (network only, no render). Priors and rendering are not included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_common import sphere_inputs  # noqa: E402

from avat3r.model import Avat3rModel, ModelConfig  # noqa: E402


def timed(fn, reps: int) -> tuple[list[float], list[float]]:
    """Wall seconds and process CPU seconds per call (on a shared box, cpu / threads ~ uncontended wall)."""
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--views", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus", "threads": args.threads,
                    "torch": torch.__version__, "params": {}}

    print(f"{'preset':8} {'order':12} {'params (M)':>11} {'fp16 MiB':>8}")
    for name in ("paper", "small", "tiny"):
        for order in ("interleaved", "cached", "cached-nomlp"):
            try:
                extra = dict(layer_order="cached", cross_mlp=False) if order == "cached-nomlp" else dict(layer_order=order)
                m = Avat3rModel(ModelConfig.preset(name, **extra))
            except Exception as e:  # noqa: BLE001 (an order a preset cannot take, e.g. unequal layer counts)
                print(f"{name:8} {order:12} {'-':>11} {'-':>8}  ({str(e)[:60]}...)")
                continue
            n = m.num_parameters()
            result["params"][f"{name}/{order}"] = n
            print(f"{name:8} {order:12} {n / 1e6:11.2f} {n * 2 / 2**20:8.1f}")

    print(f"\nload average {os.getloadavg()[0]:.1f} (other processes share the cores: wall times rise with it)")
    print(f"{args.preset} preset, {args.views} views at {args.size}², {args.threads} threads, min / median of {args.reps} (s):")
    result["timing"] = {}
    for order in ("cached", "interleaved"):
        try:
            cfg = ModelConfig.preset(args.preset, layer_order=order)
        except Exception:  # noqa: BLE001
            cfg = ModelConfig.preset(args.preset, layer_order=order, num_cross_layers=ModelConfig.preset(args.preset).num_self_layers)
        m = Avat3rModel(cfg).eval()
        x, z, _ = sphere_inputs(args.views, args.size, expression_dim=cfg.expression_dim)
        with torch.inference_mode():
            m.to_gaussians(m(**x, expression=z))  # warm-up
            avatar, avatar_cpu = timed(lambda: m.to_gaussians(m(**x, expression=z)), args.reps)
            state = m.encode(**x)
            zs = torch.randn(args.reps, cfg.expression_dim)
            i = iter(range(args.reps))
            frame, frame_cpu = timed(lambda: m.to_gaussians(m.animate(state, zs[next(i)][None])), args.reps)
            n_g = len(m.to_gaussians(m(**x, expression=z))[0])
        row = {"params": m.num_parameters(), "num_cross_layers": cfg.num_cross_layers, "avatar_s_min": min(avatar),
               "avatar_s_median": statistics.median(avatar), "frame_s_min": min(frame), "frame_s_median": statistics.median(frame),
               "avatar_cpu_s_min": min(avatar_cpu), "frame_cpu_s_min": min(frame_cpu), "gaussians": n_g,
               "load_average": os.getloadavg()[0]}
        result["timing"][order] = row
        print(f"  {order:12} avatar {min(avatar):6.2f} / {statistics.median(avatar):6.2f}   frame {min(frame):6.2f} / "
              f"{statistics.median(frame):6.2f}   cpu-time/threads {min(avatar_cpu) / args.threads:5.2f} / "
              f"{min(frame_cpu) / args.threads:5.2f}   ({n_g} Gaussians, {cfg.num_self_layers}+{cfg.num_cross_layers} layers)")
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "model_cpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
