"""End to end in a real browser: Playwright drives Debian's headless chromium against ``python app.py`` (tiny
random checkpoint): pick a shipped example, create, wait for the 3D viewer and the turntable video, and check from
a screenshot that the viewer's canvas shows a head (non-background pixels in the middle), not a blank or an error.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``); skipped otherwise.
Screenshots go to $OUT (when set) or the test's tmp folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_create_in_browser_shows_a_head(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from app_fixtures import AppServer, make_tiny_checkpoint
    from PIL import Image

    out = Path(os.environ.get("OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    with AppServer(ckpt) as srv, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url)
            page.wait_for_selector("#create-btn", timeout=60_000)
            page.click("#example input")
            option = page.get_by_role("option").filter(has_text="SynthHeads capture").first
            option.click()
            page.wait_for_selector("#upload :text('synth_')", timeout=30_000)  # the example's zip is in the upload box
            page.click("#create-btn")
            try:
                page.wait_for_selector("#viewer canvas", timeout=180_000)
                page.wait_for_selector("#video video", timeout=180_000)
                page.wait_for_function("() => { const v = document.querySelector('#video video'); return v && v.readyState >= 2; }",
                                       timeout=60_000)
            except Exception:
                page.screenshot(path=str(out / "app_browser_failure.png"), full_page=True)
                raise AssertionError(f"the viewer/video did not appear; see {out / 'app_browser_failure.png'}\n"
                                     f"server log:\n{srv.read_log()}") from None
            time.sleep(3)  # let the splat viewer load the .ply and draw a few frames
            assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0, "the app showed an error toast"
            shot = out / "app_browser_viewer.png"
            page.locator("#viewer canvas").screenshot(path=str(shot))
            page.screenshot(path=str(out / "app_browser_page.png"), full_page=True)
        finally:
            browser.close()
        img = np.asarray(Image.open(shot).convert("RGB")).astype(np.float32)
        h, w = img.shape[:2]
        mid = img[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        corner = np.concatenate([img[:h // 10, :w // 10].reshape(-1, 3), img[-h // 10:, -w // 10:].reshape(-1, 3)])
        bg = np.median(corner, 0)
        differs = np.abs(mid - bg).max(-1) > 30
        assert differs.mean() > 0.15, f"the viewer's middle looks blank ({differs.mean():.1%} non-background); see {shot}"
        assert mid.std() > 10, f"the viewer's middle is flat (an error overlay?); see {shot}"
        assert not errors, f"javascript errors: {errors[:3]}"
