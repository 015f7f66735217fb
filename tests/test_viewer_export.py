"""The live viewer's data: the linear expression basis (fit against the network) and the scene files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import avat3r
from avat3r.errors import FormatError, InputError
from avat3r.export.basis import expression_ranges, fit_expression_basis, sample_codes
from avat3r.export.viewer_scene import (
    preset_clip,
    read_viewer_scene,
    write_viewer_scene,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "demo" / "examples" / "synth_1"


@pytest.fixture(scope="module")
def avatar(ckpt):
    return avat3r.load_pipeline(ckpt, device="cpu").reconstruct(EXAMPLE)


def test_sample_codes_cover_every_slider_end(avatar):
    space = avatar.expression_space
    ranges = expression_ranges(space)
    gaze = space.names.index("gaze_x")
    assert ranges[gaze].tolist() == [-1.0, 1.0] and ranges[0, 0] == 0.0 and ranges[0, 1] >= 1.0
    codes = sample_codes(space, n_random=3)
    singles = codes[(codes != 0).sum(1) == 1]
    for i in range(space.dim):  # each dimension appears alone at its high end (and low end when signed)
        assert any(np.isclose(z[i], ranges[i, 1]) for z in singles)
    assert ((codes >= ranges[:, 0] - 1e-6) & (codes <= ranges[:, 1] + 1e-6)).all()


def test_basis_matches_the_network_on_its_samples(avatar):
    codes = sample_codes(avatar.expression_space, n_random=0)[:6]  # a few samples keep the test fast
    basis = fit_expression_basis(avatar, codes)
    assert basis.deltas.shape == (avatar.expression_space.dim, len(avatar.animate(None)), 3)
    net = avatar.animate_batch(codes[:1])[0].means.numpy()
    neutral = basis.base.means.numpy()
    fit_err = np.linalg.norm(basis.means(codes[0]) - net, axis=-1).mean()
    no_motion = np.linalg.norm(neutral - net, axis=-1).mean()
    assert fit_err < 0.5 * no_motion, (fit_err, no_motion)  # the basis explains most of the network's motion
    assert np.allclose(basis.means(np.zeros(avatar.expression_space.dim)), neutral)
    with pytest.raises(InputError, match="values"):
        basis.means([0.0, 1.0])


def test_scene_files_round_trip(avatar, tmp_path):
    space = avatar.expression_space
    basis = fit_expression_basis(avatar, sample_codes(space, 0)[:3])
    clip = preset_clip(space, ["neutral", "smile"], frames_per_step=3)
    clip["poses"] = np.zeros((len(clip["codes"]), 3)).tolist()
    path = write_viewer_scene(tmp_path / "s", basis, clips={"c": clip}, presets=space.presets)
    scene, base, deltas = read_viewer_scene(path.parent)
    n = len(basis.base)
    assert scene["count"] == n and scene["dims"] == space.dim and scene["names"] == space.names
    assert np.allclose(base[:, :3], basis.base.means.numpy()) and np.allclose(base[:, 10], basis.base.opacities.numpy())
    assert np.allclose(deltas, basis.deltas, atol=1e-3 * np.abs(basis.deltas).max() + 1e-7)  # float16
    assert len(scene["clips"]["c"]["codes"]) == 6 and scene["clips"]["c"]["poses"] is not None
    with pytest.raises(InputError, match="codes must be"):
        write_viewer_scene(tmp_path / "bad", basis, clips={"x": {"codes": [[0.0, 1.0]]}})
    with pytest.raises(InputError, match="poses must be"):
        write_viewer_scene(tmp_path / "bad", basis, clips={"x": dict(clip, poses=[[0.0, 0.0, 0.0]])})
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    (tmp_path / "s" / "scene.json").write_text(json.dumps(dict(scene, count=n + 1)))
    with pytest.raises(FormatError, match="sizes do not match"):
        read_viewer_scene(tmp_path / "s")
