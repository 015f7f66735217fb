"""The same capture through every door into ``Pipeline.reconstruct`` -> one row per door (issue 14).

    PYTHONPATH=. python bench/doors.py [--weights weights/] [--capture DIR]

Writes a SynthHeads capture with ``avat3r synth`` (4 views, 256 px, seed 0) unless --capture is given, then
reconstructs it passed as a folder path, as ``read_capture_folder(folder)``, as its zip, as a ``Capture`` built by
hand and as arrays with cameras and masks, on the CPU (the app's zip upload is held to the folder path
bit for bit by tests/test_doors.py). Columns: focal K[0] of the first view the network
saw, mask cover (mean of the masks it saw), Gaussians kept, whether expressions.json reached the avatar's
capture, and the report lines that warn (``reaches past``, ``warning``, ``cut off``).
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def _row(name, avatar, expressions_given=True):
    cap = avatar.capture
    g = avatar.animate()
    warn = [ln for ln in avatar.report if any(w in ln for w in ("reaches past", "warning", "cut off"))]
    return {"door": name, "focal": float(cap.cameras.K[0, 0, 0]), "cover": float(cap.masks.mean()), "gaussians": len(g),
            "expressions": ("kept" if cap.expressions is not None else "dropped") if expressions_given else "not given",
            "warnings": warn, "means": g.means.numpy()}


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
        rows.append(_row("its zip: `pipe.reconstruct(capture.zip)`", pipe.reconstruct(z)))
        from avat3r.capture import Capture

        cap = read_capture_folder(folder)
        rows.append(_row("a `Capture` built by hand", pipe.reconstruct(
            Capture(cap.images.copy(), cap.cameras, list(cap.names), cap.masks.copy(), cap.expressions))))
        rows.append(_row("arrays + `cameras=` + `masks=`", pipe.reconstruct(list(cap.images), cameras=cap.cameras,
                                                                            masks=list(cap.masks)), False))
    ref = rows[1]["means"]
    print("| same folder passed as | focal K[0] | mask cover | Gaussians | expressions.json | report warnings | "
          "Gaussians equal to read_capture_folder's |")
    print("| --- | ---: | ---: | ---: | --- | --- | --- |")
    for r in rows:
        same = r["means"].shape == ref.shape and np.array_equal(r["means"], ref)
        w = "; ".join(r["warnings"]) if r["warnings"] else "none"
        print(f"| {r['door']} | {r['focal']:.0f} px | {100 * r['cover']:.1f} % | {r['gaussians']:,} | "
              f"{r['expressions']} | {w[:160]} | {'yes' if same else 'no'} |")


if __name__ == "__main__":
    main()
