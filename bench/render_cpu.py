"""CPU renderer benchmark: ms per frame of the pure-PyTorch backend on head-like pixel-aligned scenes.

    python bench/render_cpu.py            # full table (250k / 1M Gaussians at 256² / 512², + backward)
    python bench/render_cpu.py --quick    # 250k at 256² only

Torch threads = 2 (a free Hugging Face Space / the dev box). Prints wall and process-CPU time (median);
on a shared machine wall time includes waiting for the cores, CPU time does not. Writes
$OUT/render_cpu.json when $OUT is set.
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

from avat3r.gaussians import Gaussians  # noqa: E402
from avat3r.render import render  # noqa: E402
from avat3r.render.scenes import head_like_scene  # noqa: E402


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - w) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = [(250_000, 256, False), (250_000, 256, True)]
    if not args.quick:
        cases += [(250_000, 512, False), (1_000_000, 256, False), (1_000_000, 512, False)]
    rows = []
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'gaussians':>10} {'size':>6} {'pass':>9} {'wall ms':>9} {'cpu ms':>9}")
    for n, size, backward in cases:
        g, cam = head_like_scene(n, size)
        if backward:
            def step():
                leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
                out = render(Gaussians(*leaves), cam, backend="torch")
                (out.color.sum() + out.alpha.sum()).backward()
        else:
            def step():
                with torch.no_grad():
                    render(g, cam, backend="torch")
        wall, cpu = _time(step, max(1, args.repeats if n < 1_000_000 else args.repeats // 2))
        name = "fwd+bwd" if backward else "forward"
        rows.append({"gaussians": n, "size": size, "pass": name, "wall_ms": round(wall, 1), "cpu_ms": round(cpu, 1)})
        print(f"{n:>10} {size:>5}² {name:>9} {wall:>9.0f} {cpu:>9.0f}")
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "render_cpu.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1))
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
