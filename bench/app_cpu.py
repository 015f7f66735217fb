"""App latency on a CPU: "create" on a 4-view example until the 3D viewer's .ply is ready, and seconds per
animated frame at 256² (network + render), with the weights the app would use.

    python bench/app_cpu.py                     # weights: $AVAT3R_WEIGHTS or weights/; else an untrained `small`
    python bench/app_cpu.py --threads 2 --runs 3

The create time is measured over HTTP against ``python app.py`` (the user's path: upload, front end, prior, encode,
viewer .ply), first call (cold: includes loading the model) and warm calls. Prints a table; with $OUT set, also
writes $OUT/app_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def pick_weights() -> tuple[Path, str]:
    from avat3r.pipeline import default_weights_dir

    w = default_weights_dir()
    if (w / "config.json").is_file() and (w / "model.safetensors").is_file():
        cfg = json.loads((w / "config.json").read_text())
        return w, f"{w} (preset {cfg.get('name')!r}, {cfg.get('image_size')}²)"
    import torch

    from avat3r.model import Avat3rModel

    tmp = Path(tempfile.mkdtemp(prefix="avat3r_bench_")) / "small_untrained"
    torch.manual_seed(0)
    Avat3rModel("small").save_pretrained(tmp, dtype=torch.float16)
    return tmp, f"UNTRAINED `small` preset (no weights in {w}); timings only"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=12, help="animated frames to time")
    ap.add_argument("--example", default=None, help="example label (default: the first 4-view SynthHeads capture)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    weights, wdesc = pick_weights()
    rows: list[tuple[str, float, str]] = []

    # ---- create -> viewer ready, over HTTP --------------------------------------------------------------
    from app_fixtures import AppServer
    from gradio_client import Client, handle_file

    with AppServer(weights, env={"OMP_NUM_THREADS": str(args.threads), "AVAT3R_TURNTABLE_FRAMES": "24",
                                 "AVAT3R_VIDEO_SIZE": "256"}) as srv:
        c = Client(srv.url, verbose=False)
        import importlib.util

        spec = importlib.util.spec_from_file_location("avat3r_app", ROOT / "app.py")
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        examples = app.list_examples()
        label = args.example or next((k for k in examples if "4 views" in k), next(iter(examples)))
        files = c.predict(label, api_name="/example_files")
        up = [handle_file(f["path"] if isinstance(f, dict) else f) for f in files]
        times = []
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            c.predict(up, None, api_name="/create")
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c.predict(api_name="/turntable")
        tt = time.perf_counter() - t0
    rows.append(("create -> viewer .ply ready, cold (incl. model load)", times[0], f"example {label!r}"))
    rows.append(("create -> viewer .ply ready, warm (median)", statistics.median(times[1:]), f"{args.runs} runs"))
    rows.append(("turntable video (24 frames, 256²)", tt, "after create"))

    # ---- animation, in process ----------------------------------------------------------------------------
    from avat3r.pipeline import expression_sequence, load_pipeline

    pipe = load_pipeline(weights, device="cpu")
    folder = examples[label]
    avatar = pipe.reconstruct(folder)
    keys = [k for k in ("neutral", "smile", "surprise") if k in pipe.expression_space.presets] or ["neutral"]
    codes = expression_sequence(pipe.expression_space, keys, max(1, args.frames // len(keys)))
    n = len(codes)
    t0 = time.perf_counter()
    gs = avatar.animate_batch(codes, batch=1)
    t_net = (time.perf_counter() - t0) / n
    from avat3r.pipeline import orbit_camera

    cam = orbit_camera(20, 5, 256)
    t0 = time.perf_counter()
    for g in gs:
        avatar.render_gaussians(g, cam)
    t_render = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    avatar.animation(codes, (20, 5), size=256)
    t_all = (time.perf_counter() - t0) / n
    ng = len(gs[0])
    rows.append(("animate: network per expression", t_net, f"{ng} Gaussians"))
    rows.append(("animate: render per frame 256²", t_render, "torch backend"))
    rows.append(("animated frame 256² (network + render)", t_all, f"{n} frames, batched"))

    print(f"\nAvat3r app on CPU, {args.threads} threads; weights: {wdesc}")
    print(f"{'what':58s} {'seconds':>9s}  note")
    for what, sec, note in rows:
        print(f"{what:58s} {sec:9.2f}  {note}")
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "app_cpu.json"
        out.write_text(json.dumps({"weights": wdesc, "threads": args.threads,
                                   "rows": [{"what": w, "seconds": s, "note": n_} for w, s, n_ in rows]}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
