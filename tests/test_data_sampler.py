"""Dome, head crops and the paper-style sampler (supp. C) on SynthHeads."""

import pytest
import torch

from avat3r.cameras import Cameras
from avat3r.data.dome import back_only, fold_head_pose, head_crops, head_pose_matrix, make_dome
from avat3r.data.sampler import SamplerConfig, SynthHeadsDataset, SynthHeadsSampler, SynthHeadsStream, collate
from avat3r.errors import InputError
from avat3r.head_template import HEAD_BOX_CENTER

SMALL = dict(input_size=40, target_size=48, num_targets=2, backend="torch", split="test")


@pytest.fixture(scope="module")
def sampler():
    torch.set_num_threads(1)
    return SynthHeadsSampler(**SMALL)


@pytest.fixture(scope="module")
def sample(sampler):
    return sampler.sample(7)


def test_dome_layout():
    d = make_dome()
    assert len(d.names) == 80 and len(set(d.names)) == 80
    dist = d.cameras.centers.norm(dim=-1)
    assert 0.79 < dist.min() and dist.max() < 1.31
    bo = back_only(d.cameras)
    assert 5 <= int(bo.sum()) <= 20
    assert (d.elevation > 20).sum() > 10 and (d.elevation < -10).sum() > 5  # above and below
    assert d.cameras.K[:, 0, 0].std() > 50  # varied focal lengths
    # every camera looks at the head
    uv, z = d.cameras.project(torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)[None])
    assert (z > 0).all() and (uv[:, 0, 0] - 667 / 2).abs().max() < 120


def test_head_crops_center_the_head():
    d = make_dome()
    c = head_crops(d.cameras, 64)
    uv, _ = c.project(torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)[None])
    assert torch.allclose(uv[:, 0], torch.full((80, 2), 32.0), atol=1e-3)
    assert (c.width == 64).all() and (c.height == 64).all()


def test_head_pose_folding_keeps_relative_geometry():
    d = make_dome()
    R = head_pose_matrix(20, 5, 0)
    f = fold_head_pose(d.cameras, R)
    # the head point x_head seen by the folded camera equals R x_head seen by the original one
    x = torch.tensor([[0.03, 0.02, 0.09]])
    uv1, _ = f.project(x)
    uv2, _ = d.cameras.project(x @ R.T)
    assert torch.allclose(uv1, uv2, atol=1e-3)


def test_sample_shapes_and_ranges(sample):
    V, T = 4, 2
    assert sample["input_images"].shape == (V, 3, 40, 40)
    assert sample["input_masks"].shape == (V, 1, 40, 40)
    assert sample["prior_positions"].shape == (V, 3, 40, 40)
    assert sample["prior_confidence"].shape == (V, 1, 40, 40)
    assert sample["target_images"].shape == (T, 3, 48, 48)
    assert sample["target_masks"].shape == (T, 1, 48, 48)
    assert isinstance(sample["input_cameras"], Cameras) and len(sample["input_cameras"]) == V
    assert sample["input_expressions"].shape == (V, 20) and sample["target_expression"].shape == (20,)
    for k in ("input_images", "target_images", "input_masks", "prior_confidence"):
        assert sample[k].min() >= 0 and sample[k].max() <= 1
    m = sample["input_masks"]
    assert 0.1 < (m > 0.5).float().mean() < 0.9  # a head, not an empty or full frame
    assert ((sample["prior_confidence"] > 0.5) == (m > 0.5)).float().mean() > 0.99
    assert sample["identity_seed"] in range(2_000_000, 2_000_012)


def test_inputs_are_k_farthest_distinct_non_back_views_with_differing_expressions(sampler):
    d = sampler.dome
    bo = back_only(d.cameras)
    for i in range(20):  # camera selection is cheap: check it many times without rendering
        gen = torch.Generator().manual_seed(i)
        from avat3r.cameras import k_farthest_viewpoints
        ids = k_farthest_viewpoints(d.cameras.centers, 4, n_candidates=10, allowed=sampler.allowed, generator=gen)
        assert len(set(ids)) == 4 and not bo[ids].any()
    s = sampler.sample(3)
    ids = s["input_camera_ids"]
    assert len(set(ids.tolist())) == 4 and not bo[ids].any()
    z = s["input_expressions"]
    assert (torch.cdist(z, z) + torch.eye(4) * 10).min() > 1e-3  # inconsistent inputs: all different


def test_consistent_inputs_and_determinism():
    torch.set_num_threads(1)
    s = SynthHeadsSampler(**SMALL, num_inputs=2, consistent_inputs=True, prior="none")
    a, b = s.sample(11), s.sample(11)
    assert torch.equal(a["input_images"], b["input_images"]) and torch.equal(a["target_images"], b["target_images"])
    assert torch.equal(a["input_expressions"][0], a["input_expressions"][1])
    c = s.sample(12)
    assert not torch.equal(a["input_images"], c["input_images"])


def test_config_validation_and_wrappers(sampler):
    with pytest.raises(InputError):
        SynthHeadsSampler(num_inputs=9)
    with pytest.raises(InputError):
        SynthHeadsSampler(prior="magic")
    with pytest.raises(InputError):
        SynthHeadsSampler(bogus=1)
    ds = SynthHeadsDataset(SamplerConfig(**SMALL, num_inputs=1, prior="none"), length=3)
    assert len(ds) == 3
    with pytest.raises(IndexError):
        ds[3]
    batch = collate([ds[0], ds[1]])
    assert batch["input_images"].shape == (2, 1, 3, 40, 40) and len(batch["input_cameras"]) == 2
    st = SynthHeadsStream(SamplerConfig(**SMALL, num_inputs=1, prior="none"), start=5, rank=1, world_size=2)
    first = next(iter(st))
    assert first["index"] == 6  # start + rank * workers + worker


def test_deferred_plans_realize_to_the_same_sample():
    """Training poses heads in CPU workers (plans) and renders them on the device: same sample as sample(i)."""
    kw = dict(split="test", input_size=48, target_size=40, num_targets=2, seed=5)
    direct = SynthHeadsDataset(length=4, **kw)
    deferred = SynthHeadsDataset(length=4, plan_device="cpu", **kw)
    assert deferred.deferred and not direct.deferred
    plan = deferred[1]
    assert "input_images" not in plan and len(plan["heads_in"]) == 4  # nothing rendered yet
    a, b = direct[1], deferred.realize(plan)
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b[k]), k
        elif isinstance(v, Cameras):
            assert torch.equal(v.K, b[k].K) and torch.equal(v.world_to_cam, b[k].world_to_cam), k
        else:
            assert v == b[k], k
    assert deferred.realize(a) is a  # finished samples pass through


def test_expression_region_marks_the_pixels_the_expression_changes():
    """The region is where the target differs from the same head at neutral (dilated 2 px): empty when the target
    is the neutral head itself, a small part of the image for a drawn expression, and off by default."""
    from avat3r.data.sampler import REGION_THRESHOLD, SynthHeadsSampler

    s = SynthHeadsSampler(input_size=40, target_size=64, num_targets=3, num_inputs=2, backend="torch", expression_region=True)
    assert "target_expression_region" not in SynthHeadsSampler(input_size=40, target_size=64, num_targets=3,
                                                                num_inputs=2, backend="torch").sample(0)
    fracs = []
    for i in range(3):
        p = s.plan(i)
        out = s.realize(p)
        r = out["target_expression_region"]
        assert r.shape == (3, 1, 64, 64)
        fracs.append(float(r.mean()))
        # every pixel the expression changes by more than the threshold is inside the region
        from avat3r.render import render

        neutral = render(p["head_neutral"], out["target_cameras"], backend="torch").color.permute(0, 3, 1, 2)
        changed = (out["target_images"] - neutral).abs().amax(1, keepdim=True) > REGION_THRESHOLD
        assert bool((r[changed] == 1).all())
        assert float(((out["target_images"] - neutral).abs().amax(1, keepdim=True))[r == 0].max()) <= REGION_THRESHOLD
        p["head_target"] = p["head_neutral"]  # a neutral target: nothing changes
        assert float(s.realize(p)["target_expression_region"].sum()) == 0
    assert 0 < max(fracs) < 0.5, fracs


def test_with_views_keeps_the_first_views_and_carves_the_hull_again():
    """Batch.with_views(k) (view dropout): the first k views of every item, the visual hull carved from their masks
    alone (equal to the per-sample prior of a k-view capture), everything about the targets unchanged."""
    from avat3r.data.batch import collate as collate_batch
    from avat3r.priors.registry import render_maps

    torch.set_num_threads(1)
    s = SynthHeadsSampler(input_size=32, target_size=24, num_targets=2, num_inputs=3, backend="torch")
    b = collate_batch([s.sample(0), s.sample(1)])
    for k in (1, 2):
        c = b.with_views(k)
        assert c.images.shape[1] == c.positions.shape[1] == c.plucker.shape[1] == c.masks.shape[1] == k
        assert all(len(cam) == k for cam in c.input_cameras)
        assert torch.equal(c.images, b.images[:, :k]) and torch.equal(c.target_images, b.target_images)
        for i in range(2):
            pos, conf = render_maps("visual_hull", b.masks[i, :k, 0].clamp(0, 1), b.input_cameras[i][list(range(k))])
            assert torch.allclose(c.positions[i], pos.permute(0, 3, 1, 2), atol=1e-5)
            assert torch.allclose(c.confidence[i, :, 0], conf, atol=1e-6)
        assert not torch.allclose(c.positions, b.positions[:, :k], atol=1e-3)  # the 3-view hull is not the k-view one
    assert b.with_views(3) is not b and torch.equal(b.with_views(3).positions, b.positions)
    with pytest.raises(InputError, match="keep must be in 1..3"):
        b.with_views(0)
    with pytest.raises(InputError, match="cannot be recomputed"):
        b.with_views(1, prior="dust3r")
