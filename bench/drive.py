"""Driving accuracy on SynthHeads videos with known codes (docs/DRIVE.md, docs/PERFORMANCE.md).

For hold-out identities (the test split, never seen by the regressor): a driving video rendered from the procedural
head (first frames neutral with slight head motion, for calibration; then random expressions under random head
poses), driven through the whole real path (mp4 -> dlib -> PnP -> features -> regressor; no smoothing). Reports:
- per-dimension mean absolute error of the recovered code on the expression frames, against "always neutral";
- landmark error (dlib on both) of the avatar re-rendered under the recovered code and pose (the shipped model,
  reconstructed from the same identity's 4-view capture) against the driver, as % of the interocular distance,
  with the avatar at neutral expression (pose only) as the baseline;
- code-extraction time per frame.

    PYTHONPATH=. python bench/drive.py --identities 2 --frames 10 --size 256 --out docs/results/drive_synth.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--frames", type=int, default=8, help="expression frames per identity")
    ap.add_argument("--neutral", type=int, default=10)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--out", default=None)
    ap.add_argument("--timing", nargs="*", default=None, help="only time code extraction on these videos "
                    "(the regressor's architecture, random weights when none are shipped: the cost is the same)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.timing is not None:
        return timing(args.timing, args.out)

    import avat3r
    from avat3r.data.expressions import EXPRESSION_NAMES, sample_expressions
    from avat3r.data.identity import split_seeds
    from avat3r.data.synthheads import build_heads
    from avat3r.drive.render import driven_frames
    from avat3r.drive.video import code_for_space, drive_video
    from avat3r.export.sequence import head_rotation
    from avat3r.frontend.faces import FaceDetector
    from avat3r.head_template import HEAD_BOX_CENTER
    from avat3r.io.video import write_video
    from avat3r.pipeline import orbit_camera
    from avat3r.render import render

    rng = np.random.default_rng(7)
    pipe = avat3r.load_pipeline(device="cpu")
    det = FaceDetector(use_cnn=False, try_rotations=False)
    cam = orbit_camera(0.0, 0.0, args.size)
    centre = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    errs, zero_errs, nme, nme_neutral, ms = [], [], [], [], []

    def lmk(img):
        faces, _ = det.detect(img, fallbacks=False)
        return None if not faces else max(faces, key=lambda f: f.width).landmarks

    for seed in range(args.identities):
        ident = int(split_seeds("test")[seed])
        codes = np.zeros((args.neutral + args.frames, len(EXPRESSION_NAMES)), np.float32)
        codes[args.neutral:] = sample_expressions(rng, args.frames)
        codes[:, [EXPRESSION_NAMES.index("gaze_x"), EXPRESSION_NAMES.index("gaze_y")]] = 0  # landmarks cannot see gaze
        poses = rng.uniform(-1, 1, (len(codes), 3)) * [15, 8, 5]
        poses[: args.neutral] *= 0.2
        heads = build_heads(ident, codes)
        frames = []
        for g, p in zip(heads, poses):
            g = g.transform(t=-centre).transform(R=head_rotation(*p), t=centre)
            img = render(g, cam, background=(0.45, 0.45, 0.45)).color[0].clamp(0, 1).numpy()
            frames.append((img * 255 + 0.5).astype(np.uint8))
        with tempfile.TemporaryDirectory() as d:
            video = write_video(Path(d) / "driver.mp4", frames, fps=25)
            res = drive_video(video, smooth=False)
        ms.append(res.ms_per_frame)
        rec = code_for_space(res.codes, res.names, pipe.expression_space)
        sl = slice(args.neutral, None)
        errs.append(np.abs(rec[sl] - codes[sl]))
        zero_errs.append(np.abs(codes[sl]))
        avatar = pipe.reconstruct(seed, source="synth")
        for i, (a, b) in enumerate(zip(driven_frames(avatar, rec[sl], res.poses[sl], args.size),
                                       driven_frames(avatar, np.zeros_like(rec[sl]), res.poses[sl], args.size))):
            ref = lmk(frames[args.neutral + i])
            la, lb = lmk(a), lmk(b)
            if ref is None or la is None or lb is None:
                continue
            iod = np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))
            nme.append(np.linalg.norm(la - ref, axis=1).mean() / iod * 100)
            nme_neutral.append(np.linalg.norm(lb - ref, axis=1).mean() / iod * 100)
        print(f"identity {ident}: done", flush=True)
        summary(errs, zero_errs, nme, nme_neutral, ms, pipe.expression_space.names, args)  # written after each


def summary(errs, zero_errs, nme, nme_neutral, ms, names, args) -> None:
    e, z = np.concatenate(errs), np.concatenate(zero_errs)
    out = {
        "identities": len(errs), "expression_frames": len(e), "split": "test",
        "code_mae": round(float(e[:, :18].mean()), 4), "code_mae_always_neutral": round(float(z[:, :18].mean()), 4),
        "code_mae_per_dim": {n: round(float(v), 3) for n, v in zip(names[:18], e[:, :18].mean(0))},
        "code_mae_per_dim_always_neutral": {n: round(float(v), 3) for n, v in zip(names[:18], z[:, :18].mean(0))},
        "landmark_nme_percent_driven": round(float(np.mean(nme)), 2) if nme else None,
        "landmark_nme_percent_pose_only": round(float(np.mean(nme_neutral)), 2) if nme_neutral else None,
        "landmark_pairs": len(nme), "code_extraction_ms_per_frame": round(float(np.mean(ms)), 1),
        "render_size": args.size,
    }
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


def timing(videos, out) -> None:
    """Code extraction time per frame (wall and median CPU) on real videos, 60 frames each."""
    import os

    from avat3r.drive.regressor import DriveRegressor, RegressorConfig, load_regressor
    from avat3r.drive.video import drive_video
    from avat3r.errors import CheckpointError

    try:
        reg = load_regressor()
    except CheckpointError:
        reg = DriveRegressor(RegressorConfig(names=[f"d{i}" for i in range(18)], lo=[0.0] * 18, hi=[1.0] * 18)).eval()
    res = {"load_average_1min": os.getloadavg()[0], "cores": os.cpu_count()}
    for v in videos:
        r = drive_video(v, regressor=reg, max_frames=60)
        res[Path(v).name] = {"frames": len(r.found), "size": list(r.size), "wall_ms_per_frame": round(r.ms_per_frame, 1),
                             "cpu_ms_per_frame_median": round(r.cpu_ms_per_frame, 1), "face_found": float(r.found.mean())}
    print(json.dumps(res, indent=1))
    if out:
        Path(out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
