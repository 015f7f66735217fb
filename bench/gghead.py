"""Seed -> animated avatar on screen: GGHead sample, four input views, Avat3r reconstruct, one animated frame.

    python bench/gghead.py [--device cpu|cuda] [--generator weights/gghead] [--repeats 3] [--json out.json]
                           [--app-timing [--threads 2]]   # also the app over HTTP: to the 3D viewers, to the clip

Times each stage (after one warm-up run on the same process, so model loading and CUDA/gsplat warm-up are
excluded; loading is reported separately) and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def run(device: str, generator=None, weights=None, repeats: int = 3, truncation: float = 0.7) -> dict:
    from avat3r.generate.avatar import generated_capture
    from avat3r.generate.hub import load_generator
    from avat3r.pipeline import load_pipeline, orbit_camera

    dev = torch.device(device)
    t = time.perf_counter()
    G = load_generator(generator, device=dev)
    pipe = load_pipeline(weights, device=dev)
    load_s = time.perf_counter() - t
    cam = orbit_camera(20.0, 5.0, 256)
    stages = {"sample_and_views": [], "reconstruct": [], "animate_and_render": [], "total": []}
    cpu_s = []  # process CPU time per run: on a shared, oversubscribed CPU the wall time says little
    for i in range(repeats + 1):
        seed = 1000 + i
        _sync(dev)
        c0 = time.process_time()
        t0 = time.perf_counter()
        cap, _ = generated_capture(G, seed, truncation, pipe.image_size)
        _sync(dev)
        t1 = time.perf_counter()
        avatar = pipe.reconstruct(cap)
        _sync(dev)
        t2 = time.perf_counter()
        frame = avatar.render(cam, expression="smile")
        _sync(dev)
        t3 = time.perf_counter()
        assert frame.shape == (256, 256, 3)
        if i == 0:
            continue  # warm-up
        cpu_s.append(round(time.process_time() - c0, 2))
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            v_ms = round(v * 1000, 1)
            stages[k].append(v_ms)
    med = {k: sorted(v)[len(v) // 2] for k, v in stages.items()}
    return {"device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
            "cpu_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "generator": G.config.preset, "gaussians_gghead": G.num_gaussians, "avat3r_image_size": pipe.image_size,
            "load_s": round(load_s, 2), "median_ms": med, "runs_ms": stages, "process_cpu_s": cpu_s,
            "loadavg_1min": round(os.getloadavg()[0], 1)}


def time_app(threads: int, runs: int = 2) -> dict:
    """Seconds for the app's "Generate" route over HTTP against ``python app.py`` (the public demo's path, no browser
    on the machine): to the first streamed output (the GGHead head and the avatar in the 3D viewers) and to the last
    (the expression clip), cold (models loading) then warm."""
    import sys
    from pathlib import Path

    from avat3r.pipeline import default_weights_dir

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from app_fixtures import AppServer
    from gradio_client import Client

    env = {"OMP_NUM_THREADS": str(threads), "AVAT3R_VIDEO_SIZE": "256"}
    rows = []
    with AppServer(default_weights_dir(), env=env, timeout=240) as srv:
        c = Client(srv.url, verbose=False)
        for r in range(runs + 1):
            t = time.perf_counter()
            job = c.submit(r + 1, 0.7, api_name="/generate_head")
            first = None
            while not job.done():
                if first is None and job.outputs():
                    first = time.perf_counter() - t
                time.sleep(0.05)
            job.result()
            rows.append({"viewer_s": round(first if first is not None else time.perf_counter() - t, 2),
                         "clip_s": round(time.perf_counter() - t, 2)})
    return {"cold": rows[0], "warm": rows[1:]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--generator", default=None, help="GGHead weights directory (default weights/gghead)")
    ap.add_argument("--weights", default=None, help="Avat3r weights (default: the shipped weights/)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--app-timing", action="store_true", help="also time the app's Generate route over HTTP")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the app (--app-timing)")
    a = ap.parse_args(argv)
    res = run(a.device, a.generator, a.weights, a.repeats)
    if a.app_timing:
        res["app"] = time_app(a.threads)
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
