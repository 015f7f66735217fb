"""How well the live viewer's linear expression basis matches the network (docs/VIEWER.md, docs/PERFORMANCE.md).

Reconstructs an avatar with the shipped weights, fits the basis (one network sample per slider end + random
mixtures), then compares basis and network on every preset except neutral (mixtures the fit never saw): mean
centre error in mm and render PSNR of basis vs network (frontal and 35 degrees), with the neutral avatar as the
"no motion" yardstick. Also the fit's time and the scene files' sizes.

    PYTHONPATH=. python bench/viewer_basis.py --capture demo/examples/synth_1 --out docs/results/viewer_basis.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", default="demo/examples/synth_1")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--random", type=int, default=6, help="random mixtures on top of the slider ends")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import avat3r
    from avat3r.export.basis import basis_error, fit_expression_basis, sample_codes
    from avat3r.export.viewer_scene import write_viewer_scene

    pipe = avat3r.load_pipeline(args.weights, device="cpu")
    avatar = pipe.reconstruct(args.capture)
    space = pipe.expression_space
    t0 = time.perf_counter()
    basis = fit_expression_basis(avatar, n_random=args.random)
    fit_s = time.perf_counter() - t0
    held = np.stack([space.resolve(k) for k in space.presets if k != "neutral"]).astype(np.float32)
    err = basis_error(avatar, basis, held, size=args.size)
    with tempfile.TemporaryDirectory() as d:
        write_viewer_scene(d, basis)
        sizes = {p.name: p.stat().st_size for p in Path(d).iterdir()}
    res = {"capture": args.capture, "gaussians": len(basis.base), "dims": int(basis.deltas.shape[0]),
           "fit_samples": len(sample_codes(space, args.random)),
           "fit_seconds_cpu": round(fit_s, 1), "threads": args.threads, "held_out_presets": len(held),
           **{k: round(v, 3) if isinstance(v, float) else v for k, v in err.items()}, "scene_bytes": sizes}
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
