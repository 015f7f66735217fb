"""Gaze from the eyes against a face-fixed eyeball, and rendered SynthHeads driving samples (dlib on renders)."""

from __future__ import annotations

import numpy as np
import pytest

from avat3r.data.expressions import expression


@pytest.fixture(scope="module")
def samples():
    """6 rendered samples of SynthHeads identity 2 (dark irises, no glasses) after 3 neutral frames."""
    from avat3r.drive.rendered import rendered_samples

    return rendered_samples(2, 6, np.random.default_rng(0), n_neutral=3)


def _frames(seed, codes, poses=None):
    from avat3r.drive.rendered import render_frames

    poses = np.zeros((len(codes), 3)) if poses is None else np.asarray(poses, float)
    return render_frames(seed, np.stack(codes), poses, 256)


def _directions(frame):
    from avat3r.drive.features import default_intrinsics, landmark_features
    from avat3r.drive.gaze import eye_directions, iris_centres
    from avat3r.frontend.faces import FaceDetector

    faces, _ = FaceDetector(use_cnn=False, try_rotations=False).detect(frame, fallbacks=False)
    assert len(faces) == 1
    lm = faces[0].landmarks
    K = default_intrinsics(frame.shape[1], frame.shape[0])
    return eye_directions(iris_centres(frame, lm), landmark_features(lm, K)[1].world_to_cam, K)


def test_eyes_looking_left_and_right_turn_the_measured_direction():
    """SynthHeads identity 2 (dark irises, no glasses), frontal: looking towards -x, ahead, +x gives a per-eye yaw
    that grows in that order for both eyes; the eyeball is placed by the PnP pose, not by dlib's eye points."""
    d = np.stack([_directions(f) for f in _frames(2, [expression(gaze_x=g) for g in (-0.9, 0.0, 0.9)])])
    assert np.isfinite(d).all()
    yaw = d[:, :, 0]  # [3 gazes, 2 eyes]
    assert (np.diff(yaw, axis=0) > 0.05).all(), yaw


def test_dark_glasses_give_no_gaze_and_gaze_code_holds():
    """Identity 3 wears dark glasses: no iris is measured (NaN), and gaze_code says None (the driver holds the last
    value) instead of inventing one; with one eye read it uses that eye, clipped to the code's range."""
    from avat3r.drive.gaze import GazeConfig, gaze_code

    d = _directions(_frames(3, [expression()])[0])
    assert np.isnan(d).all()
    assert gaze_code(d, np.zeros((2, 2))) is None
    one = np.array([[0.1, -0.05], [np.nan, np.nan]])
    g = gaze_code(one, np.zeros((2, 2)), GazeConfig(gain=(2.0, 3.0)))
    assert np.allclose(g, [0.2, -0.15])
    assert np.allclose(gaze_code(one * 10, np.zeros((2, 2)), GazeConfig(gain=(2.0, 3.0))), [1.0, -1.0])


def test_rendered_samples_give_the_drivers_features(samples):
    """A few rendered samples of one identity: dlib's landmarks on each render, features minus the identity's
    neutral, codes and poses kept in step; a neutral near-frontal frame has features near the neutral's."""
    from avat3r.drive.rendered import TURN_POSE, sample_features

    d = samples
    assert d["landmarks"].shape == (6, 68, 2) and d["neutral_landmarks"].shape == (3, 68, 2)
    assert d["codes"].shape[0] == 6 and (np.abs(d["poses"]) <= TURN_POSE).all()
    assert np.abs(d["codes"][:, -2]).max() > 0  # the eyes look around
    feats, codes, poses, kept = sample_features(d)
    assert kept.sum() >= 3 and feats.shape == (kept.sum(), 136) and np.isfinite(feats).all()
    assert len(codes) == len(poses) == len(feats)
    # the calibration frames themselves, minus their own median: much smaller than the expression frames' features
    calib = dict(d, landmarks=d["neutral_landmarks"], codes=np.zeros((3, d["codes"].shape[1]), np.float32),
                 poses=np.zeros((3, 3), np.float32))
    f_neutral = sample_features(calib)[0]
    assert np.abs(f_neutral).mean() < 0.5 * np.abs(feats).mean()


def test_gaze_gains_are_fitted_on_rendered_eyes(samples):
    """fit_gaze on rendered samples: a gain per dimension from the grid, whose training error is at most always-0's
    (0 is on the grid), validation errors against always 0 reported, the relative eye directions finite where the
    eyes were read."""
    from avat3r.drive.rendered import sample_gaze
    from avat3r.drive.train import fit_gaze

    rel, true = sample_gaze(samples)
    assert rel.shape == (6, 2, 2) and true.shape == (6, 2) and np.isfinite(rel).any()
    card = fit_gaze([samples], [samples])
    assert all(0.0 <= g <= 4.0 and g % 0.25 == 0 for g in card["gain"])
    assert all(a <= b + 1e-9 for a, b in zip(card["train_mae"], card["train_mae_always_zero"]))
    assert len(card["validation_mae"]) == len(card["validation_mae_always_zero"]) == 2
