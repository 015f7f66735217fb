"""The benchmark scripts bench/fidelity.py and bench/realdata.py, reduced: one case each, tiny sizes, the tests'
tiny random checkpoint. Checks what they write (structure, finite numbers in range), not the model's quality."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

# the checkout's ../shared/realdata (AVAT3R_REALDATA overrides, e.g. from a git worktree)
REALDATA = Path(os.environ.get("AVAT3R_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))


def _finite_psnr(x) -> bool:
    return x is not None and math.isfinite(x) and 0.0 < x < 100.0


def _finite_ssim(x) -> bool:
    return x is not None and math.isfinite(x) and -1.0 <= x <= 1.0


def test_fidelity_reduced(ckpt, tmp_path):
    import fidelity

    out = tmp_path / "eval"
    assert fidelity.main(["--checkpoint", str(ckpt), "--num-samples", "1", "--views", "4,1", "--input-size", "32",
                          "--supervision-size", "32", "--out", str(out), "--label", "test"]) == 0
    doc = json.loads((out / "fidelity.json").read_text())["runs"]["test"]
    assert set(doc["views"]) == {"4", "1"}
    v4 = doc["views"]["4"]["methods"]
    assert set(v4) == {"avat3r", "prior_only", "static"}
    assert set(doc["views"]["1"]["methods"]) == {"avat3r"}
    for m in v4.values():
        assert _finite_psnr(m["psnr"]) and _finite_ssim(m["ssim"]) and m["counts"]["images"] == 8
    s = doc["summary"]
    assert math.isclose(s["model_minus_prior_only_db"], v4["avat3r"]["psnr"] - v4["prior_only"]["psnr"])
    assert _finite_psnr(s["one_view_psnr_db"]) and "two_views_psnr_db" not in s
    reg = doc["region"]
    assert reg["samples"] == 1 and 0.0 <= reg["mean_region_fraction"] <= 1.0
    if reg["with_region"]:  # a random target expression almost always moves some pixels
        assert all(_finite_psnr(reg["psnr"][k]) for k in ("avat3r", "static", "neutral_gt"))
        # the response: the avatar's change over the truth's, >= 0, and the summary carries it
        assert reg["response"] >= 0 and math.isfinite(reg["response"]) and s["region_response"] == reg["response"]
    assert set(s["goals_met"]) == {"model_minus_prior_only_db", "one_view_psnr_db"} | (
        {"region_model_minus_static_db"} if reg["with_region"] else set())
    assert doc["meta"]["checkpoint"]["path"] == str(ckpt) and "--num-samples 1" in doc["meta"]["command"]
    md = (out / "fidelity.md").read_text()
    assert "≥ +9 dB" in md and "1 input view" in md and "expression response" in md


def test_realdata_reduced(ckpt, tmp_path):
    if not (REALDATA / "MANIFEST.md").is_file():
        pytest.skip(f"real data not found at {REALDATA} (the checkout's ../shared/realdata; set AVAT3R_REALDATA)")
    from avat3r.frontend import faces_available

    if not faces_available():
        pytest.skip("the portrait case needs the dlib face detector (dlib-bin + face-recognition-models)")
    import cv2
    import realdata

    out = tmp_path / "eval"
    argv = ["--checkpoint", str(ckpt), "--data", str(REALDATA), "--cases", "portrait_astronaut", "--tile", "32",
            "--out", str(out), "--label", "test"]
    assert realdata.main(argv) == 0
    doc = json.loads((out / "realdata.json").read_text())
    run = doc["runs"]["test"]
    r = run["results"]["portrait_astronaut"]
    assert "error" not in r, r.get("error")
    assert len(r["inputs"]) == 1
    v = r["inputs"][0]
    assert _finite_psnr(v["psnr"]) and _finite_ssim(v["ssim"]) and 0.05 < v["mask_fraction"] < 0.95
    assert math.isclose(run["summary"]["mean_reprojection_psnr"], v["psnr"])
    grid = cv2.imread(str(out / "realdata_portrait_astronaut.png"))
    assert grid.shape == (32, 5 * 32, 3) and grid.std() > 0  # five renders, not an empty picture
    # a second run under another label keeps the first (before / after retraining side by side)
    assert realdata.main(argv[:-1] + ["again"]) == 0
    doc2 = json.loads((out / "realdata.json").read_text())
    assert set(doc2["runs"]) == {"test", "again"}
    assert doc2["runs"]["again"]["results"]["portrait_astronaut"]["inputs"][0]["psnr"] == pytest.approx(v["psnr"], abs=1e-6)
    assert "## test" in (out / "realdata.md").read_text() and "## again" in (out / "realdata.md").read_text()


def test_masked_scores_definition():
    import realdata

    rng = np.random.default_rng(0)
    gt = rng.random((1, 24, 24, 3)).astype(np.float32)
    mask = np.zeros((1, 24, 24), np.float32)
    mask[0, 4:20, 4:20] = 1
    pred = gt.copy()
    pred[0, 0:2] = 0  # outside the mask: does not count
    pred[0, 10, 10] += 0.1  # inside: one pixel off by 0.1 in every channel
    r = realdata.masked_scores(pred, gt, mask)[0]
    assert r["psnr"] == pytest.approx(10 * math.log10(256 / 0.01), rel=1e-4)
    assert r["mask_fraction"] == pytest.approx(256 / 576)
    assert 0.9 < r["ssim"] < 1.0


def test_whole_image_score_sees_a_halo_the_masked_score_does_not():
    import realdata

    rng = np.random.default_rng(1)
    mask = np.zeros((1, 24, 24), np.float32)
    mask[0, 6:18, 6:18] = 1
    gt = rng.random((1, 24, 24, 3)).astype(np.float32)  # the photo, background and all
    pred = gt * mask[..., None]  # the head exactly, black around it
    clean = realdata.masked_scores(pred, gt, mask)[0]
    halo = pred.copy()
    halo[0, 4:6, 6:18] = 0.5  # a 2-pixel band above the head: outside the mask
    r = realdata.masked_scores(halo, gt, mask)[0]
    assert r["psnr"] == clean["psnr"]  # the masked PSNR cannot see it
    assert r["psnr_image"] == pytest.approx(10 * math.log10(576 / (24 * 0.25)), rel=1e-4)
    assert clean["psnr_image"] > r["psnr_image"] + 20
