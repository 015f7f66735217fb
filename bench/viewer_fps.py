"""Frame rate of the live 3D viewer (demo/viewer) in headless chromium with software WebGL (SwiftShader).

Writes a scene for an avatar (shipped weights, a SynthHeads example; or --scene an existing scene folder), serves
it with the viewer over localhost, and reads the page's own counter (window.avat3rViewer) while a clip plays
(splats re-evaluated from the basis every clip frame) and while paused (render only).

    PYTHONPATH=. python bench/viewer_fps.py --seconds 10 [--scene DIR] [--size 640]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def make_scene(out: Path) -> Path:
    import avat3r
    from avat3r.export.basis import fit_expression_basis
    from avat3r.export.viewer_scene import preset_clip, write_viewer_scene

    pipe = avat3r.load_pipeline(device="cpu")
    avatar = pipe.reconstruct(ROOT / "demo" / "examples" / "synth_1")
    basis = fit_expression_basis(avatar, n_random=2)
    write_viewer_scene(out, basis, clips={"presets": preset_clip(pipe.expression_space)}, presets=pipe.expression_space.presets)
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=640, help="viewport side in CSS pixels")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    site = Path(tempfile.mkdtemp(prefix="viewer_fps_"))
    (site / "viewer").symlink_to(ROOT / "demo" / "viewer", target_is_directory=True)
    if args.scene:
        (site / "scene").symlink_to(Path(args.scene).resolve(), target_is_directory=True)
    else:
        make_scene(site / "scene")
    n = json.loads((site / "scene" / "scene.json").read_text())["count"]
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "8799", "--bind", "127.0.0.1"], cwd=site,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = {"splats": n, "viewport": args.size, "browser": "headless chromium, SwiftShader (software WebGL2)"}
    try:
        time.sleep(1.0)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
            page = b.new_page(viewport={"width": args.size, "height": args.size})
            res["chromium"] = b.version
            page.goto("http://127.0.0.1:8799/viewer/viewer.html?scene=../scene/scene.json")
            page.wait_for_function("() => window.avat3rViewer && window.avat3rViewer.ready", timeout=120_000)
            time.sleep(3)
            for mode in ("playing", "paused"):
                if mode == "paused":
                    page.click("#play")
                    time.sleep(1)
                s0 = page.evaluate("() => ({f: window.avat3rViewer.frames, u: window.avat3rViewer.updates, t: performance.now()})")
                time.sleep(args.seconds)
                s1 = page.evaluate("() => ({f: window.avat3rViewer.frames, u: window.avat3rViewer.updates, t: performance.now()})")
                dt = (s1["t"] - s0["t"]) / 1000
                res[f"fps_{mode}"] = round((s1["f"] - s0["f"]) / dt, 2)
                res[f"basis_updates_per_s_{mode}"] = round((s1["u"] - s0["u"]) / dt, 2)
            b.close()
    finally:
        srv.terminate()
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
