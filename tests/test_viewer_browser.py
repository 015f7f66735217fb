"""The live 3D viewer (demo/viewer, Spark + three.js installed by npm) in a real headless chromium (software GL).

1. In the app (``python app.py``, tiny random checkpoint): create from a shipped example, open the live viewer,
   and check that its canvas shows a head, that a drag orbits it (the image changes) and that moving an
   expression slider reaches the viewer (it re-evaluates its splats).
2. The viewer page alone on a scene written by ``avat3r.export.viewer_scene`` with a clip that carries head poses
   (the tiny random network barely moves its Gaussians, so the poses make the motion visible): the pixels change
   over time while it plays.

Needs Debian's chromium, playwright (never ``playwright install``) and ``npm ci --prefix demo/viewer``; skipped
otherwise. Screenshots go to $OUT when set, else the test's tmp folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VIEWER = ROOT / "demo" / "viewer"
CHROMIUM = "/usr/bin/chromium"
# SwiftShader (software WebGL2): what a machine without a GPU, and CI, draws with
ARGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(not (VIEWER / "node_modules" / "@sparkjsdev" / "spark").is_dir(),
                       reason="viewer packages not installed (npm ci --prefix demo/viewer)"),
]


def _out(tmp_path) -> Path:
    out = Path(os.environ.get("OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _shows_a_head(img: np.ndarray) -> float:
    """Fraction of the middle that differs from the background colour (the corners' median)."""
    h, w = img.shape[:2]
    img = img[: int(h * 0.88)]  # leave out the control bar at the bottom
    h = img.shape[0]
    corner = np.concatenate([img[: h // 10, : w // 10].reshape(-1, 3), img[: h // 10, -w // 10:].reshape(-1, 3)])
    bg = np.median(corner, 0)
    mid = img[h // 5: 4 * h // 5, w // 4: 3 * w // 4]
    return float((np.abs(mid - bg).max(-1) > 25).mean())


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels (above the control bar) that changed by more than 20 levels."""
    h = int(a.shape[0] * 0.88)
    return float((np.abs(a[:h] - b[:h]).max(-1) > 20).mean())


def _viewer_state(frame) -> dict:
    return frame.evaluate("() => window.avat3rViewer ? JSON.parse(JSON.stringify(window.avat3rViewer)) : null")


def _wait_ready(frame, timeout_s: float = 300.0) -> dict:
    frame.wait_for_function("() => window.avat3rViewer && (window.avat3rViewer.ready || window.avat3rViewer.error)",
                            timeout=timeout_s * 1000)
    st = _viewer_state(frame)
    assert st["ready"] and not st["error"], f"viewer failed: {st}"
    frame.wait_for_function("() => window.avat3rViewer.frames >= 3", timeout=60_000)
    return st


def _wait_drawn(target, path: Path, timeout_s: float = 60.0) -> np.ndarray:
    """Screenshot ``target`` until the head is drawn (Spark sorts in a worker: the first frames can be empty)."""
    t0 = time.time()
    while True:
        target.screenshot(path=str(path))
        img = _pixels(path)
        if _shows_a_head(img) > 0.15 or time.time() - t0 > timeout_s:
            return img
        time.sleep(0.5)


def _drag(page, box, dx: float) -> None:
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + 10, steps=8)
    page.mouse.up()


@pytest.mark.slow  # ~50 s on a free 2-core machine, most of it starting the app (gradio import) and its page
def test_live_viewer_in_app(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from app_fixtures import AppServer, make_tiny_checkpoint

    out = _out(tmp_path)
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    with AppServer(ckpt, env={"AVAT3R_VIEWER_SAMPLES": "0"}, timeout=300) as srv, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            seen: list[str] = []  # what the page and the iframe said and what failed to load: for a stall's message
            page.on("console", lambda m: seen.append(f"console {m.type}: {m.text}"[:300]))
            page.on("requestfailed", lambda r: seen.append(f"request failed: {r.url[-120:]} {r.failure}"))
            t0 = time.time()
            page.goto(srv.url)
            page.wait_for_selector("#create-btn", timeout=60_000)
            page.click("#example input")
            page.get_by_role("option").filter(has_text="SynthHeads capture").first.click()
            page.wait_for_selector("#upload :text('synth_')", timeout=120_000)
            page.click("#create-btn")
            page.wait_for_selector("#viewer canvas", timeout=180_000)
            frame = None
            try:
                page.click("#live-btn", timeout=120_000)
                page.wait_for_selector("#live-frame[src*='scene=']", timeout=180_000)
                frame = page.locator("#live-frame").element_handle().content_frame()
                _wait_ready(frame)
            except Exception as e:  # noqa: BLE001  (say where it stopped, with what the page showed)
                page.screenshot(path=str(out / "viewer_app_failure.png"), full_page=True)
                try:
                    st = _viewer_state(frame) if frame is not None else "no iframe with a scene"
                except Exception as e2:  # noqa: BLE001
                    st = f"unreadable ({e2})"
                raise AssertionError(f"the live viewer did not come up after {time.time() - t0:.0f} s ({type(e).__name__}: "
                                     f"{str(e).splitlines()[0]}); viewer state: {st}; see {out / 'viewer_app_failure.png'}\n"
                                     "page:\n" + "\n".join(seen[-20:]) + f"\nserver log:\n{srv.read_log()}") from None
            frame.click("#play")  # pause the preset clip: only the drag moves the image now
            frame.wait_for_function("() => !window.avat3rViewer.playing")
            iframe = page.locator("#live-frame")
            a = out / "viewer_app_front.png"
            _wait_drawn(iframe, a)
            time.sleep(1.0)
            iframe.screenshot(path=str(a))
            _drag(page, iframe.bounding_box(), 160)
            time.sleep(1.5)
            b = out / "viewer_app_orbited.png"
            iframe.screenshot(path=str(b))
            # an expression slider -> postMessage -> the viewer re-evaluates its splats from the basis
            before = _viewer_state(frame)["updates"]
            page.get_by_role("tab", name="2 · Animate").click()
            slider = page.locator("input[type=range]").first
            slider.wait_for(timeout=30_000)
            slider.evaluate("(el) => { el.value = 0.8; el.dispatchEvent(new Event('input', {bubbles: true}));"
                            " el.dispatchEvent(new Event('change', {bubbles: true})); }")
            frame.wait_for_function(f"() => window.avat3rViewer.updates > {before}", timeout=30_000)
        finally:
            browser.close()
    img_a, img_b = _pixels(a), _pixels(b)
    assert _shows_a_head(img_a) > 0.15, f"the live viewer's middle looks empty; see {a}"
    assert _changed(img_a, img_b) > 0.02, f"dragging did not orbit the view; see {a} and {b}"
    assert not errors, f"javascript errors in the page: {errors[:3]}"


def test_viewer_plays_a_clip(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from app_fixtures import make_tiny_checkpoint

    import avat3r
    from avat3r.export.basis import fit_expression_basis, sample_codes
    from avat3r.export.viewer_scene import preset_clip, write_viewer_scene

    out = _out(tmp_path)
    pipe = avat3r.load_pipeline(make_tiny_checkpoint(tmp_path / "tiny"), device="cpu")
    avatar = pipe.reconstruct(ROOT / "demo" / "examples" / "synth_1")
    space = pipe.expression_space
    basis = fit_expression_basis(avatar, sample_codes(space, 0)[:4])  # a rough basis is enough here
    clip = preset_clip(space, ["neutral", "smile"], frames_per_step=12, fps=12)
    t = np.arange(len(clip["codes"]))
    clip["poses"] = np.stack([25 * np.sin(2 * np.pi * t / len(t)), 10 * np.cos(2 * np.pi * t / len(t)), 0 * t], 1).tolist()
    site = tmp_path / "site"
    site.mkdir()
    (site / "viewer").symlink_to(VIEWER, target_is_directory=True)
    write_viewer_scene(site / "scene", basis, clips={"nod": clip}, presets=space.presets)
    port = __import__("app_fixtures").free_port()
    srv = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=site,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 480, "height": 480})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                for _ in range(50):
                    try:
                        page.goto(f"http://127.0.0.1:{port}/viewer/viewer.html?scene=../scene/scene.json")
                        break
                    except Exception:  # noqa: BLE001  (server still starting)
                        time.sleep(0.2)
                st = _wait_ready(page.main_frame)
                assert st["playing"] and st["clip"] == "nod", st
                _wait_drawn(page, out / "viewer_clip_0.png")
                shots = []
                for i in range(3):
                    shots.append(out / f"viewer_clip_{i}.png")
                    page.screenshot(path=str(shots[-1]))
                    time.sleep(0.7)
                st = _viewer_state(page.main_frame)
            finally:
                browser.close()
    finally:
        srv.terminate()
        srv.wait(10)
    imgs = [_pixels(s) for s in shots]
    assert _shows_a_head(imgs[0]) > 0.15, f"the viewer's middle looks empty; see {shots[0]}"
    assert max(_changed(imgs[0], imgs[1]), _changed(imgs[1], imgs[2])) > 0.02, f"the clip did not move; see {shots}"
    assert st["updates"] >= 2 and st["frames"] >= 3, st
    assert not errors, f"javascript errors in the page: {errors[:3]}"
