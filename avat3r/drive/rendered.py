"""Rendered SynthHeads driving samples: the procedural head under a known code and head pose, rendered, and dlib's
landmarks detected on the render (what the driver sees), instead of landmarks carried by the rig.

Rig-carried landmarks are fixed surface points; dlib's are not: on a turned head its eye corners and jaw contour
slide to the visible outline, and on rendered eyes its eye points follow the iris. A regressor trained only on
rig-carried landmarks read a closed eye as a wide one under 12 degrees of yaw (docs/DRIVE.md); these samples show it
what dlib does. They cost a render each (~0.3 CPU-s at 256 px), so there are hundreds, not thousands, per identity.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["NEUTRAL_POSE", "TURN_POSE", "random_codes", "render_frames", "rendered_samples"]

TURN_POSE = (30.0, 15.0, 10.0)   # yaw, pitch, roll bounds (degrees) of the expression frames
NEUTRAL_POSE = (3.0, 1.6, 1.0)   # the near-frontal calibration frames (a driving video's relaxed start)


def random_codes(rng: np.random.Generator, n: int, neutral_share: float = 0.1, uniform_gaze: bool = True) -> np.ndarray:
    """n SynthHeads codes [n, C]: the sampler's mixtures, ``neutral_share`` of them neutral (expression, not gaze);
    with uniform_gaze the eyes look everywhere (gaze_x +-1, gaze_y +-0.8), else near the camera (the sampler's)."""
    from ..data.expressions import EXPRESSION_NAMES, sample_expressions

    codes = sample_expressions(rng, n).astype(np.float32)
    gaze = codes[:, [EXPRESSION_NAMES.index("gaze_x"), EXPRESSION_NAMES.index("gaze_y")]].copy()
    codes[: int(round(n * neutral_share))] = 0
    if uniform_gaze:
        gaze = rng.uniform(-1, 1, (n, 2)) * [1.0, 0.8]
    codes[:, [EXPRESSION_NAMES.index("gaze_x"), EXPRESSION_NAMES.index("gaze_y")]] = gaze
    return codes


def render_frames(seed: int, codes: np.ndarray, poses: np.ndarray, size: int = 256, background=0.45):
    """Identity ``seed`` under codes [T, C] and head poses [T, 3] (yaw, pitch, roll degrees about the head
    centre) seen by the frontal camera -> uint8 frames [T, size, size, 3] (what ``bench/drive.py`` renders)."""
    from ..data.synthheads import build_heads
    from ..export.sequence import head_rotation
    from ..head_template import HEAD_BOX_CENTER
    from ..pipeline import orbit_camera
    from ..render import render

    cam = orbit_camera(0.0, 0.0, size)
    centre = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    out = []
    for i in range(0, len(codes), 32):  # a few dozen heads at a time: bounded memory
        with torch.no_grad():
            heads = build_heads(seed, np.asarray(codes[i:i + 32], np.float32))
            for g, p in zip(heads, poses[i:i + 32]):
                g = g.transform(t=-centre).transform(R=head_rotation(*p), t=centre)
                img = render(g, cam, background=(background,) * 3).color[0].clamp(0, 1).numpy()
                out.append((img * 255 + 0.5).astype(np.uint8))
    return np.stack(out)


def rendered_samples(seed: int, n: int, rng: np.random.Generator, *, size: int = 256, n_neutral: int = 5,
                     max_pose=TURN_POSE, keep_frames: bool = False, uniform_gaze: bool = True) -> dict:
    """Identity ``seed`` -> n rendered samples with dlib's landmarks, as the driver computes them:
    {landmarks [n, 68, 2] (NaN: no face), codes [n, C], poses [n, 3], neutral_landmarks [n_neutral, 68, 2],
    iris [n, 2, 2] and neutral_iris (``gaze.iris_centre`` per eye, NaN where not found), size,
    frames (with keep_frames)}."""
    from ..frontend.faces import FaceDetector
    from .gaze import iris_centres
    from .video import DETECT_SIDE

    codes = random_codes(rng, n, uniform_gaze=uniform_gaze)
    poses = rng.uniform(-1, 1, (n, 3)) * np.asarray(max_pose)
    n_codes = np.zeros((n_neutral, codes.shape[1]), np.float32)
    n_poses = rng.uniform(-1, 1, (n_neutral, 3)) * np.asarray(NEUTRAL_POSE)
    frames = render_frames(seed, np.concatenate([n_codes, codes]), np.concatenate([n_poses, poses]), size)
    det = FaceDetector(detect_size=DETECT_SIDE, use_cnn=False, try_rotations=False)
    lms = np.full((len(frames), 68, 2), np.nan)
    iris = np.full((len(frames), 2, 2), np.nan)
    for i, f in enumerate(frames):
        faces, _ = det.detect(f, fallbacks=False)
        if faces:
            lms[i] = max(faces, key=lambda x: x.width).landmarks
            iris[i] = iris_centres(f, lms[i])
    out = {"landmarks": lms[n_neutral:], "codes": codes, "poses": poses.astype(np.float32),
           "neutral_landmarks": lms[:n_neutral], "iris": iris[n_neutral:], "neutral_iris": iris[:n_neutral],
           "size": size}
    if keep_frames:
        out["frames"], out["neutral_frames"] = frames[n_neutral:], frames[:n_neutral]
    return out


def _job(job):
    seed, n, rng_seed, size, uniform_gaze = (*job, True)[:5]
    torch.set_num_threads(1)
    return seed, rendered_samples(seed, n, np.random.default_rng(rng_seed), size=size, uniform_gaze=uniform_gaze)


def make_rendered(jobs, processes: int = 1) -> dict:
    """jobs [(seed, n, rng seed, size[, uniform gaze])] -> {seed: rendered_samples(...)}, one identity per process."""
    if processes > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(processes) as pool:
            return dict(pool.map(_job, jobs))
    return dict(_job(j) for j in jobs)


def save_rendered(path, made: dict) -> None:
    np.savez(path, **{f"{k}_{s}": v for s, d in made.items() for k, v in d.items()})


def load_rendered(path) -> dict:
    out: dict = {}
    with np.load(path) as z:
        for key in z.files:
            k, s = key.rsplit("_", 1)
            out.setdefault(int(s), {})[k] = z[key]
    return out


def sample_features(d: dict):
    """rendered_samples' dict -> (features [m, 136] minus the neutral's, codes [m, C], poses [m, 3], kept [n] bool):
    the driver's features and head pose (``landmark_features`` with its default intrinsics: the PnP estimate,
    yaw/pitch/roll degrees) of the frames where a face was found, minus the median of the identity's neutral
    frames' features (the driver's calibration)."""
    from .features import default_intrinsics, landmark_features

    K = default_intrinsics(int(d["size"]), int(d["size"]))
    neutral = [landmark_features(lm, K)[0] for lm in d["neutral_landmarks"] if np.isfinite(lm).all()]
    kept = np.isfinite(d["landmarks"]).all((1, 2))
    if not neutral or not kept.any():
        return np.zeros((0, 136), np.float32), d["codes"][:0], d["poses"][:0], kept & False
    neutral = np.median(np.stack(neutral), 0)
    feats, poses = [], []
    for lm in d["landmarks"][kept]:
        f, p = landmark_features(lm, K)
        feats.append(f - neutral)
        poses.append((p.yaw, p.pitch, p.roll))
    return np.stack(feats).astype(np.float32), d["codes"][kept], np.asarray(poses, np.float32), kept


def sample_gaze(d: dict):
    """rendered_samples' dict -> (eye directions minus the neutral's [n, 2, 2] radians, NaN where not read or the
    eye is closed (blink > 0.5, as the driver skips it), true (gaze_x, gaze_y) [n, 2]) -- what the gaze gains are
    fitted on (``avat3r.drive.train --gaze``)."""
    import warnings

    from ..data.expressions import EXPRESSION_NAMES
    from .features import default_intrinsics, landmark_features
    from .gaze import eye_directions

    K = default_intrinsics(int(d["size"]), int(d["size"]))

    def directions(lms, iris):
        out = np.full((len(lms), 2, 2), np.nan)
        for i, (lm, ir) in enumerate(zip(lms, iris)):
            if np.isfinite(lm).all():
                out[i] = eye_directions(ir, landmark_features(lm, K)[1].world_to_cam, K)
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        neutral = np.nanmedian(directions(d["neutral_landmarks"], d["neutral_iris"]), 0)
    rel = directions(d["landmarks"], d["iris"]) - neutral
    closed = d["codes"][:, [EXPRESSION_NAMES.index("blink_right"), EXPRESSION_NAMES.index("blink_left")]] > 0.5
    rel[closed] = np.nan
    return rel, d["codes"][:, [EXPRESSION_NAMES.index("gaze_x"), EXPRESSION_NAMES.index("gaze_y")]]
