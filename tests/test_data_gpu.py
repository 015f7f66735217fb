"""SynthHeads on CUDA: the sampler generates on the GPU and agrees with the CPU path. Run on the device."""

import pytest
import torch

from avat3r.data.sampler import SynthHeadsSampler
from avat3r.priors.visual_hull import visual_hull_maps

pytestmark = pytest.mark.gpu


def test_sampler_on_gpu_matches_cpu_geometry():
    kw = dict(input_size=96, target_size=112, num_targets=3, split="test")
    g = SynthHeadsSampler(**kw, device="cuda").sample(5)
    c = SynthHeadsSampler(**kw, device="cpu", backend="torch").sample(5)
    for k in ("input_images", "input_masks", "prior_positions", "prior_confidence", "target_images"):
        assert g[k].is_cuda and g[k].shape == c[k].shape, k
    assert g["identity_seed"] == c["identity_seed"]
    assert torch.equal(g["input_camera_ids"], c["input_camera_ids"])
    # the two renderers agree on silhouettes; the prior agrees where both are confident
    assert ((g["input_masks"].cpu() > 0.5) != (c["input_masks"] > 0.5)).float().mean() < 0.02
    both = (g["prior_confidence"].cpu() > 0.5) & (c["prior_confidence"] > 0.5)
    err = (g["prior_positions"].cpu() - c["prior_positions"]).norm(dim=1, keepdim=True)[both]
    assert err.median() < 0.005


def test_hull_gpu_equals_cpu():
    s = SynthHeadsSampler(input_size=64, target_size=16, num_targets=1, split="test", device="cuda", prior="none")
    x = s.sample(0)
    pg, cg = visual_hull_maps(x["input_masks"][:, 0], x["input_cameras"])
    pc, cc = visual_hull_maps(x["input_masks"][:, 0].cpu(), x["input_cameras"].to("cpu"))
    assert (pg.cpu() - pc).norm(dim=-1).median() < 1e-3
