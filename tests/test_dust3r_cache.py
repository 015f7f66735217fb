"""Prior cache for training (supp. C): layout, partner views, refusal of a mismatched cache."""

import json

import numpy as np
import pytest
import torch

from avat3r.cameras import orbit_cameras
from avat3r.capture import Capture
from avat3r.errors import FormatError, InputError
from avat3r.priors.base import PriorOutput
from avat3r.priors.cache import PriorCache, partner_views, precompute


class CountingPrior:
    name = "dust3r"

    def __init__(self):
        self.groups = []

    def __call__(self, cap):
        self.groups.append(list(cap.names))
        V, H, W = cap.images.shape[:3]
        pos = np.broadcast_to(cap.cameras.centers.numpy()[:, None, None], (V, H, W, 3)).copy()
        return PriorOutput(pos.astype(np.float32), np.full((V, H, W), 0.7, np.float32))


def test_precompute_layout_and_reuse(tmp_path):
    cams = orbit_cameras(8, radius=1.0, size=16)
    cap = Capture(np.random.rand(8, 16, 16, 3).astype(np.float32), cams, [f"cam{i}" for i in range(8)])
    cache = PriorCache(tmp_path / "c", prior="dust3r", features="sapiens-test")
    prior = CountingPrior()
    feats = lambda imgs: torch.ones(len(imgs), 4, 2, 2)  # noqa: E731
    assert precompute([("s1", "f0", cap)], cache, prior, feats) == 8
    assert all(len(g) == 4 and g[0] == f"cam{i}" for i, g in enumerate(prior.groups))  # view + 3 partners
    t = cache.read("s1", "f0", "cam3")
    assert t["positions"].shape == (16, 16, 3) and torch.allclose(t["positions"][0, 0], cams.centers[3])
    assert t["confidence"].shape == (16, 16) and t["features"].shape == (4, 2, 2) and t["features"].dtype == torch.float32
    assert (tmp_path / "c" / "s1" / "f0" / "cam3.safetensors").is_file()
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["prior"] == "dust3r"
    assert precompute([("s1", "f0", cap)], cache, prior, feats) == 0  # already cached
    with pytest.raises(FormatError, match="visual_hull"):
        PriorCache(tmp_path / "c", prior="visual_hull", features="sapiens-test")
    with pytest.raises(InputError, match="precompute"):
        cache.read("s1", "f9", "cam0")


def test_partner_views_are_spread_and_near():
    cams = orbit_cameras(16, radius=1.0, size=8)
    p = partner_views(cams.centers, 0, 3)
    assert len(set(p)) == 3 and 0 not in p
    dirs = torch.nn.functional.normalize(cams.centers, dim=-1)
    assert all(float(dirs[i] @ dirs[0]) >= np.cos(np.radians(100)) - 1e-6 for i in p)
