"""The app's two numbers without the web layer, on whatever device is given (the GPU half of issue 7's figures).

Times pipe.reconstruct on a 4-view SynthHeads example from demo/examples (front end with given cameras, prior,
encode, neutral animate) and one animated frame at 256² (network + render: gsplat on CUDA, PyTorch on CPU).
Usage: python bench/pipeline_gpu.py [--device cuda] [--runs 5] [--frames 24]   (writes $OUT/pipeline_<device>.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--example", default=str(ROOT / "demo" / "examples" / "synth_1"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from avat3r.pipeline import expression_sequence, load_pipeline, orbit_camera

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    pipe = load_pipeline(ROOT / "weights", device=args.device)
    load_s = time.perf_counter() - t0
    times = []
    for _ in range(args.runs + 1):
        sync()
        t0 = time.perf_counter()
        avatar = pipe.reconstruct(args.example)
        avatar.animate(None)
        sync()
        times.append(time.perf_counter() - t0)
    keys = [k for k in ("neutral", "smile", "surprise") if k in pipe.expression_space.presets]
    codes = expression_sequence(pipe.expression_space, keys, max(1, args.frames // len(keys)))
    avatar.animation(codes[:2], orbit_camera(20, 5, 256), size=256)  # warm-up
    sync()
    t0 = time.perf_counter()
    avatar.animation(codes, orbit_camera(20, 5, 256), size=256)
    sync()
    frame_s = (time.perf_counter() - t0) / len(codes)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    res = {"device": name, "example": args.example, "gaussians": len(avatar.animate(None)), "load_s": load_s,
           "create_first_s": times[0], "create_warm_median_s": statistics.median(times[1:]),
           "animated_frame_256_s": frame_s, "frames": len(codes)}
    print(json.dumps(res, indent=1))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / f"pipeline_{args.device.split(':')[0]}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
