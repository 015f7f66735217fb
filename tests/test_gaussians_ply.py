import numpy as np
import pytest
import torch

from avat3r.errors import FormatError, InputError
from avat3r.gaussians import Gaussians, quat_to_rotmat, rotmat_to_quat
from avat3r.io.ply import load_ply, read_ply_array, save_ply


def random_gaussians(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 0.1,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.01 + 1e-4,
        opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
        colors=torch.rand(n, 3, generator=g),
    )


def test_container_select_cat_transform():
    g = random_gaussians(10)
    assert len(g.select(torch.arange(10) < 4)) == 4
    assert len(Gaussians.cat([g, g.select(torch.tensor([1, 2]))])) == 12
    with pytest.raises(InputError, match="means must have shape"):
        Gaussians(torch.zeros(3, 2), torch.zeros(3, 4), torch.ones(3, 3), torch.ones(3), torch.ones(3, 3))
    # a rigid transform moves means and rotates covariances consistently
    R = quat_to_rotmat(torch.tensor([0.9, 0.1, -0.3, 0.2]))
    t = torch.tensor([0.1, 0.2, 0.3])
    h = g.transform(R, t, scale=2.0)
    assert torch.allclose(h.means, 2 * g.means @ R.T + t, atol=1e-6)
    assert torch.allclose(h.covariances(), 4 * R @ g.covariances() @ R.T, atol=1e-8)


def test_quaternion_roundtrip():
    q = torch.nn.functional.normalize(torch.randn(1000, 4), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    assert torch.allclose(rotmat_to_quat(quat_to_rotmat(q)), q, atol=1e-5)


def test_ply_roundtrip_exact(tmp_path):
    g = random_gaussians(500)
    save_ply(tmp_path / "a.ply", g)
    back = load_ply(tmp_path / "a.ply")
    assert torch.allclose(back.means, g.means, rtol=0, atol=0)  # positions stored verbatim
    assert torch.allclose(back.colors, g.colors, atol=1e-6)
    assert torch.allclose(back.scales, g.scales, rtol=1e-6)
    assert torch.allclose(back.opacities, g.opacities, atol=1e-6)
    qn = torch.nn.functional.normalize(g.quats, dim=-1)
    assert torch.allclose(back.quats, qn, atol=1e-7)
    # stored values survive load -> save: positions and rotations bit-exact, activated fields to float32 precision
    save_ply(tmp_path / "b.ply", back)
    a, b = read_ply_array(tmp_path / "a.ply"), read_ply_array(tmp_path / "b.ply")
    for k in ("x", "y", "z", "rot_0", "rot_3"):
        assert np.array_equal(a[k], b[k])
    for k in ("f_dc_0", "f_dc_2", "scale_1"):
        np.testing.assert_array_max_ulp(a[k], b[k], maxulp=8)
    assert np.abs(a["opacity"] - b["opacity"]).max() < 1e-4


def test_ply_layout_is_standard_3dgs(tmp_path):
    save_ply(tmp_path / "a.ply", random_gaussians(3))
    head = (tmp_path / "a.ply").read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in head and "element vertex 3" in head and "element face" not in head
    props = [ln.split()[-1] for ln in head.splitlines() if ln.startswith("property")]
    assert props == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    arr = read_ply_array(tmp_path / "a.ply")
    assert arr.dtype["x"] == np.float32


def test_ply_y_down_orientation_flips(tmp_path):
    g = random_gaussians(5)
    save_ply(tmp_path / "d.ply", g, orientation="y_down")
    raw = load_ply(tmp_path / "d.ply")
    assert torch.allclose(raw.means[:, 1], -g.means[:, 1], atol=1e-7)
    assert torch.allclose(load_ply(tmp_path / "d.ply", orientation="y_down").means, g.means, atol=1e-7)


def test_ply_bad_files(tmp_path):
    p = tmp_path / "x.ply"
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                  b"property float z\nend_header\n" + bytes(24))
    with pytest.raises(FormatError, match=r"missing properties \['opacity'"):
        load_ply(p)
    p.write_bytes(b"hello")
    with pytest.raises(FormatError, match="not a PLY"):
        load_ply(p)
    save_ply(tmp_path / "t.ply", random_gaussians(10))
    data = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[:-20])
    with pytest.raises(FormatError, match="truncated"):
        load_ply(tmp_path / "t.ply")
    (tmp_path / "a.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(FormatError, match="ascii"):
        load_ply(tmp_path / "a.ply")
    with pytest.raises(FormatError, match="not found"):
        load_ply(tmp_path / "missing.ply")


def test_save_refuses_invalid_and_leaves_nothing(tmp_path):
    g = random_gaussians(4)
    g.means[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        save_ply(tmp_path / "n.ply", g)
    assert list(tmp_path.iterdir()) == []
