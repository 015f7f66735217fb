import json
import math

import numpy as np
import pytest
import torch

from avat3r.cameras import (
    Cameras,
    intrinsics_from_fov,
    k_farthest_viewpoints,
    look_at,
    orbit_cameras,
    pixel_rays,
    plucker_rays,
    read_cameras_json,
    spherical_to_cartesian,
    write_cameras_json,
)
from avat3r.errors import FormatError, InputError


def frontal(size=64, d=1.0, fov=30.0):
    return Cameras(intrinsics_from_fov(fov, size), look_at(torch.tensor([0.0, 0.0, d])), size, size)


def test_frontal_camera_matches_documented_frame():
    cam = frontal()
    R = cam.world_to_cam[0, :3, :3]
    assert torch.allclose(R, torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6)
    assert torch.allclose(cam.centers[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # the subject's left ear (+x) appears on the image's right, the crown (+y) at the top
    uv, z = cam.project(torch.tensor([[0.05, 0.0, 0.0], [0.0, 0.05, 0.0]]))
    assert uv[0, 0, 0] > 32 and abs(uv[0, 0, 1] - 32) < 1e-4
    assert uv[0, 1, 1] < 32 and (z > 0).all()


def test_projection_roundtrip_through_rays():
    cams = orbit_cameras(5, radius=1.2, elevation_deg=20, size=48)
    o, d = pixel_rays(cams)
    pts = o + 0.9 * d  # a point on each ray
    uv, _ = cams.project(pts.reshape(5, -1, 3))
    v, u = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    expect = torch.stack([u, v], -1).reshape(1, -1, 2).expand(5, -1, -1)
    assert torch.allclose(uv, expect, atol=1e-3)


def test_plucker_rays_are_unit_and_moment_orthogonal():
    cams = orbit_cameras(3, size=16)
    p = plucker_rays(cams)
    assert p.shape == (3, 6, 16, 16)
    d, m = p[:, :3], p[:, 3:]
    assert torch.allclose(d.norm(dim=1), torch.ones(3, 16, 16), atol=1e-5)
    assert (d * m).sum(1).abs().max() < 1e-5
    # moment = o x d is the same for any point on the ray: check with the camera centre shifted along the ray
    o, dd = pixel_rays(cams)
    m2 = torch.linalg.cross(o + 0.3 * dd, dd, dim=-1).permute(0, 3, 1, 2)
    assert torch.allclose(m, m2, atol=1e-5)


def test_crop_and_resize_keep_projection_consistent():
    cam = frontal(size=100)
    pt = torch.tensor([[0.03, -0.02, 0.05]])
    uv, _ = cam.project(pt)
    cropped = cam.crop([20, 10, 50, 50])
    uv_c, _ = cropped.project(pt)
    assert torch.allclose(uv_c, uv - torch.tensor([20.0, 10.0]), atol=1e-4)
    resized = cropped.resize(25)
    uv_r, _ = resized.project(pt)
    assert torch.allclose(uv_r, uv_c * 0.5, atol=1e-4)
    assert int(resized.width[0]) == 25 and int(resized.height[0]) == 25


def test_orbit_starts_frontal_and_loops():
    cams = orbit_cameras(8, radius=2.0, elevation_deg=0.0)
    assert torch.allclose(cams.centers[0], torch.tensor([0.0, 0.0, 2.0]), atol=1e-5)
    az = torch.rad2deg(torch.atan2(cams.centers[:, 0], cams.centers[:, 2]))
    assert torch.allclose(az[2], torch.tensor(90.0), atol=1e-3)  # a quarter turn is the subject's left
    assert len(set(np.round(az.numpy(), 3))) == 8


def test_k_farthest_sampling_spreads_and_respects_allowed():
    az = torch.linspace(-180, 180, 73)[:-1]
    centers = spherical_to_cartesian(az, torch.zeros_like(az), torch.ones_like(az))
    allowed = az.abs() < 100  # no back views
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = k_farthest_viewpoints(centers, 4, allowed=allowed, generator=g)
        assert len(set(idx)) == 4 and all(bool(allowed[i]) for i in idx)
        dirs = centers[idx]
        # candidates come from farthest point sampling over 10 views in a 200 degree arc: >= ~15 degrees apart (grid of 5)
        cos = (dirs @ dirs.T).fill_diagonal_(-1).max()
        assert cos < math.cos(math.radians(14))
    with pytest.raises(InputError):
        k_farthest_viewpoints(centers[:3], 4)


def test_cameras_json_roundtrip(tmp_path):
    cams = orbit_cameras(3, size=32)
    write_cameras_json(tmp_path / "cameras.json", ["a", "b", "c"], cams)
    names, back = read_cameras_json(tmp_path / "cameras.json")
    assert names == ["a", "b", "c"]
    assert torch.allclose(back.K, cams.K) and torch.allclose(back.world_to_cam, cams.world_to_cam, atol=1e-6)
    names, sub = read_cameras_json(tmp_path / "cameras.json", views=["c", "a"])
    assert names == ["c", "a"] and torch.allclose(sub.world_to_cam[0], cams.world_to_cam[2], atol=1e-6)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["v"].pop("K"), "missing 'K'"),
        (lambda d: d["v"].__setitem__("K", [[1, 0], [0, 1]]), "shape"),
        (lambda d: d["v"].__setitem__("K", [[0, 0, 1], [0, 0, 1], [0, 0, 1]]), "non-invertible"),
        (lambda d: d["v"]["world_to_cam"][0].__setitem__(3, float("nan")), "NaN"),
        (lambda d: d["v"].__setitem__("width", -3), "positive integer"),
        (lambda d: d["v"].__setitem__("width", "wide"), "positive integer"),
        (lambda d: d["v"]["world_to_cam"][0].__setitem__(0, 5.0), "rotation"),
    ],
)
def test_malformed_cameras_json_names_field(tmp_path, mutate, needle):
    good = orbit_cameras(1, size=32).to_dict(["v"])
    mutate(good)
    p = tmp_path / "cameras.json"
    p.write_text(json.dumps(good))
    with pytest.raises(FormatError) as e:
        read_cameras_json(p)
    assert needle in str(e.value) and "cameras.json" in str(e.value)


def test_unreadable_or_missing_cameras_json(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        read_cameras_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_cameras_json(tmp_path / "bad.json")
    (tmp_path / "ok.json").write_text(json.dumps(orbit_cameras(1).to_dict(["a"])))
    with pytest.raises(FormatError, match="no camera for view 'b'"):
        read_cameras_json(tmp_path / "ok.json", views=["b"])


def test_write_is_atomic_on_failure(tmp_path):
    p = tmp_path / "cameras.json"
    write_cameras_json(p, ["a"], orbit_cameras(1))
    before = p.read_text()
    with pytest.raises(InputError):
        write_cameras_json(p, ["a", "b"], orbit_cameras(1))  # wrong number of names
    assert p.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["cameras.json"]
