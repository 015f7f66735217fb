"""Pipeline API (avat3r.load_pipeline / reconstruct / animate / render / save_ply) on a SynthHeads capture with a
tiny random checkpoint: shapes, files, expression handling, prior/feature mismatches and checkpoint errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from app_fixtures import make_tiny_checkpoint

import avat3r
from avat3r.errors import CheckpointError, InputError
from avat3r.gaussians import Gaussians


@pytest.fixture(scope="module")
def pipe(ckpt):
    return avat3r.load_pipeline(ckpt, device="cpu")


@pytest.fixture(scope="module")
def avatar(pipe, capture_dir):
    return pipe.reconstruct(capture_dir)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, avat3r; assert 'torch' not in sys.modules; assert callable(avat3r.load_pipeline); assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_expression_space(pipe):
    from avat3r.data.expressions import EXPRESSION_NAMES

    space = pipe.expression_space
    assert space.dim == len(EXPRESSION_NAMES) == len(space.names)
    assert space.names == list(EXPRESSION_NAMES)
    assert "neutral" in space.presets and "smile" in space.presets
    assert all(len(v) == space.dim for v in space.presets.values())


def test_reconstruct_capture_folder(avatar, pipe):
    assert len(avatar.capture) == 4
    assert avatar.capture.images.shape == (4, pipe.image_size, pipe.image_size, 3)
    assert avatar.capture.masks is not None
    assert any("Gaussians" in line for line in avatar.report)
    g = avatar.animate()
    assert isinstance(g, Gaussians) and len(g) > 100
    g.validate()
    # Gaussians sit around the head (metres, head-centric): not at the cameras, not at infinity
    assert g.means.abs().max() < 0.5


def test_animate_expressions(avatar, pipe):
    neutral = avatar.animate()
    smile = avatar.animate("smile")
    code = np.asarray(pipe.expression_space.presets["smile"], np.float32)
    assert torch.equal(avatar.animate(code).means, smile.means)  # array == preset name (and cached)
    assert len(smile) == len(neutral)  # the mask depends on the prior, not on the expression
    assert not torch.allclose(smile.colors, neutral.colors) or not torch.allclose(smile.means, neutral.means)
    with pytest.raises(InputError, match="unknown expression preset"):
        avatar.animate("no_such_face")
    with pytest.raises(InputError, match="expects"):
        avatar.animate(np.zeros(3))


def test_render_and_turntable(avatar, pipe):
    from avat3r.pipeline import orbit_camera

    img = avatar.render((0, 0), size=96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    h = img.shape[0]
    centre = img[h // 4: 3 * h // 4, h // 4: 3 * h // 4]
    assert (centre.max(-1) > 10).mean() > 0.2, "the head should cover the middle of a frontal render"
    assert (img[:4].max() < 40) and (img[:, :2].max() < 40), "the corners should stay background"
    same = avatar.render(orbit_camera(0, 0, 96))
    assert np.array_equal(same, img)
    frames = avatar.turntable(4, 48)
    assert len(frames) == 4 and all(f.shape == (48, 48, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[2])  # front and back differ
    with pytest.raises(InputError):
        avatar.render("front")


def test_save_ply_roundtrip(avatar, tmp_path):
    from avat3r.io.ply import load_ply, read_ply_array

    path = avatar.save_ply(tmp_path / "head.ply", "smile")
    g = load_ply(path)
    ref = avatar.animate("smile")
    assert len(g) == len(ref)
    torch.testing.assert_close(g.means, ref.means, atol=1e-5, rtol=0)
    names = read_ply_array(path).dtype.names
    for k in ("x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"):
        assert k in names


def test_viewer_gaussians_right_side_up(avatar):
    """The viewer file is turned into gsplat.js's y-down frame: the crown (max y in our frame) gets the smallest y."""
    from avat3r.pipeline import viewer_gaussians

    g = avatar.animate()
    v = viewer_gaussians(g)
    top = int(torch.argmax(g.means[:, 1]))
    assert v.means[top, 1] == v.means[:, 1].min()
    assert v.means.abs().max() < 10  # framed for a camera 5 units away


def test_reconstruct_arrays_with_cameras_and_progress(pipe, avatar):
    cap = avatar.capture
    seen = []
    av = pipe.reconstruct(list(cap.images), cameras=cap.cameras, masks=list(cap.masks),
                          progress=lambda f, m: seen.append((f, m)))
    assert len(av.animate()) > 100
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0 and all(isinstance(m, str) and m for _, m in seen)
    av2 = pipe.reconstruct(cap)  # a Capture with masks goes straight to the prior
    assert len(av2.animate()) > 100


def test_reconstruct_bad_inputs(pipe, tmp_path):
    with pytest.raises(InputError):
        pipe.reconstruct([])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="broken.png"):
        pipe.reconstruct([bad])
    with pytest.raises(InputError, match="no such file|not found"):
        pipe.reconstruct([tmp_path / "missing.jpg"])


def test_expression_sequence(pipe):
    from avat3r.pipeline import expression_sequence

    seq = expression_sequence(pipe.expression_space, ["neutral", "smile"], 5)
    assert seq.shape == (10, pipe.expression_space.dim)
    np.testing.assert_allclose(seq[0], 0)
    np.testing.assert_allclose(seq[5], pipe.expression_space.presets["smile"], atol=1e-6)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("AVAT3R_WEIGHTS", str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="no Avat3r weights found.*model.safetensors.*AVAT3R_WEIGHTS"):
        avat3r.load_pipeline()
    with pytest.raises(CheckpointError):
        avat3r.load_pipeline(tmp_path / "nowhere")


def test_prior_and_feature_mismatch(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="trained with the 'visual_hull' prior"):
        avat3r.load_pipeline(ckpt, prior="dust3r")
    # a checkpoint trained with the oracle prior cannot be used on real inputs
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["prior"] = "oracle"
    (oracle / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="oracle"):
        avat3r.load_pipeline(oracle).check_priors()
    # a model with a Sapiens feature path needs the Sapiens weights, which are not here (offline)
    feat = make_tiny_checkpoint(tmp_path / "feat", features="sapiens-0.3b", feature_dim=1024)
    with pytest.raises(CheckpointError, match="sapiens-0.3b"):
        avat3r.load_pipeline(feat).check_priors()
