"""Front end: photos / video frames -> posed, masked, head-centric Capture (avat3r.frontend)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avat3r.cameras import Cameras, write_cameras_json
from avat3r.errors import InputError
from avat3r.frontend.crop import crop_square
from avat3r.frontend.landmark_template import MIRROR, anchor_residuals, landmark_template
from avat3r.frontend.pose import azimuth_elevation, intrinsics_from_focal35, quarter_turn, solve_pose

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
faces = pytest.importorskip("avat3r.frontend.faces")
needs_dlib = pytest.mark.skipif(not faces.faces_available(), reason="dlib / face models not installed (avat3r[faces])")


def _real(rel: str) -> Path:
    p = REALDATA / rel
    if not p.exists():
        pytest.skip(f"real data not found at {p}")
    return p


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return skdata.astronaut()


@pytest.fixture(scope="module")
def astro_result(astronaut):
    from avat3r.frontend import prepare

    return prepare([astronaut], size=128)


# ---- template and geometry (no detector needed) -------------------------------------------------------------
def test_template_symmetric_and_on_anchors():
    t = landmark_template()
    m = t[MIRROR].copy()
    m[:, 0] *= -1
    assert np.abs(m - t).max() < 1e-12
    res = anchor_residuals()
    assert res["eye_left"] < 1e-9 and res["eye_right"] < 1e-9
    assert max(res.values()) < 0.006  # within 6 mm of every anchor


def test_pnp_recovers_known_pose():
    K = intrinsics_from_focal35(35.0, 800, 600)
    rng = np.random.default_rng(0)
    for az, el in [(0, 0), (35, 10), (-50, -15)]:
        eye = np.array([math.sin(math.radians(az)) * math.cos(math.radians(el)), math.sin(math.radians(el)),
                        math.cos(math.radians(az)) * math.cos(math.radians(el))]) * 0.6
        from avat3r.cameras import look_at

        w2c = look_at(torch.tensor(eye, dtype=torch.float32)).double().numpy()
        uv, _ = Cameras(K[None], w2c[None], 800, 600).project(torch.tensor(landmark_template(), dtype=torch.float32))
        est = solve_pose(uv[0].double().numpy() + rng.normal(0, 0.3, (68, 2)), K)
        R_err = est.world_to_cam[:3, :3] @ w2c[:3, :3].T
        ang = math.degrees(math.acos(np.clip((np.trace(R_err) - 1) / 2, -1, 1)))
        assert ang < 1.0, (az, el, ang)
        a, e = azimuth_elevation(est.world_to_cam)
        assert abs(a - az) < 1.5 and abs(e - el) < 1.5


def test_crop_matches_camera_crop_resize():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    img = np.zeros((480, 640, 3), np.float32)
    img[300:304, 400:404] = 1.0  # a bright 4x4 square centred at (402, 302) in continuous pixel coords
    box = np.array([350.0, 250, 100, 100])
    crop, valid = crop_square(img, box, 200)
    cam = Cameras(K[None], np.eye(4)[None], 640, 480).crop_resize(box[None], 200)
    X = torch.tensor([[(402 - 320) / 500, (302 - 240) / 500, 1.0]])
    uv, _ = cam.project(X)
    ys, xs = np.nonzero(crop[..., 0] > 0.5)
    assert abs(xs.mean() + 0.5 - float(uv[0, 0, 0])) < 0.6 and abs(ys.mean() + 0.5 - float(uv[0, 0, 1])) < 0.6
    assert valid.min() == 1.0
    # a box reaching outside the photo is padded and flagged invalid there
    crop2, valid2 = crop_square(img, np.array([-50.0, -50, 100, 100]), 100)
    assert valid2[:40, :40].max() == 0 and valid2[60:, 60:].min() == 1 and crop2[:40, :40].max() == 0


def test_quarter_turn_camera():
    # a point right of the centre in the original image is above the centre after np.rot90 (counter-clockwise)
    x = np.array([1.0, 0.0, 1.0])
    assert np.allclose(quarter_turn(1)[:3, :3] @ x, [0.0, -1.0, 1.0])
    assert np.allclose(quarter_turn(4), np.eye(4))


# ---- photos -------------------------------------------------------------------------------------------------
@needs_dlib
def test_astronaut_face_crop_mask_camera(astro_result):
    r = astro_result
    cap = r.capture
    assert len(cap) == 1 and cap.images.shape == (1, 128, 128, 3) and cap.masks.shape == (1, 128, 128)
    v = r.views[0]
    lm = v.landmarks_crop
    assert lm.min() > 0 and lm.max() < 128  # the crop contains the face
    # the mask covers the face (landmark hull, shrunk) and not the top corners
    c = lm[:27].mean(0)
    inner = (c + 0.7 * (lm[:27] - c)).astype(int)
    assert cap.masks[0][inner[:, 1], inner[:, 0]].mean() > 0.95
    m = cap.masks[0]
    assert m[:10, :10].mean() < 0.05 and m[:10, -10:].mean() < 0.05
    # cameras are finite, the head is in front of them, the head centre projects near the crop centre
    w2c = cap.cameras.world_to_cam[0]
    assert torch.isfinite(w2c).all() and torch.isfinite(cap.cameras.K[0]).all()
    uv, z = cap.cameras.project(torch.zeros(1, 3))
    assert z.item() > 0.2
    assert torch.allclose(uv[0, 0], torch.tensor([64.0, 64.0]), atol=1.0)
    assert abs(v.azimuth_deg) < 10  # a frontal portrait
    assert r.preview.dtype == np.uint8 and r.preview.ndim == 3 and r.preview.shape[2] == 3
    assert any("cameras estimated" in m for m in r.report)
    # background replaced by black outside the mask
    assert cap.images[0][:5, :5].max() < 0.05


@needs_dlib
def test_flip_gives_mirrored_camera(astronaut):
    from avat3r.frontend import prepare

    tile = REALDATA / "tobias-kirschstein_nersemble-data/static/derived_tiles_from_camera_overview/cam_221501007.png"
    imgs = [astronaut]
    if tile.exists():
        from avat3r.io.images import load_image

        imgs.append(load_image(tile))  # a view from about 35 degrees to the side
    for img in imgs:
        a = prepare([img], size=64).views[0]
        b = prepare([np.ascontiguousarray(img[:, ::-1])], size=64).views[0]
        assert abs(a.azimuth_deg + b.azimuth_deg) < 3.0, (a.azimuth_deg, b.azimuth_deg)
        assert abs(a.elevation_deg - b.elevation_deg) < 3.0
        ca = -a.world_to_cam[:3, :3].T @ a.world_to_cam[:3, 3]
        cb = -b.world_to_cam[:3, :3].T @ b.world_to_cam[:3, 3]
        assert np.linalg.norm(ca * [-1, 1, 1] - cb) < 0.06 * np.linalg.norm(ca)  # dlib is not exactly mirror-symmetric
    if tile.exists():
        assert abs(a.azimuth_deg) > 20  # the side view really is to the side


@needs_dlib
def test_multiview_real_photos_left_right():
    from avat3r.frontend import prepare

    d = _real("Fanziapril_mvfnet/data/imgs")
    r = prepare([d / "front.jpg", d / "left.jpg", d / "right.jpg"], size=64)
    assert [v.name for v in r.views] == ["front", "left", "right"] and not r.failures
    az = {v.name: v.azimuth_deg for v in r.views}
    assert abs(az["front"]) < 10 and az["left"] > 10 and az["right"] < -10
    assert all(v.reprojection_px < 8 for v in r.views)  # 224 px photos


@needs_dlib
def test_several_faces_keeps_largest_and_same_person(astronaut):
    import cv2

    from avat3r.frontend import FrontendConfig, prepare

    canvas = np.full((640, 960, 3), 200, np.uint8)
    canvas[100:612, 0:512] = astronaut
    canvas[200:600, 540:940] = cv2.resize(astronaut, (400, 400))  # the same person again, smaller
    r = prepare([canvas, astronaut], size=64, config=FrontendConfig(detect_size=1000))
    assert any("2 faces found; using the largest" in m for m in r.report)
    assert len(r.capture) == 2 and r.views[1].identity_distance < 0.3


@needs_dlib
def test_bad_inputs_specific_messages(tmp_path, astronaut):
    from PIL import Image

    from avat3r.frontend import FrontendConfig, prepare

    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    tiny = np.zeros((40, 30, 3), np.uint8)
    noface = np.full((300, 300, 3), 128, np.uint8)
    gray = Image.fromarray(astronaut).convert("L")
    fast = FrontendConfig(use_cnn=False)  # the CNN fallback costs ~1 s per face-less photo
    r = prepare([astronaut, corrupt, tiny, noface, gray], size=64, config=fast)
    msgs = {f.index: f.message for f in r.failures}
    assert set(msgs) == {1, 2, 3}
    assert "photo 2 of 5 (broken.jpg)" in msgs[1] and "cannot read" in msgs[1]
    assert "too small (30x40 pixels)" in msgs[2]
    assert msgs[3].startswith("no face found in photo 4 of 5") and "capture folder" in msgs[3]
    assert len(r.capture) == 2
    assert any("grayscale" in m for m in r.report)
    # nothing usable -> one InputError that lists every reason
    with pytest.raises(InputError, match="no usable image among 2") as e:
        prepare([noface, corrupt], size=64, config=fast)
    assert "no face found in photo 1 of 2" in str(e.value) and "cannot read" in str(e.value)
    # face too small for the configured minimum
    with pytest.raises(InputError, match="too small"):
        prepare([astronaut], size=64, config=FrontendConfig(min_face_px=2000))
    # the face cut by the photo's top edge
    with pytest.raises(InputError, match="cut off|no face found"):
        prepare([astronaut[150:, :]], size=64, config=fast)


def test_undecodable_video(tmp_path):
    from avat3r.frontend import prepare

    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 20)
    with pytest.raises(InputError, match="cannot decode this video"):
        prepare(bad)


@needs_dlib
def test_video_picks_frames():
    from avat3r.frontend import FrontendConfig, prepare

    v = _real("KwaiVGI_LivePortrait/assets/examples/driving/d0.mp4")
    r = prepare(v, size=64, max_views=3, config=FrontendConfig(video_candidates=8))
    assert len(r.capture) == 3 and all(x.frame_index is not None for x in r.views)
    assert len({x.frame_index for x in r.views}) == 3


# ---- capture folders and running without dlib -------------------------------------------------------------
def _write_folder(root: Path, result) -> Path:
    from avat3r.io.images import save_image

    (root / "images").mkdir(parents=True)
    save_image(root / "images" / "a.png", result.raw_crops[0])
    write_cameras_json(root / "cameras.json", ["a"], result.capture.cameras)
    return root


@needs_dlib
def test_given_cameras_need_no_dlib(tmp_path, astro_result, monkeypatch):
    from avat3r.cameras import read_cameras_json
    from avat3r.frontend import prepare

    folder = _write_folder(tmp_path / "cap", astro_result)
    monkeypatch.setattr(faces, "_models_dir", lambda: None)  # as if the faces extra were not installed
    with pytest.raises(InputError, match="pip install"):
        prepare([astro_result.raw_crops[0]], size=64)
    with pytest.raises(InputError, match="is a folder"):  # capture folders go to read_capture_folder, not here
        prepare(folder, size=128)
    _, cams = read_cameras_json(folder / "cameras.json")
    r = prepare([folder / "images" / "a.png"], cameras=cams, size=128)
    assert r.capture.names == ["a"]
    # the crop of a crop is the same window: cameras unchanged
    assert torch.allclose(r.capture.cameras.K, astro_result.capture.cameras.K, atol=1e-3)
    assert torch.allclose(r.capture.cameras.world_to_cam, astro_result.capture.cameras.world_to_cam, atol=1e-5)
    m = r.capture.masks[0]  # masks from GrabCut seeded by the cameras alone
    assert m[50:80, 50:80].mean() > 0.9 and m[:8, :8].mean() < 0.1


@needs_dlib
def test_exif_orientation_and_focal(tmp_path, astronaut):
    from PIL import Image

    from avat3r.frontend import prepare

    # stored sideways with an orientation tag (6 = rotate 90 deg clockwise to display), focal 50 mm (35 mm equiv.)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 50
    p = tmp_path / "phone.jpg"
    stored.save(p, exif=exif, quality=95)
    r = prepare([p], size=64)
    v = r.views[0]
    assert v.quarter_turns == 0 and v.focal_source == "exif"  # turned upright by EXIF, no search needed
    f_expected = 50.0 * math.hypot(512, 512) / math.hypot(36, 24)
    assert abs(v.K_full[0, 0] - f_expected) < 1e-6
    assert abs(v.azimuth_deg) < 10
