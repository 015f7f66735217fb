"""Capture folders, Ava-256 and NeRSemble loaders on tiny fixtures written in exactly their layouts."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from avat3r.cameras import Cameras, look_at, spherical_to_cartesian
from avat3r.capture import Capture
from avat3r.data.ava256 import Ava256Subject
from avat3r.data.capture_folder import read_capture_folder, write_capture_folder, write_synth_captures
from avat3r.data.nersemble import NeRSembleParticipant
from avat3r.errors import FormatError, InputError

HEAD_POINT = torch.tensor([[0.0, -0.036, 0.106]])  # nose tip, head frame (metres)


def _rig(n=3, dist=1.0):
    az = torch.tensor([-40.0, 0.0, 40.0])[:n]
    eyes = spherical_to_cartesian(az, torch.zeros(n), torch.full((n,), dist))
    return look_at(eyes)  # [n, 4, 4] world_to_cam (metres), looking at the origin


# ---- capture folder ---------------------------------------------------------------------------------
def _capture(V=2, size=24):
    rng = np.random.default_rng(0)
    w2c = _rig(V)
    K = torch.tensor([[40.0, 0, size / 2], [0, 40.0, size / 2], [0, 0, 1]]).expand(V, 3, 3)
    imgs = rng.random((V, size, size, 3)).astype(np.float32)
    masks = (rng.random((V, size, size)) > 0.5).astype(np.float32)
    return Capture(imgs, Cameras(K, w2c, size, size), [f"v{i}" for i in range(V)], masks, rng.random((V, 20)).astype(np.float32))


def test_capture_folder_roundtrip(tmp_path):
    cap = _capture()
    write_capture_folder(tmp_path / "c", cap)
    back = read_capture_folder(tmp_path / "c")
    assert back.names == cap.names
    assert np.abs(back.images - cap.images).max() <= 1 / 255 + 1e-6
    assert np.array_equal(back.masks > 0.5, cap.masks > 0.5)
    assert np.allclose(back.expressions, cap.expressions, atol=1e-5)
    assert torch.allclose(back.cameras.K, cap.cameras.K) and torch.allclose(back.cameras.world_to_cam, cap.cameras.world_to_cam)
    sub = read_capture_folder(tmp_path / "c", views=["v1"])
    assert sub.names == ["v1"] and len(sub) == 1


def test_capture_folder_bad_inputs(tmp_path):
    cap = _capture()
    d = write_capture_folder(tmp_path / "c", cap)
    with pytest.raises(FormatError, match="no camera for view"):
        read_capture_folder(d, views=["nope"])
    (d / "images" / "v1.png").unlink()
    with pytest.raises(FormatError, match="v1"):
        read_capture_folder(d)
    Image.new("RGB", (10, 24)).save(d / "images" / "v1.png")
    with pytest.raises(FormatError, match="10x24"):
        read_capture_folder(d)
    write_capture_folder(d, cap)
    (d / "expressions.json").write_text(json.dumps({"v0": [1, 2]}))
    with pytest.raises(FormatError, match="expressions.json"):
        read_capture_folder(d)
    (d / "cameras.json").unlink()
    with pytest.raises(FormatError, match="cameras.json"):
        read_capture_folder(d)


def test_write_synth_captures(tmp_path):
    torch.set_num_threads(1)
    paths = write_synth_captures(tmp_path, subjects=1, seed=1, views=2, size=32)
    cap = read_capture_folder(paths[0])
    assert cap.images.shape == (2, 32, 32, 3) and cap.masks.shape == (2, 32, 32)
    assert cap.expressions.shape == (2, 20) and cap.meta["split"] == "test"
    assert 0.1 < (cap.masks > 0.5).mean() < 0.9


# ---- Ava-256 ----------------------------------------------------------------------------------------
FULL_W, FULL_H = 2668, 4096
IMG_W, IMG_H = 83, 128  # same aspect ratio as the full frames (the 4TB version stores 667 x 1024)


def _avif(rng, w=IMG_W, h=IMG_H):
    b = io.BytesIO()
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(b, format="AVIF")
    return b.getvalue()


def _ava_fixture(root, frames=(12, 13), cams=("400940", "400941")):
    rng = np.random.default_rng(1)
    d = root / "m--20230101--1200--ABC123--GHS" / "decoder"
    (d / "image").mkdir(parents=True)
    (d / "head_pose").mkdir()
    w2c = _rig(len(cams), dist=1.0).numpy().astype(np.float64)
    krt = []
    truth = {}
    for i, c in enumerate(cams):
        K = np.array([[9000.0 + 100 * i, 0, FULL_W / 2 + 10], [0, 9000.0 + 100 * i, FULL_H / 2 - 20], [0, 0, 1]])
        E = w2c[i].copy()
        E[:3, 3] *= 1000.0  # millimetres
        krt.append({"cameraId": c, "K": K.T.tolist(), "T": E.T.tolist(), "distortion": [0.0] * 5})
        truth[c] = (K, w2c[i])
        with zipfile.ZipFile(d / "image" / f"cam{c}.zip", "w") as z:
            for f in frames:
                z.writestr(f"cam{c}/{f:06d}.avif", _avif(rng))
    (d / "camera_calibration.json").write_text(json.dumps({"KRT": krt}))
    (d / "frame_list.csv").write_text("seg_id,frame_id\n" + "".join(f"EXP_jaw003,{f:06d}\n" for f in frames))
    # head pose: the head rotated 20 deg about y and moved, in millimetres
    a = np.deg2rad(20)
    Hp = np.array([[np.cos(a), 0, np.sin(a), 15.0], [0, 1, 0, -30.0], [-np.sin(a), 0, np.cos(a), 40.0]])
    with zipfile.ZipFile(d / "head_pose" / "head_pose.zip", "w") as z:
        for f in frames:
            z.writestr(f"{f:06d}.txt", "\n".join(" ".join(str(x) for x in row) for row in Hp))
    return d.parent, truth, Hp


def test_ava256_loads_and_folds_head_pose(tmp_path):
    root, truth, Hp = _ava_fixture(tmp_path)
    subj = Ava256Subject(root)
    assert subj.camera_ids == ["400940", "400941"] and subj.segments() == {"EXP_jaw003": [12, 13]}
    cap = subj.capture(12)
    assert cap.images.shape == (2, IMG_H, IMG_W, 3)
    # the head point seen through the loaded (head-centric) camera == the world point seen by the real camera
    H = np.eye(4)
    H[:3] = Hp
    H[:3, 3] /= 1000
    xw = H[:3, :3] @ HEAD_POINT[0].numpy() + H[:3, 3]
    for i, c in enumerate(subj.camera_ids):
        K, w2c = truth[c]
        xc = w2c[:3, :3] @ xw + w2c[:3, 3]
        uv_true = (K @ xc)[:2] / xc[2] * np.array([IMG_W / FULL_W, IMG_H / FULL_H])
        uv, _ = cap.cameras[i].project(HEAD_POINT)
        assert np.allclose(uv[0, 0].numpy(), uv_true, atol=1e-2)
    crop = subj.capture(13, ["400941"], size=32)
    assert crop.images.shape == (1, 32, 32, 3) and int(crop.cameras.width[0]) == 32


def test_ava256_bad_inputs(tmp_path):
    root, _, _ = _ava_fixture(tmp_path)
    subj = Ava256Subject(root)
    with pytest.raises(InputError, match="unknown camera id"):
        subj.capture(12, ["999"])
    with pytest.raises(InputError, match="frame 99"):
        subj.capture(99)
    d = root / "decoder"
    (d / "image" / "cam400941.zip").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match=r"cam400941\.zip.*corrupt"):
        subj.capture(12)
    with zipfile.ZipFile(d / "image" / "cam400941.zip", "w") as z:
        z.writestr("cam400941/000012.avif", b"garbage")
    with pytest.raises(FormatError, match="cannot decode"):
        subj.capture(12)
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(d / "image" / "cam400941.zip", "w") as z:
        z.writestr("cam400941/000012.avif", _avif(rng, 64, 64))
    with pytest.raises(FormatError):
        subj.capture(12)  # size disagrees with the other view / with K's aspect ratio
    with pytest.raises(FormatError, match="aspect"):
        subj.capture(12, ["400941"])
    (d / "camera_calibration.json").unlink()
    with pytest.raises(FormatError, match="camera_calibration.json"):
        Ava256Subject(root)


# ---- NeRSemble --------------------------------------------------------------------------------------
def _nersemble_fixture(root, size=(112, 160), serials=("222200037", "222200038"), n_frames=3):
    import imageio

    p = root / "017"
    (p / "calibration").mkdir(parents=True)
    w2c = _rig(len(serials)).numpy()
    K = [[150.0, 0, size[0] / 2], [0, 150.0, size[1] / 2], [0, 0, 1]]
    (p / "calibration" / "camera_params.json").write_text(json.dumps(
        {"world_2_cam": {s: w2c[i].tolist() for i, s in enumerate(serials)}, "intrinsics": K}))
    vd = p / "sequences" / "EXP-1-head" / "images"
    vd.mkdir(parents=True)
    for s in serials:
        with imageio.get_writer(str(vd / f"cam_{s}.mp4"), fps=10, macro_block_size=1, format="FFMPEG") as w:
            for f in range(n_frames):
                w.append_data(np.full((size[1], size[0], 3), 40 * f, np.uint8))
    return p, w2c, np.array(K)


def test_nersemble_loads(tmp_path):
    p, w2c, K = _nersemble_fixture(tmp_path)
    part = NeRSembleParticipant(p)
    assert part.sequences() == ["EXP-1-head"]
    cap = part.capture("EXP-1-head", 2)
    assert cap.images.shape == (2, 160, 112, 3)
    assert abs(cap.images.mean() - 80 / 255) < 0.05
    assert np.allclose(cap.cameras.world_to_cam.numpy(), w2c, atol=1e-5)
    assert np.allclose(cap.cameras.K[0].numpy(), K)
    crop = part.capture("EXP-1-head", 0, size=24)
    assert crop.images.shape == (2, 24, 24, 3)


def test_nersemble_bad_inputs(tmp_path):
    p, _, _ = _nersemble_fixture(tmp_path)
    part = NeRSembleParticipant(p)
    with pytest.raises(InputError, match="unknown camera serial"):
        part.capture("EXP-1-head", 0, ["123"])
    with pytest.raises(InputError, match="out of range"):
        part.capture("EXP-1-head", 10)
    with pytest.raises(FormatError, match="video not found"):
        part.capture("EXP-2", 0)
    bad = NeRSembleParticipant(p, calibrated_size=(160, 160))
    with pytest.raises(FormatError, match="not a uniform rescale"):
        bad.capture("EXP-1-head", 0)
    (p / "calibration" / "camera_params.json").write_text("{}")
    with pytest.raises(FormatError, match="camera_params.json"):
        NeRSembleParticipant(p)


def test_ava256_dataset_gives_sampler_samples(tmp_path):
    from avat3r.data.ava256 import Ava256Dataset

    root, _, _ = _ava_fixture(tmp_path, cams=("400940", "400941", "400942"))
    ds = Ava256Dataset(root.parent, split="test", num_inputs=2, num_targets=2, input_size=24, target_size=32,
                       expression_dim=8, length=4)
    x = ds[1]
    assert x["input_images"].shape == (2, 3, 24, 24) and x["target_images"].shape == (2, 3, 32, 32)
    assert x["prior_positions"].shape == (2, 3, 24, 24) and x["prior_confidence"].shape == (2, 1, 24, 24)
    assert x["input_expressions"].shape == (2, 8) and len(set(x["input_camera_ids"].tolist())) == 2
    assert torch.equal(ds[1]["input_images"], x["input_images"])  # deterministic by index
    with pytest.raises(InputError):
        Ava256Dataset(root.parent, split="bogus")
