"""GPU speed of the Avat3r network: avatar creation (ms) and animation rate (frames/s), both layer orders.

Usage (CUDA machine, repo root): python bench/model_gpu.py [--preset paper] [--views 4] [--size 512]
                                 [--no-compile] [--iters 50]      -> table + $OUT/model_gpu.json (or ./out)
Modes per layer order: eager (default SDPA), cudnn (SDPA cuDNN attention first), compile (compile_parts()).
- creation: images + priors (+ Sapiens features for the paper preset) -> masked Gaussians, batch 1, i.e.
  forward + masking; DUSt3R / Sapiens themselves are not included (they are separate models).
- animation: new expression -> Gaussians (animate on the cached AvatarState + masking) -> one 512² render with
  avat3r.render.render(..., backend=backend); also reported without the render. If the renderer cannot be
  imported or gsplat fails, the render is skipped and the JSON says why.
Weights in bf16 (the Gaussian decode runs in fp32), CUDA events, warm-up before timing, median over iters.
Goals (issue 3): creation <= 20 ms; animation >= 120 fps (cached), >= 30 fps (interleaved).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_common import sphere_inputs  # noqa: E402

from avat3r.cameras import orbit_cameras  # noqa: E402
from avat3r.model import Avat3rModel, ModelConfig  # noqa: E402


def cuda_ms(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():  # --device cpu dry run of this script
        out = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e3)
        return out
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return out


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "p90_ms": ms[int(0.9 * (len(ms) - 1))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true", help="eager only (default: eager and torch.compile)")
    ap.add_argument("--device", default="cuda", help="'cpu' only checks that the script runs (e.g. --preset tiny)")
    args = ap.parse_args()
    out_dir = Path(os.environ.get("OUT", "out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"preset": args.preset, "views": args.views, "size": args.size, "dtype": "bfloat16", "batch": 1}
    if args.device == "cuda" and not torch.cuda.is_available():
        result["skipped"] = "no CUDA device"
        print("no CUDA device: nothing to measure")
        (out_dir / "model_gpu.json").write_text(json.dumps(result, indent=2))
        return
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    result.update(device=torch.cuda.get_device_name() if dev.type == "cuda" else "cpu (dry run)", torch=torch.__version__)
    backend = "gsplat" if dev.type == "cuda" else "torch"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    try:
        from avat3r.render import render

        render_error = None
    except Exception as e:  # noqa: BLE001
        render, render_error = None, f"import avat3r.render failed: {e!r}"
    nv_cam = orbit_cameras(1, size=args.size, azimuth_range=(30.0, 30.0)).to(dev)

    base = ModelConfig.preset(args.preset)
    feat_size = 64 if base.features else 0  # Sapiens traced at 1024² -> 64² tokens of width feature_dim
    x, z, _ = sphere_inputs(args.views, args.size, expression_dim=base.expression_dim, feature_dim=base.feature_dim,
                            feature_size=feat_size or 32, device=dev)
    zs = torch.randn(args.warmup + args.iters + 8, 1, base.expression_dim, device=dev)
    result["runs"] = {}
    modes = ["eager", "cudnn"] if args.no_compile else ["eager", "cudnn", "compile"]
    if dev.type != "cuda":
        modes = ["eager"]
    print(f"{result['device']}, {args.preset} preset, V={args.views}, {args.size}², bf16, batch 1 (median ms; fps = 1000/ms)")
    print(f"{'order':20} {'mode':8} {'create':>8} {'encode':>8} {'anim net':>9} {'anim+render':>12} {'fps':>7}  gaussians")
    variants = {"cached": dict(layer_order="cached"), "interleaved": dict(layer_order="interleaved"),
                "cached_no_cross_mlp": dict(layer_order="cached", cross_mlp=False)}  # same parameter count as interleaved
    for order, overrides in variants.items():
        for mode in modes:
            key = f"{order}/{mode}"
            compiled = mode == "compile"
            run: dict = {}
            ctx = contextlib.nullcontext()
            if mode == "cudnn":  # SDPA's cuDNN attention first (often the fastest on H100), then the defaults
                from torch.nn.attention import SDPBackend, sdpa_kernel

                ctx = sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
                                  set_priority=True)
            try:
                torch.manual_seed(0)
                m = Avat3rModel(base.replace(**overrides)).to(dev, torch.bfloat16).eval()
                run["params"] = m.num_parameters()
                if compiled:
                    m.compile_parts()
                with torch.inference_mode(), ctx:
                    t0 = time.perf_counter()
                    m.to_gaussians(m(**x, expression=z))
                    sync()
                    run["first_call_s"] = time.perf_counter() - t0
                    if dev.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    run["create"] = summary(cuda_ms(lambda: m.to_gaussians(m(**x, expression=z)), args.warmup, args.iters))
                    run["encode"] = summary(cuda_ms(lambda: m.encode(**x), args.warmup, args.iters))
                    state = m.encode(**x)
                    it = iter(range(10**9))
                    nxt = lambda: zs[next(it) % len(zs)]  # noqa: E731  a new expression every frame
                    run["animate_net"] = summary(cuda_ms(lambda: m.to_gaussians(m.animate(state, nxt())), args.warmup, args.iters))
                    g = m.to_gaussians(m.animate(state, z))[0]
                    run["gaussians"] = len(g)
                    if render is not None:
                        try:
                            frame = lambda: render(m.to_gaussians(m.animate(state, nxt()))[0], nv_cam, backend=backend)  # noqa: E731
                            run["animate_render"] = summary(cuda_ms(frame, args.warmup, args.iters))
                            run["render_only"] = summary(cuda_ms(lambda: render(g, nv_cam, backend=backend), args.warmup, args.iters))
                        except Exception as e:  # noqa: BLE001
                            run["render_error"] = f"{e!r}"
                    else:
                        run["render_error"] = render_error
                    if dev.type == "cuda":
                        run["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
                anim = run.get("animate_render", run["animate_net"])["median_ms"]
                run["fps"] = 1000.0 / anim
                run["fps_includes_render"] = "animate_render" in run
                ar = f"{run['animate_render']['median_ms']:12.2f}" if "animate_render" in run else f"{'n/a':>12}"
                print(f"{order:20} {mode:8} {run['create']['median_ms']:8.2f} "
                      f"{run['encode']['median_ms']:8.2f} {run['animate_net']['median_ms']:9.2f} {ar} {run['fps']:7.1f}  {run['gaussians']}")
                if "render_error" in run:
                    print(f"    render skipped: {run['render_error'][:200]}")
                m = state = None  # free the model before the next configuration
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            except Exception as e:  # noqa: BLE001
                run["error"] = f"{e!r}"
                run["traceback"] = traceback.format_exc()[-2000:]
                print(f"{order:20} {mode:8} FAILED: {e!r}"[:300])
            result["runs"][key] = run
    goals = {"create_ms": 20.0, "cached_fps": 120.0, "interleaved_fps": 30.0}
    result["goals"] = goals
    best = lambda order, k: min((r[k]["median_ms"] for kk, r in result["runs"].items() if kk.startswith(order) and k in r), default=None)  # noqa: E731
    verdict = {}
    for order in variants:
        c = best(order + "/", "create")
        fps = max((r["fps"] for kk, r in result["runs"].items() if kk.startswith(order + "/") and "fps" in r), default=None)
        verdict[order] = {"best_create_ms": c, "best_fps": fps, "create_ok": c is not None and c <= goals["create_ms"],
                          "fps_ok": fps is not None and fps >= goals[f"{order.split('_')[0]}_fps"]}
    result["verdict"] = verdict
    print("goals:", json.dumps(verdict))
    (out_dir / "model_gpu.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out_dir / 'model_gpu.json'}")


if __name__ == "__main__":
    main()
