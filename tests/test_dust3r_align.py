"""Known-pose and pose-free global alignment on a synthetic scene with exact geometry (oracle pairwise pointmaps)."""

import numpy as np
import pytest
import torch

from avat3r.cameras import orbit_cameras, pixel_rays
from avat3r.capture import Capture
from avat3r.priors.dust3r import (
    AlignConfig,
    Dust3rPrior,
    PairPredictions,
    align_known_cameras,
    estimate_cameras,
    make_pairs,
)
from avat3r.priors.dust3r.prior import normalise_confidence

AXES = torch.tensor([0.08, 0.11, 0.10])  # ellipsoid "head" semi-axes, metres
ROOM = 3.0                                # enclosing sphere so every ray hits something


def scene_points(cams, size):
    """Ground-truth position maps [V, H, W, 3] (ray hits on the ellipsoid, else on the room sphere) + head mask."""
    o, d = pixel_rays(cams, size, size)
    oa, da = o / AXES, d / AXES
    a, b, c = (da * da).sum(-1), 2 * (oa * da).sum(-1), (oa * oa).sum(-1) - 1
    disc = b * b - 4 * a * c
    t_head = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
    b2, c2 = 2 * (o * d).sum(-1), (o * o).sum(-1) - ROOM**2
    t_room = (-b2 + (b2 * b2 - 4 * c2).sqrt()) / 2
    head = disc > 0
    t = torch.where(head, t_head, t_room)
    return o + t[..., None] * d, head


def _rotation(deg, g):
    axis = torch.nn.functional.normalize(torch.randn(3, generator=g), dim=0)
    Kx = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = torch.tensor(deg).deg2rad()
    return torch.eye(3) + a.sin() * Kx + (1 - a.cos()) * Kx @ Kx


def oracle_predictions(cams, P, edges, noise=0.002, seed=0, rot_deg=0.0):
    """Pairwise pointmaps in camera i's frame with an unknown per-pair scale (and optionally a small per-pair
    rotation of the whole pair's frame), noise, random confidences."""
    g = torch.Generator().manual_seed(seed)
    w2c = cams.world_to_cam
    out = {k: [] for k in ("pi", "pj", "ci", "cj")}
    for i, j in edges:
        s = float(torch.empty(1).uniform_(0.3, 3.0, generator=g))
        Rerr = _rotation(rot_deg, g)
        for v, key in ((i, "pi"), (j, "pj")):
            Xc = (P[v] @ w2c[i, :3, :3].T + w2c[i, :3, 3]) @ Rerr.T
            Xc = Xc + noise * Xc.norm(dim=-1, keepdim=True) * torch.randn(Xc.shape, generator=g)
            out[key].append(Xc / s)
        for key in ("ci", "cj"):
            out[key].append(1.5 + 3 * torch.rand(P.shape[1:3], generator=g))
    return PairPredictions(edges, *(torch.stack(out[k]) for k in ("pi", "pj", "ci", "cj")))


def test_known_pose_alignment_recovers_scene():
    size = 48
    cams = orbit_cameras(4, radius=0.6, fov_deg=25, size=size, azimuth_range=(-60, 60), elevation_deg=10)
    P, head = scene_points(cams, size)
    edges = make_pairs(4, "complete")
    res = align_known_cameras(oracle_predictions(cams, P, edges), cams, AlignConfig(iterations=10))
    err = (res.positions - P).norm(dim=-1)
    assert res.losses[-1] < res.losses[0]
    assert err[head].median() < 1e-3          # head surface within 1 mm (noise 0.2 % of depth)
    assert err[head].quantile(0.95) < 3e-3
    assert res.conf.min() >= 1.5


def test_alignment_absorbs_per_pair_rotation_errors():
    size = 48
    cams = orbit_cameras(4, radius=0.6, fov_deg=25, size=size, azimuth_range=(-60, 60), elevation_deg=10)
    P, head = scene_points(cams, size)
    pred = oracle_predictions(cams, P, make_pairs(4, "complete"), rot_deg=3.0)
    # starting from the camera rotations alone, a 3 degree error per pair leaves centimetres of error
    e0 = (align_known_cameras(pred, cams, AlignConfig(init_steps=0, iterations=0)).positions - P).norm(dim=-1)[head].median()
    res = align_known_cameras(pred, cams)  # default: per-pair Gauss-Newton fit to the rays, then 10 iterations
    e = (res.positions - P).norm(dim=-1)[head]
    assert e0 > 0.01 and e.median() < 1e-3 and e.quantile(0.95) < 3e-3


def test_alignment_is_exact_without_noise():
    size = 32
    cams = orbit_cameras(3, radius=0.6, fov_deg=25, size=size, azimuth_range=(-45, 45))
    P, head = scene_points(cams, size)
    res = align_known_cameras(oracle_predictions(cams, P, make_pairs(3, "half"), noise=0.0), cams)
    assert (res.positions - P).norm(dim=-1).max() < 1e-4


def test_pose_free_recovers_relative_cameras():
    size = 48
    cams = orbit_cameras(4, radius=0.6, fov_deg=25, size=size, azimuth_range=(-60, 60), elevation_deg=10)
    P, head = scene_points(cams, size)
    pred = oracle_predictions(cams, P, make_pairs(4, "complete"), noise=0.0)
    est = estimate_cameras(pred, 4, depth0=1.0)
    assert torch.allclose(est.K[:, 0, 0], cams.K[:, 0, 0], rtol=1e-3)
    # compare relative poses (camera 0 frame) up to the global scale
    rel_true = cams.world_to_cam @ cams.cam_to_world[0]
    rel_est = est.world_to_cam @ est.cam_to_world[0]
    assert (rel_true[:, :3, :3] - rel_est[:, :3, :3]).abs().max() < 1e-3
    ratio = rel_true[1:, :3, 3].norm(dim=-1) / rel_est[1:, :3, 3].norm(dim=-1)
    assert (ratio / ratio.mean() - 1).abs().max() < 1e-3


def test_confidence_normalisation_tau():
    c = torch.tensor([1.0, 1.5, 2.0, 3.0, 100.0])
    n = normalise_confidence(c)
    assert torch.allclose(n, 1 - 1 / c)
    assert (n > 0.5).tolist() == [False, False, False, True, True]
    assert normalise_confidence(torch.tensor([3.0]), conf_at_half=3.0).item() == pytest.approx(0.5)


class _OracleNet(torch.nn.Module):
    """Stands in for the network inside Dust3rPrior: returns the oracle pointmaps of the requested pairs."""

    def __init__(self, pred):
        super().__init__()
        self.pred, self.p = pred, torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"patch_size": 16})()

    def forward(self, a, b):
        idx = self._next
        self._next = self._next + a.shape[0]
        sl = slice(idx, idx + a.shape[0])
        return ({"pts3d": self.pred.pts_i[sl], "conf": self.pred.conf_i[sl]},
                {"pts3d_in_other_view": self.pred.pts_j[sl], "conf": self.pred.conf_j[sl]})


def test_dust3r_prior_end_to_end_with_oracle_network():
    size = 64  # 64 -> long side 64 (config below), no resize, crop = whole image
    cams = orbit_cameras(3, radius=0.6, fov_deg=25, size=size, azimuth_range=(-45, 45))
    P, head = scene_points(cams, size)
    pred = oracle_predictions(cams, P, make_pairs(3, "complete"), noise=0.0)
    net = _OracleNet(pred)
    net._next = 0
    from avat3r.priors.dust3r import Dust3rPriorConfig

    prior = Dust3rPrior(model=net, config=Dust3rPriorConfig(long_side=64, batch_size=4), device="cpu")
    masks = head.float().numpy()
    cap = Capture(np.random.rand(3, size, size, 3).astype(np.float32), cams, ["a", "b", "c"], masks=masks)
    out = prior(cap)
    assert out.positions.shape == (3, size, size, 3) and out.confidence.shape == (3, size, size)
    assert (out.positions - P).abs()[head].max() < 1e-3
    assert (out.confidence[~head] == 0).all() and (out.confidence[head] > 0.3).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_known_pose_alignment_on_gpu_matches_cpu():
    size = 48
    cams = orbit_cameras(4, radius=0.6, fov_deg=25, size=size, azimuth_range=(-60, 60), elevation_deg=10)
    P, head = scene_points(cams, size)
    pred = oracle_predictions(cams, P, make_pairs(4, "complete"))
    cpu = align_known_cameras(pred, cams)
    gpu_pred = PairPredictions(pred.edges, *(t.cuda() for t in (pred.pts_i, pred.pts_j, pred.conf_i, pred.conf_j)))
    gpu = align_known_cameras(gpu_pred, cams)
    assert (gpu.positions.cpu() - cpu.positions).norm(dim=-1)[head].max() < 1e-4
