"""CPU tests of the renderer: analytic single-Gaussian footprints, occlusion, background, gradients
(gradcheck), agreement with the dense reference rasterizer, empty scenes and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from avat3r.cameras import Cameras
from avat3r.errors import InputError
from avat3r.gaussians import Gaussians
from avat3r.render import render, torch_backend
from avat3r.render.reference import rasterize_dense
from avat3r.render.scenes import head_like_scene, random_scene

F = 40.0  # focal length in pixels of the test camera
S = 33  # image size; the principal point (16.5, 16.5) is the centre of pixel (16, 16)


def _camera(size=S, f=F, dtype=torch.float64) -> Cameras:
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]], dtype=dtype)
    return Cameras(K, torch.eye(4), size, size)  # at the origin, looking down +z


def _one(mean, scale, opacity, color, quat=(1.0, 0, 0, 0), dtype=torch.float64) -> Gaussians:
    t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    s = scale if isinstance(scale, (list, tuple)) else [scale] * 3
    return Gaussians(t([mean]), t([quat]), t([s]), t([opacity]), t([color]))


def _pixel_grid(size=S):
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5, torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    return xs, ys


@pytest.mark.parametrize("antialiased", [False, True])
def test_single_gaussian_matches_analytic_footprint(antialiased):
    z0, s, op, col, bg = 2.0, 0.05, 0.8, (0.9, 0.5, 0.2), (0.1, 0.2, 0.3)
    out = render(_one([0, 0, z0], s, op, col), _camera(), background=bg, eps2d=0.3, antialiased=antialiased)
    var = (F * s / z0) ** 2 + 0.3  # projected variance (px²) plus eps2d
    op_eff = op * ((F * s / z0) ** 2 / var if antialiased else 1.0)
    xs, ys = _pixel_grid()
    r2 = (xs - S / 2) ** 2 + (ys - S / 2) ** 2
    alpha = op_eff * torch.exp(-0.5 * r2 / var)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    torch.testing.assert_close(out.alpha[0, ..., 0], alpha, atol=1e-10, rtol=1e-9)
    expect = alpha[..., None] * torch.tensor(col, dtype=torch.float64) + (1 - alpha[..., None]) * torch.tensor(bg, dtype=torch.float64)
    torch.testing.assert_close(out.color[0], expect, atol=1e-10, rtol=1e-9)
    # Centre pixel: exactly opacity * colour over the background; depth = z0 wherever covered, 0 elsewhere.
    c = out.color[0, 16, 16]
    torch.testing.assert_close(c, op_eff * torch.tensor(col, dtype=torch.float64) + (1 - op_eff) * torch.tensor(bg, dtype=torch.float64))
    covered = alpha > 0
    assert covered.sum() > 20 and (~covered).sum() > 20
    torch.testing.assert_close(out.depth[0, ..., 0][covered], torch.full_like(alpha[covered], z0))
    assert (out.depth[0, ..., 0][~covered] == 0).all()


def test_rotated_anisotropic_footprint():
    z0, theta = 2.5, math.radians(30)
    quat = (math.cos(theta / 2), 0.0, 0.0, math.sin(theta / 2))  # rotation about the optical axis
    sx, sy = 0.12, 0.04
    out = render(_one([0, 0, z0], [sx, sy, 0.01], 0.7, (1, 1, 1), quat=quat), _camera())
    Rz = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64)
    cov = (F / z0) ** 2 * Rz @ torch.diag(torch.tensor([sx**2, sy**2], dtype=torch.float64)) @ Rz.T + 0.3 * torch.eye(2, dtype=torch.float64)
    xs, ys = _pixel_grid()
    d = torch.stack([xs - S / 2, ys - S / 2], -1)
    m = torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov), d)
    alpha = 0.7 * torch.exp(-0.5 * m)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    torch.testing.assert_close(out.alpha[0, ..., 0], alpha, atol=1e-10, rtol=1e-9)
    assert out.alpha[0, 16, 16 + 3] > 2 * out.alpha[0, 16 + 3, 16]  # elongated along x (rotated 30 deg)


def test_front_gaussian_occludes_back_one_regardless_of_input_order():
    front = _one([0, 0, 2.0], 0.05, 0.9, (1.0, 0.0, 0.0))
    back = _one([0, 0, 3.0], 0.08, 0.9, (0.0, 0.0, 1.0))
    cam = _camera()
    a = render(Gaussians.cat([front, back]), cam)
    b = render(Gaussians.cat([back, front]), cam)
    torch.testing.assert_close(a.color, b.color)
    c = a.color[0, 16, 16]
    expect = 0.9 * torch.tensor([1.0, 0, 0]) + 0.1 * 0.9 * torch.tensor([0.0, 0, 1.0])
    torch.testing.assert_close(c, expect.double())
    assert c[0] > c[2]
    d = a.depth[0, 16, 16, 0]  # expected depth: weighted by 0.9 (front) and 0.09 (back)
    torch.testing.assert_close(d, torch.tensor((0.9 * 2 + 0.09 * 3) / 0.99, dtype=torch.float64))


def test_background_and_empty_set():
    cam = _camera(dtype=torch.float32)
    bg = (0.2, 0.4, 0.6)
    out = render(Gaussians.empty(), cam, background=bg)
    assert out.color.shape == (1, S, S, 3) and out.alpha.shape == (1, S, S, 1) and out.depth.shape == (1, S, S, 1)
    torch.testing.assert_close(out.color, torch.tensor(bg).expand(1, S, S, 3))
    assert (out.alpha == 0).all() and (out.depth == 0).all()
    far_corner = render(_one([0, 0, 2.0], 0.02, 1.0, (1, 1, 1), dtype=torch.float32), cam, background=bg).color[0, 0, 0]
    torch.testing.assert_close(far_corner, torch.tensor(bg))


def test_nothing_visible_still_differentiable():
    cam = _camera()
    offscreen = Gaussians.cat([_one([5.0, 0, 2.0], 0.01, 0.9, (1, 1, 1)), _one([0.0, -5.0, 2.0], 0.01, 0.9, (1, 1, 1))])
    for g in (offscreen, Gaussians.empty().to(torch.float64)):
        leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
        out = render(Gaussians(*leaves), cam)
        assert out.alpha.max() == 0
        (out.color.sum() + out.depth.sum()).backward()
        assert all(t.grad is not None and (t.grad == 0).all() for t in leaves)


def test_near_far_culling_and_behind_camera():
    cam = _camera()
    for z in (-1.0, 0.005, 2000.0):  # behind, closer than near (0.01), beyond far (1e3)
        out = render(_one([0, 0, z], 0.001 if z < 1 else 50.0, 0.9, (1, 1, 1)), cam)
        assert out.alpha.max() == 0, z


def test_early_stop_matches_gsplat_rule():
    """Many opaque layers: blending stops before the Gaussian that would take T to <= 1e-4."""
    layers = [_one([0, 0, 2.0 + 0.1 * i], 0.05, 0.995, (1.0, 1.0, 1.0)) for i in range(3)]
    layers.append(_one([0, 0, 2.5], 0.05, 0.01, (0.0, 0.0, 0.0)))  # faint: would not cross 1e-4 on its own
    out = render(Gaussians.cat(layers), _camera())
    # At the centre T = 0.005 after the first layer; the second would take it to 2.5e-5 <= 1e-4, so the pixel
    # stops there and nothing behind (not even the faint Gaussian) is blended.
    torch.testing.assert_close(out.alpha[0, 16, 16, 0], torch.tensor(0.995, dtype=torch.float64))
    torch.testing.assert_close(out.color[0, 16, 16], torch.full((3,), 0.995, dtype=torch.float64))


@pytest.mark.parametrize("antialiased", [False, True])
def test_matches_dense_reference_on_random_scenes(monkeypatch, antialiased):
    monkeypatch.setattr(torch_backend, "CHUNK_MIN_PAIRS", 1024)  # many chunks: exercises occlusion culling
    for seed, n in ((0, 300), (1, 1000)):
        g, cams = random_scene(n, 40, seed=seed, n_cameras=2, dtype=torch.float64)
        g = Gaussians(g.means, g.quats, g.scales * 3, (g.opacities * 1.5).clamp(max=1.0), g.colors)  # dense, opaque
        bg = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]], dtype=torch.float64)
        out = render(g, cams, background=bg, antialiased=antialiased)
        ref = rasterize_dense(
            g.means, g.quats, g.scales, g.opacities, g.colors, cams.world_to_cam.double(), cams.K.double(),
            40, 40, bg, antialiased=antialiased,
        )
        for got, want in zip(out, ref):
            torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)


def test_matches_dense_reference_on_head_scene(monkeypatch):
    monkeypatch.setattr(torch_backend, "CHUNK_MIN_PAIRS", 1024)
    g, cam = head_like_scene(3000, 48)
    out = render(g, cam)
    ref = rasterize_dense(g.means, g.quats, g.scales, g.opacities, g.colors, cam.world_to_cam, cam.K, 48, 48, torch.zeros(1, 3))
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert out.alpha.mean() > 0.3  # the head covers a good part of the view


def test_grad_path_forward_equals_no_grad_forward():
    g, cams = random_scene(800, 48, seed=3)
    with torch.no_grad():
        a = render(g, cams)
    g2 = Gaussians(*(t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))
    b = render(g2, cams)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y.detach(), atol=1e-5, rtol=1e-5)
    (b.color.sum() + b.alpha.sum() + 0.1 * b.depth.sum()).backward()
    for t in (g2.means, g2.quats, g2.scales, g2.opacities, g2.colors):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_gradients_match_autograd_through_dense_reference(monkeypatch):
    """The hand-written backward (with occlusion culling and early stops) against autograd of the reference."""
    monkeypatch.setattr(torch_backend, "CHUNK_MIN_PAIRS", 256)
    g, cams = random_scene(400, 32, seed=5, dtype=torch.float64)
    scales, opac = g.scales * 3, (g.opacities * 1.5).clamp(max=0.995)
    weights = torch.rand(2, 32, 32, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bg = torch.tensor([[0.3, 0.1, 0.9], [0.0, 0.5, 1.0]], dtype=torch.float64)

    def grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, scales, opac, g.colors)]
        c, a, d = fn(*leaves, cams.world_to_cam.double(), cams.K.double(), 32, 32, bg)
        (torch.cat([c, a, d], -1) * weights).sum().backward()
        return [t.grad for t in leaves]

    for got, want in zip(grads(torch_backend.rasterize_torch), grads(rasterize_dense)):
        torch.testing.assert_close(got, want, atol=1e-8, rtol=1e-7)


def test_gradcheck_tiny_scene():
    gen = torch.Generator().manual_seed(0)
    n = 3
    means = torch.tensor([[0.0, 0.0, 2.0], [0.05, -0.03, 2.3], [-0.06, 0.04, 2.6]], dtype=torch.float64)
    quats = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    scales = torch.tensor([[0.06, 0.04, 0.05], [0.05, 0.07, 0.03], [0.08, 0.05, 0.06]], dtype=torch.float64)
    opac = torch.tensor([0.7, 0.6, 0.8], dtype=torch.float64)
    colors = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    cam = _camera(size=12, f=14.0)

    def f(m, q, s, o, c):
        out = render(Gaussians(m, q, s, o, c), cam, background=(0.2, 0.3, 0.4))
        return out.color, out.alpha, out.depth

    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_bad_input_raises_input_error():
    cam = _camera(dtype=torch.float32)
    good = _one([0, 0, 2.0], 0.05, 0.5, (1, 1, 1), dtype=torch.float32)
    with pytest.raises(InputError, match="means"):
        render(Gaussians(good.means * float("nan"), good.quats, good.scales, good.opacities, good.colors), cam)
    with pytest.raises(InputError, match="shape"):
        Gaussians(good.means, good.quats, good.scales, good.opacities, torch.zeros(2, 3))
    with pytest.raises(InputError, match="backend"):
        render(good, cam, backend="opengl")
    with pytest.raises(InputError, match="background"):
        render(good, cam, background=(1.0, 0.0))
    two = Cameras.cat([_camera(dtype=torch.float32), _camera(size=20, dtype=torch.float32)])
    with pytest.raises(InputError, match="image size"):
        render(good, two)
    with pytest.raises(InputError, match="Gaussians"):
        render(good.means, cam)
    with pytest.raises(InputError, match="near"):
        render(good, cam, near=0.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_backend_on_cpu_uses_torch_and_gsplat_backend_explains():
    cam = _camera(dtype=torch.float32)
    g = _one([0, 0, 2.0], 0.05, 0.5, (1, 1, 1), dtype=torch.float32)
    out = render(g, cam, backend="auto")
    assert out.color.dtype == torch.float32 and out.alpha.max() > 0.4
    with pytest.raises(InputError, match="CUDA"):
        render(g, cam, backend="gsplat")
