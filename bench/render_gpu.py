"""GPU renderer benchmark: gsplat (and, for comparison, the pure-PyTorch backend on CUDA) ms per frame
at 512² for 1M head-like pixel-aligned Gaussians. Needs CUDA and gsplat 1.5.3 (compiles on first use).

    python bench/render_gpu.py            # writes $OUT/render_gpu.json when $OUT is set
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avat3r.gaussians import Gaussians  # noqa: E402
from avat3r.render import render  # noqa: E402
from avat3r.render.scenes import head_like_scene  # noqa: E402


def _time_cuda(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("render_gpu.py needs a CUDA GPU")
    t0 = time.perf_counter()
    import gsplat  # noqa: F401  (first rasterization call below compiles the extension)

    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": []}
    g_cpu, cam_cpu = head_like_scene(1_000_000, 512)
    g, cam = g_cpu.to("cuda"), cam_cpu.to("cuda")
    with torch.no_grad():
        render(g, cam, backend="gsplat")
    torch.cuda.synchronize()
    results["first_call_s_including_jit_build"] = round(time.perf_counter() - t0, 1)

    def fwd(backend):
        def f():
            with torch.no_grad():
                render(g, cam, backend=backend)
        return f

    def fwd_bwd(backend):
        def f():
            leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
            out = render(Gaussians(*leaves), cam, backend=backend)
            (out.color.sum() + out.alpha.sum()).backward()
        return f

    cases = [("gsplat", "forward", fwd("gsplat"), 50), ("gsplat", "fwd+bwd", fwd_bwd("gsplat"), 50),
             ("torch", "forward", fwd("torch"), 10), ("torch", "fwd+bwd", fwd_bwd("torch"), 5)]
    print(f"{'backend':>8} {'pass':>8} {'gaussians':>10} {'size':>6} {'ms':>9}")
    for backend, name, fn, reps in cases:
        try:
            ms = _time_cuda(fn, reps)
        except Exception as e:  # noqa: BLE001  keep the other rows (the torch-on-CUDA rows are for comparison)
            results["rows"].append({"backend": backend, "pass": name, "error": f"{type(e).__name__}: {e}"})
            print(f"{backend:>8} {name:>8} failed: {type(e).__name__}: {e}")
            continue
        results["rows"].append({"backend": backend, "pass": name, "gaussians": len(g), "size": 512, "ms": round(ms, 3)})
        print(f"{backend:>8} {name:>8} {len(g):>10} {512:>5}² {ms:>9.2f}")
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "render_gpu.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
