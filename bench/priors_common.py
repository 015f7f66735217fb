"""Shared helpers for the prior benchmarks: real-size models with random weights, timing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

SMOKE = [False]  # --smoke: tiny models at tiny sizes, to check the script itself on a CPU


def random_dust3r(device, dtype=torch.float32):
    """The official architecture (571 M parameters) with random weights; the head's last conv is scaled down so
    the 'exp' outputs stay finite (timing does not depend on the values)."""
    from avat3r.priors.dust3r import PRESETS, Dust3rNet

    torch.manual_seed(0)
    net = Dust3rNet(PRESETS["tiny" if SMOKE[0] else "vitl_512_dpt"])
    with torch.no_grad():
        for h in (net.downstream_head1, net.downstream_head2):
            h.dpt.head[4].weight.mul_(0.01)
    return net.to(device=device, dtype=dtype).eval()


def random_sapiens(size, device):
    from avat3r.priors.sapiens import SapiensConfig, SapiensViT

    torch.manual_seed(0)
    cfg = SapiensConfig(embed_dim=32, depth=2, num_heads=2) if SMOKE[0] else SapiensConfig.for_size(size)
    return SapiensViT(cfg).to(device).eval()


def head_cameras(n=4, size=512):
    from avat3r.cameras import orbit_cameras

    return orbit_cameras(n, radius=0.6, fov_deg=25, size=size, azimuth_range=(-60, 60), elevation_deg=10)


LAST_CPU_S = [0.0]  # process CPU seconds of the last timed() call (all threads), for loaded CPU boxes


def timed(fn, sync, reps=1, warmup=0):
    """Median wall seconds over ``reps`` (after ``warmup`` calls) and the last output."""
    for _ in range(warmup):
        fn()
    sync()
    ts, cs = [], []
    out = None
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        sync()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    LAST_CPU_S[0] = float(np.median(cs))
    return float(np.median(ts)), out


def write_json(name, data):
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / name).write_text(json.dumps(data, indent=1))
        print(f"wrote {Path(out) / name}")


def table(rows):
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
