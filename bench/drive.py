"""Driving accuracy on SynthHeads videos with known codes (docs/DRIVE.md, docs/PERFORMANCE.md).

For hold-out identities (the test split, never seen by the regressor): a driving video rendered from the procedural
head (first frames neutral and near-frontal, for calibration; then random expressions while the head sways smoothly
to ``--pose`` and back, or jumps to a new random pose every frame with ``--motion jump``), driven through the whole
real path (mp4 -> dlib -> tracker -> PnP -> features -> regressor; no smoothing). Reports:
- per-dimension mean absolute error of the recovered code on the expression frames, against "always neutral";
- with ``--gaze`` the eyes look around, and the gaze estimate (the regressor's gaze.json gains) is scored against 0;
- landmark error (dlib on both) of the avatar re-rendered under the recovered code and pose (the shipped model,
  reconstructed from the same identity's 4-view capture) against the driver, as % of the interocular distance,
  with the avatar at neutral expression (pose only) as the baseline (skipped with ``--no-avatar``);
- code-extraction time per frame.

    PYTHONPATH=. python bench/drive.py --identities 4 --frames 20 --size 256 --threads 1 --no-avatar --pose 20 10 5
    PYTHONPATH=. python bench/drive.py --identities 2 --frames 10 --size 256 --threads 1 --pose 15 8 5
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
    ap.add_argument("--pose", type=float, nargs=3, default=(15.0, 8.0, 5.0), metavar=("YAW", "PITCH", "ROLL"),
                    help="head turn bounds of the expression frames, degrees (0 0 0: frontal)")
    ap.add_argument("--regressor", default=None, help="regressor folder (default weights/drive)")
    ap.add_argument("--gaze", action="store_true", help="let the eyes look around (gaze_x +-1, gaze_y +-0.8) and "
                    "score the gaze estimate (avat3r.drive.gaze) against always answering 0")
    ap.add_argument("--no-avatar", action="store_true", help="skip the re-rendered avatar's landmark error (slow)")
    ap.add_argument("--motion", choices=("smooth", "jump"), default="smooth", help="head pose over the expression "
                    "frames: a smooth sway to the bounds and back (a video), or a new random pose every frame (the "
                    "driver's tracker, which follows the last frame's face box, then loses the face)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing", nargs="*", default=None, help="only time code extraction on these videos "
                    "(the regressor's architecture, random weights when none are shipped: the cost is the same)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing is not None:
        return timing(args.timing, args.out)

    import avat3r
    from avat3r.data.expressions import EXPRESSION_NAMES, sample_expressions
    from avat3r.data.identity import split_seeds
    from avat3r.drive.gaze import GazeConfig
    from avat3r.drive.regressor import load_regressor
    from avat3r.drive.render import driven_frames
    from avat3r.drive.rendered import render_frames
    from avat3r.drive.video import code_for_space, drive_video
    from avat3r.frontend.faces import FaceDetector
    from avat3r.io.video import write_video

    rng = np.random.default_rng(args.seed)
    pipe = avat3r.load_pipeline(device="cpu")
    reg = load_regressor(args.regressor)
    det = FaceDetector(use_cnn=False, try_rotations=False)
    errs, zero_errs, nme, nme_neutral, ms, gaze = [], [], [], [], [], []

    def lmk(img):
        faces, _ = det.detect(img, fallbacks=False)
        return None if not faces else max(faces, key=lambda f: f.width).landmarks

    for seed in range(args.identities):
        ident = int(split_seeds("test")[seed])
        codes = np.zeros((args.neutral + args.frames, len(EXPRESSION_NAMES)), np.float32)
        codes[args.neutral:] = sample_expressions(rng, args.frames)
        gxy = [EXPRESSION_NAMES.index("gaze_x"), EXPRESSION_NAMES.index("gaze_y")]
        codes[:, gxy] = 0
        if args.gaze:  # the eyes look around in the expression frames (at the camera in the neutral start)
            codes[args.neutral:, gxy] = rng.uniform(-1, 1, (args.frames, 2)) * [1.0, 0.8]
        poses = rng.uniform(-1, 1, (len(codes), 3)) * np.asarray(args.pose)
        if args.motion == "smooth":  # each angle sways out to its bound and back, 1.5-3 s a period, from frontal
            t = np.arange(args.frames)[:, None] / 25.0
            period, sign = rng.uniform(1.5, 3.0, 3), rng.choice([-1.0, 1.0], 3)
            poses[args.neutral:] = sign * np.sin(2 * np.pi * t / period) * np.asarray(args.pose)
        poses[: args.neutral] = rng.uniform(-1, 1, (args.neutral, 3)) * [3.0, 1.6, 1.0]  # a near-frontal start
        frames = list(render_frames(ident, codes, poses, args.size))
        with tempfile.TemporaryDirectory() as d:
            video = write_video(Path(d) / "driver.mp4", frames, fps=25)
            res = drive_video(video, regressor=reg, smooth=False)
            if args.gaze:
                gaze.append(gaze_errors(video, res, codes[:, gxy], args.neutral, reg.gaze))
        ms.append(res.ms_per_frame)
        rec = code_for_space(res.codes, res.names, pipe.expression_space)
        sl = slice(args.neutral, None)
        errs.append(np.abs(rec[sl] - codes[sl]))
        zero_errs.append(np.abs(codes[sl]))
        print(f"identity {ident}: code done", flush=True)
        if args.no_avatar:
            args.gaze_gains = (reg.gaze or GazeConfig()).gain
            summary(errs, zero_errs, nme, nme_neutral, ms, pipe.expression_space.names, args, gaze)
            continue
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
        args.gaze_gains = (reg.gaze or GazeConfig()).gain
        summary(errs, zero_errs, nme, nme_neutral, ms, pipe.expression_space.names, args, gaze)  # written after each


def gaze_errors(video, res, true_gaze, n_neutral, config=None):
    """The gaze estimate on a driving video (its frames again, the driver's landmarks and poses) with the
    regressor's gains (``config``; None: the rig's own, 1/0.45 and 1/0.35 per radian) -> rows [T_expr, 4]:
    |estimate - truth| for gaze_x, gaze_y, then |truth| (always 0) for both."""
    from avat3r.drive.features import default_intrinsics, landmark_features
    from avat3r.drive.gaze import GazeConfig, eye_directions, gaze_code, iris_centres
    from avat3r.drive.video import iter_video

    K = default_intrinsics(*res.size)
    dirs = np.full((len(res.found), 2, 2), np.nan)
    for i, f in iter_video(video, len(res.found)):
        if res.found[i]:
            lm = res.landmarks[i].astype(np.float64)
            dirs[i] = eye_directions(iris_centres(f, lm), landmark_features(lm, K)[1].world_to_cam, K)
    neutral = np.nanmedian(dirs[:n_neutral], 0)
    est = np.zeros((len(dirs), 2))
    for i in range(len(dirs)):
        g = gaze_code(dirs[i], neutral, config or GazeConfig())
        est[i] = g if g is not None else (est[i - 1] if i else 0)
    t = true_gaze[n_neutral:]
    return np.concatenate([np.abs(est[n_neutral:] - t), np.abs(t)], 1)


def summary(errs, zero_errs, nme, nme_neutral, ms, names, args, gaze=()) -> None:
    e, z = np.concatenate(errs), np.concatenate(zero_errs)
    out = {
        "identities": len(errs), "expression_frames": len(e), "split": "test",
        "code_mae": round(float(e[:, :18].mean()), 4), "code_mae_always_neutral": round(float(z[:, :18].mean()), 4),
        "code_mae_per_dim": {n: round(float(v), 3) for n, v in zip(names[:18], e[:, :18].mean(0))},
        "code_mae_per_dim_always_neutral": {n: round(float(v), 3) for n, v in zip(names[:18], z[:, :18].mean(0))},
        "landmark_nme_percent_driven": round(float(np.mean(nme)), 2) if nme else None,
        "landmark_nme_percent_pose_only": round(float(np.mean(nme_neutral)), 2) if nme_neutral else None,
        "landmark_pairs": len(nme), "code_extraction_ms_per_frame": round(float(np.mean(ms)), 1),
        "render_size": args.size, "head_pose_bounds_deg": list(args.pose), "head_motion": args.motion, "regressor": args.regressor or "weights/drive",
    }
    if gaze:
        g = np.concatenate(gaze).mean(0)
        out["gaze_gains"] = list(args.gaze_gains)
        out["gaze_mae"] = {"gaze_x": round(float(g[0]), 3), "gaze_y": round(float(g[1]), 3)}
        out["gaze_mae_always_zero"] = {"gaze_x": round(float(g[2]), 3), "gaze_y": round(float(g[3]), 3)}
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
