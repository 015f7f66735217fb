"""The same capture through every door into ``Pipeline.reconstruct`` -> one row per door (issue 14).

    PYTHONPATH=. python bench/doors.py [--weights weights/] [--capture DIR]

Writes a SynthHeads capture with ``avat3r synth`` (4 views, 256 px, seed 0) unless --capture is given, then
reconstructs it passed as a folder path, as ``read_capture_folder(folder)``, as a zip (the app's upload route:
the capture source), and as a ``Capture`` object, on the CPU. Columns: focal K[0] of the first view the network
saw, mask cover (mean of the masks it saw), Gaussians kept, whether expressions.json reached the avatar's
capture, and the report lines that warn (``reaches past``, ``warning``, ``cut off``).
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def _row(name, avatar, same_as=None):
    cap = avatar.capture
    g = avatar.animate()
    warn = [ln for ln in avatar.report if any(w in ln for w in ("reaches past", "warning", "cut off"))]
    return {"door": name, "focal": float(cap.cameras.K[0, 0, 0]), "cover": float(cap.masks.mean()), "gaussians": len(g),
            "expressions": cap.expressions is not None, "warnings": warn, "means": g.means.numpy()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--capture", default=None)
    args = ap.parse_args()
    import torch

    import avat3r
    from avat3r.data.capture_folder import read_capture_folder, synth

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="doors_"))
    folder = Path(args.capture) if args.capture else Path(synth(tmp / "synth", subjects=1, seed=0, views=4, size=256)[0])
    pipe = avat3r.load_pipeline(args.weights, device="cpu")
    rows = [_row("a path: `pipe.reconstruct(folder)`", pipe.reconstruct(folder)),
            _row("`pipe.reconstruct(read_capture_folder(folder))`", pipe.reconstruct(read_capture_folder(folder)))]
    try:
        from avat3r.sources import get_source
    except ImportError:  # before issue 14: no source registry, no zip door outside the app
        get_source = None
    if get_source is not None:
        z = tmp / "capture.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, Path(folder.name) / p.relative_to(folder))
        rows.append(_row("a zip (the app's upload): `pipe.reconstruct(capture.zip)`", pipe.reconstruct(z)))
        cap = get_source("synth").to_capture(0, size=256).capture if False else read_capture_folder(folder)
        rows.append(_row("a `Capture` object built by hand", pipe.reconstruct(
            avat3r.Capture(cap.images, cap.cameras, cap.names, cap.masks, cap.expressions))))
    ref = rows[1]["means"]
    print("| same folder passed as | focal K[0] | mask cover | Gaussians | expressions.json | report warnings | Gaussians equal to read_capture_folder's |")
    print("| --- | ---: | ---: | ---: | --- | --- | --- |")
    for r in rows:
        same = r["means"].shape == ref.shape and np.array_equal(r["means"], ref)
        w = "; ".join(r["warnings"]) if r["warnings"] else "none"
        print(f"| {r['door']} | {r['focal']:.0f} px | {100 * r['cover']:.1f} % | {r['gaussians']:,} | "
              f"{'kept' if r['expressions'] else 'dropped'} | {w[:160]} | {'yes' if same else 'no'} |")


if __name__ == "__main__":
    main()
