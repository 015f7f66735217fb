"""Driving an avatar with a video: One-Euro smoothing, per-frame codes on a real talking-head clip, the CLI end
to end (side-by-side mp4, codes json, per-frame .ply zip), and bad driving videos (clear message, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avat3r.drive.smoothing import OneEuro
from avat3r.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "demo" / "examples" / "synth_1"
D0 = "KwaiVGI_LivePortrait/assets/examples/driving/d0.mp4"


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    """A driving regressor of the shipped architecture with random weights (what the tiny random checkpoint is to
    the model): the machinery is tested, not the accuracy (bench/drive.py measures that)."""
    import torch

    from avat3r.data.expressions import EXPRESSION_NAMES
    from avat3r.drive.regressor import DriveRegressor, RegressorConfig

    torch.manual_seed(0)
    names = [n for n in EXPRESSION_NAMES if not n.startswith("gaze")]
    reg = DriveRegressor(RegressorConfig(names=names, lo=[0.0] * len(names), hi=[1.0] * len(names))).eval()
    return reg.save(tmp_path_factory.mktemp("drive"))


def _astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def _video(path: Path, frames, fps=25.0) -> Path:
    from avat3r.io.video import write_video

    return write_video(path, frames, fps=fps)


def _real_frames(path: Path, n: int) -> list[np.ndarray]:
    from avat3r.drive.video import iter_video

    return [f for _, f in iter_video(path, n)]


def test_one_euro_smooths_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuro(min_cutoff=1.0, beta=0.5)
    t = np.arange(200) / 30
    noisy = 0.5 + rng.normal(0, 0.05, (200, 2))
    out = np.stack([f(x, ti) for x, ti in zip(noisy, t)])
    assert out[50:].std(0).max() < 0.5 * noisy[50:].std(0).min()  # jitter at rest is damped
    f.reset()
    step = np.where(t[:, None] < 3, 0.0, 1.0) * np.ones((1, 2))
    out = np.stack([f(x, ti) for x, ti in zip(step, t)])
    assert np.allclose(out[:90], 0) and out[-1].min() > 0.95  # a real move gets through


def test_drive_a_real_clip(realdata, regressor):
    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.video import drive_video

    reg = load_regressor(regressor)
    res = drive_video(realdata / D0, regressor=reg, max_frames=12)
    assert res.codes.shape == (12, len(res.names)) and res.poses.shape == (12, 3)
    assert res.found.all() and np.isfinite(res.landmarks).all()
    assert np.all(np.abs(res.poses) < 40)  # a frontal talking head
    cfg = reg.config
    assert (res.codes >= np.asarray(cfg.lo) - 1e-6).all() and (res.codes <= np.asarray(cfg.hi) + 1e-6).all()
    assert 0 < res.ms_per_frame < 5000


def test_drive_with_gaze_on_a_real_clip(realdata, regressor, tmp_path):
    """A regressor folder with gaze.json: the driver appends gaze_x, gaze_y (read from the irises against the
    face-fixed eyeballs, minus the start's), within [-1, 1]; a dimension with gain 0 stays 0; the first frame is its
    own neutral. A broken gaze.json is a CheckpointError naming the file."""
    import shutil

    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.video import drive_video
    from avat3r.errors import CheckpointError

    folder = Path(shutil.copytree(regressor, tmp_path / "reg"))
    (folder / "gaze.json").write_text(json.dumps({"gain": [2.25, 0.0]}))
    reg = load_regressor(folder)
    assert reg.gaze is not None and tuple(reg.gaze.gain) == (2.25, 0.0)
    res = drive_video(realdata / D0, regressor=reg, max_frames=12, smooth=False)
    assert res.names[-2:] == ["gaze_x", "gaze_y"] and res.codes.shape == (12, len(reg.config.names) + 2)
    gx, gy = res.codes[:, -2], res.codes[:, -1]
    assert np.isfinite(gx).all() and np.abs(gx).max() <= 1.0 and np.abs(gy).max() == 0.0
    assert gx[0] == 0.0
    (folder / "gaze.json").write_text('{"gains": 1}')
    with pytest.raises(CheckpointError, match="gaze.json"):
        load_regressor(folder)


@pytest.mark.slow  # two CLI runs (model + dlib load), ~2 min on a loaded 2-core box
def test_cli_drive_end_to_end(ckpt, realdata, regressor, tmp_path):
    from avat3r.io.ply import read_ply_array

    out, codes, plys = tmp_path / "driven.mp4", tmp_path / "codes.json", tmp_path / "seq.zip"
    r = subprocess.run([sys.executable, "-m", "avat3r.cli", "drive", str(EXAMPLE), str(realdata / D0), "--weights",
                        str(ckpt), "--device", "cpu", "--regressor", str(regressor), "--max-frames", "4", "--size", "64", "--side-by-side", "-o",
                        str(out), "--codes", str(codes), "--ply-zip", str(plys), "-q"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    frames = _real_frames(out, 100)
    assert len(frames) == 4 and frames[0].shape == (64, 128, 3)  # driver | avatar
    payload = json.loads(codes.read_text())
    assert len(payload["codes"]) == 4 and len(payload["codes"][0]) == len(payload["names"]) == 20
    with zipfile.ZipFile(plys) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        zf.extract(manifest["frames"][0], tmp_path)
    assert manifest["format"] == "avat3r-ply-sequence" and len(manifest["frames"]) == 4 and len(names) == 5
    arr = read_ply_array(tmp_path / manifest["frames"][0])
    assert len(arr) > 100 and {"x", "f_dc_0", "opacity", "rot_0"} <= set(arr.dtype.names)


def _cli_error(ckpt, video: Path, tmp_path, regressor) -> str:
    out = tmp_path / "o.mp4"
    r = subprocess.run([sys.executable, "-m", "avat3r.cli", "drive", str(EXAMPLE), str(video), "--weights", str(ckpt),
                        "--device", "cpu", "--regressor", str(regressor), "-o", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert not out.exists() and not list(tmp_path.glob(".o.*")), "a failed drive left a file behind"
    assert "Traceback" not in r.stderr
    return r.stderr


@pytest.mark.slow
def test_bad_driving_videos(ckpt, regressor, tmp_path):
    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.video import drive_video

    reg = load_regressor(regressor)
    blank = _video(tmp_path / "blank.mp4", [np.full((96, 96, 3), 128, np.uint8)] * 3)
    assert "no face was found" in _cli_error(ckpt, blank, tmp_path, regressor)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    assert "cannot decode" in _cli_error(ckpt, junk, tmp_path, regressor)
    a = _astronaut()
    two = _video(tmp_path / "two.mp4", [np.concatenate([a, a[:, ::-1]], 1)] * 2)
    with pytest.raises(InputError, match="faces of similar size"):
        drive_video(two, regressor=reg)
    huge = _video(tmp_path / "huge.mp4", [np.zeros((2200, 4000, 3), np.uint8)], fps=1)
    with pytest.raises(InputError, match="megapixels"):
        drive_video(huge, regressor=reg)


def test_cut_to_another_person(realdata, regressor, tmp_path):
    import cv2

    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.video import IDENTITY_EVERY, drive_video

    a = cv2.resize(_astronaut(), (256, 256))
    other = [cv2.resize(f, (256, 256)) for f in _real_frames(realdata / D0, 3)]
    frames = [a] * (IDENTITY_EVERY + 2) + other * 6
    cut = _video(tmp_path / "cut.mp4", frames)
    with pytest.raises(InputError, match="another person"):
        drive_video(cut, regressor=load_regressor(regressor))


def test_synthetic_lids_follow_the_rig():
    """The rig closes the lids with opacity, so the training landmarks get the lid edge from its formula: a blink
    brings the upper lid down (by the lid's height, several mm) and the lower one up, on the blinking side only."""
    from avat3r.data.expressions import expression
    from avat3r.data.synthheads import get_rig
    from avat3r.drive.synth import lid_offsets
    from avat3r.frontend.landmark_template import landmark_template

    neutral = np.asarray(landmark_template(), np.float64)  # any plausible 68 points in the head frame
    codes = np.stack([expression(), expression(blink_left=1.0), expression(eye_wide=1.0)])
    off = lid_offsets(get_rig(1000000).identity, neutral, codes)
    left = slice(42, 48) if neutral[42:48, 0].mean() > 0 else slice(36, 42)  # +x: the subject's left
    right = slice(36, 42) if left.start == 42 else slice(42, 48)
    assert np.abs(off[0]).max() == 0
    down, up = -off[1, left][[1, 2], 1], off[1, left][[4, 5], 1]  # upper lid comes down, lower lid up a little
    assert (down > 0.004).all() and (up > 0).all() and (up < down).all()
    assert np.abs(off[1, left][[0, 3]]).max() == 0  # the corners stay
    assert np.abs(off[1, right]).max() == 0
    assert (off[2, left][[1, 2], 1] > 0.001).all()  # eyes wide: the upper lid goes up


def test_shipped_regressor_recovers_synthetic_codes():
    """weights/drive on a SynthHeads identity it never saw (test split), under random head poses and cameras:
    clearly better than always answering neutral, and near 0 on neutral faces."""
    from avat3r.data.identity import split_seeds
    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.synth import landmark_gaussians
    from avat3r.drive.train import make_samples

    reg = load_regressor()
    seed = int(split_seeds("test")[0])
    idx = landmark_gaussians(seed)
    assert idx is not None
    feats, codes, _ = make_samples(seed, idx, 60, np.random.default_rng(3))
    pred = reg.predict(feats)
    mae, zero = np.abs(pred - codes).mean(), np.abs(codes).mean()
    assert mae < 0.75 * zero, (mae, zero)
    rest = ~codes.any(1)
    assert rest.any() and np.abs(pred[rest]).mean() < 0.1


def test_zero_frame_and_too_long_driving_videos(realdata, regressor, tmp_path):
    """A container without a single video frame (audio only; a video stream of 0 frames): a clear message. A video
    longer than the bound: only the first frames are read, and the report says so."""
    import imageio_ffmpeg

    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.video import drive_video

    reg = load_regressor(regressor)
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    for name, src in (("audio.mp4", ["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.5", "-c:a", "aac"]),
                      ("zero.mp4", ["-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-frames:v", "0"])):
        subprocess.run([ff, "-y", "-loglevel", "error", *src, str(tmp_path / name)], check=True, timeout=60)
        with pytest.raises(InputError, match="cannot decode this video .no readable video stream, or 0 frames"):
            drive_video(tmp_path / name, regressor=reg)
    res = drive_video(realdata / D0, regressor=reg, max_frames=4)  # d0.mp4 has 78 frames
    assert len(res.codes) == 4 and any("only the first 4 were used" in line for line in res.report), res.report
