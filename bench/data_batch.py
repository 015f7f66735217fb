"""Cost of making SynthHeads data.

CPU (default): one 4-view capture at 256^2 with the visual-hull prior (identity build + posing + rendering +
prior), like ``avat3r synth`` / a CPU demo, on BENCH_THREADS threads (default 2).
GPU (--device cuda): one paper-size training batch: 4 inputs at 512^2 (each its own expression) + 8 targets at
667^2, with the prior; reports warm per-batch time (median of N) and the stage split. Writes
$OUT/data_gpu.json (or $OUT/data_cpu.json) when OUT is set.

    python bench/data_batch.py                      # CPU, 2 threads
    python bench/data_batch.py --device cuda        # GPU (gsplat backend)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avat3r.data import synthheads  # noqa: E402
from avat3r.data.sampler import SynthHeadsSampler  # noqa: E402


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed_sample(s: SynthHeadsSampler, index: int, fresh_identity: bool) -> dict:
    """Time one sample, split into stages by re-running them (the sampler itself is one call)."""
    dev = s.device
    if fresh_identity:
        synthheads._CACHE.clear()
    _sync(dev)
    t0 = time.perf_counter()
    x = s.sample(index)
    _sync(dev)
    return {"total_s": time.perf_counter() - t0, "identity": x["identity_seed"]}


def stage_split(s: SynthHeadsSampler, index: int) -> dict:
    from avat3r.priors.visual_hull import visual_hull_maps
    from avat3r.render import render

    dev = s.device
    x = s.sample(index)
    out = {}
    synthheads._CACHE.clear()
    _sync(dev); t = time.perf_counter()
    rig = synthheads.get_rig(x["identity_seed"], dev)
    _sync(dev); out["build_identity_s"] = time.perf_counter() - t
    z = torch.cat([x["input_expressions"], x["target_expression"][None]])
    _sync(dev); t = time.perf_counter()
    gs = rig.pose(z)
    _sync(dev); out["pose_s"] = time.perf_counter() - t
    V = len(x["input_cameras"])
    _sync(dev); t = time.perf_counter()
    with torch.no_grad():
        for k in range(V):
            render(gs[k], x["input_cameras"].to("cpu")[k].to(dev), backend=s.config.backend)
        render(gs[-1], x["target_cameras"], backend=s.config.backend)
    _sync(dev); out["render_s"] = time.perf_counter() - t
    _sync(dev); t = time.perf_counter()
    with torch.no_grad():
        visual_hull_maps(x["input_masks"][:, 0], x["input_cameras"], s.config.hull)
    _sync(dev); out["prior_s"] = time.perf_counter() - t
    out["gaussians"] = len(gs[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=None)
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda":
        # identity_reuse: consecutive samples share an identity, so "warm" measures a cached rig (the trainer's
        # steady state with identity_reuse > 1); "new_identity" rebuilds the rig every sample
        s = SynthHeadsSampler(input_size=512, target_size=667, num_inputs=4, num_targets=8, device="cuda",
                              identity_reuse=10**6)
        reps = a.repeats or 20
        for i in range(3):  # warm-up (gsplat JIT, caches)
            s.sample(i)
        warm = [timed_sample(s, 100 + i, fresh_identity=False)["total_s"] for i in range(reps)]
        cold = [timed_sample(s, 200 + i, fresh_identity=True)["total_s"] for i in range(min(reps, 5))]
        res = {"device": torch.cuda.get_device_name(), "batch": "4 x 512^2 inputs + 8 x 667^2 targets + visual hull",
               "warm_identity_cached_ms": 1000 * statistics.median(warm),
               "new_identity_ms": 1000 * statistics.median(cold), "stages": stage_split(s, 300)}
        name = "data_gpu.json"
    else:
        s = SynthHeadsSampler(input_size=256, target_size=16, num_inputs=4, num_targets=1, device="cpu", split="test")
        reps = a.repeats or 3
        runs = [timed_sample(s, i, fresh_identity=True)["total_s"] for i in range(reps)]
        res = {"device": f"cpu, {torch.get_num_threads()} threads", "capture": "4 x 256^2 with visual hull (new identity)",
               "median_s": statistics.median(runs), "runs_s": runs, "stages": stage_split(s, 0)}
        name = "data_cpu.json"
    print(json.dumps(res, indent=1))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        Path(os.environ["OUT"], name).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    if not torch.cuda.is_available() or "--device" not in " ".join(sys.argv):
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    main()
