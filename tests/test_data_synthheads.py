"""SynthHeads generator: determinism, splits, anchors, and that each expression moves the right region."""

import numpy as np
import pytest
import torch

from avat3r.data.expressions import (
    EXPRESSION_DIM,
    EXPRESSION_NAMES,
    EXPRESSION_PRESETS,
    clip_expression,
    expression,
    sample_expression,
)
from avat3r.data.identity import SPLITS, sample_identity, split_seeds
from avat3r.data.synthheads import expression_space, get_rig
from avat3r.errors import InputError
from avat3r.head_template import ANCHORS

SEED = 2_000_003  # a test identity


@pytest.fixture(scope="module")
def rig():
    torch.set_num_threads(1)
    return get_rig(SEED)


def _near(g, point, radius, S):
    p = torch.as_tensor(point, dtype=torch.float32) * S  # the identity's per-axis size
    return (g.means - p).norm(dim=-1) < radius


def test_identity_deterministic_and_varied():
    assert sample_identity(5) == sample_identity(5)
    ids = [sample_identity(s) for s in range(40)]
    assert len({i.hair_style for i in ids}) >= 5
    assert len({i.skin for i in ids}) == 40
    assert all(0.9 <= i.scale <= 1.1 for i in ids)


def test_splits_disjoint_and_sized():
    assert set(SPLITS) == {"train", "validation", "test"}
    assert len(split_seeds("test")) == 12
    tr, va, te = (split_seeds(s) for s in ("train", "validation", "test"))
    for a, b in ((tr, va), (tr, te), (va, te)):
        assert max(a.start, b.start) >= min(a.stop, b.stop)  # ranges do not overlap
    with pytest.raises(InputError):
        split_seeds("bogus")


def test_build_deterministic_valid_and_sized(rig):
    z = np.stack([EXPRESSION_PRESETS["neutral"], EXPRESSION_PRESETS["smile"]])
    g1 = rig.pose(z)
    g2 = get_rig(sample_identity(SEED)).pose(z)
    assert torch.equal(g1[0].means, g2[0].means) and torch.equal(g1[1].colors, g2[1].colors)
    for g in g1:
        g.validate()
        assert 20_000 <= len(g) <= 70_000
        assert (g.colors >= 0).all() and (g.colors <= 1).all()
    assert len(g1[0]) == len(g1[1])  # same Gaussians, only their state changes


def test_face_sits_on_the_template_anchors(rig):
    g = rig.pose(np.zeros(EXPRESSION_DIM))[0]
    s = rig.identity.scale
    for name in ("nose_tip", "chin", "eye_left", "eye_right", "mouth_center"):
        d = (g.means - torch.as_tensor(ANCHORS[name], dtype=torch.float32)).norm(dim=-1).min()
        assert d < 0.012 + 0.12 * abs(s - 1), (name, float(d))
    # nose is the front-most facial point near the midline at nose height
    front = g.means[(g.means[:, 1].abs() < 0.08) & (g.means[:, 0].abs() < 0.05)]
    assert front[:, 2].max() < 0.14


def test_jaw_open_moves_chin_down_and_reveals_mouth(rig):
    z0, z1 = np.zeros(EXPRESSION_DIM, np.float32), expression(jaw_open=1.0)
    g0, g1 = rig.pose(np.stack([z0, z1]))
    s, S = rig.identity.scale, rig.S
    chin = _near(g0, ANCHORS["chin"], 0.012 * s, S)
    dy = (g1.means[chin, 1] - g0.means[chin, 1]).mean()
    assert dy < -0.015
    forehead = g0.means[:, 1] > 0.05
    assert (g1.means[forehead] - g0.means[forehead]).norm(dim=-1).max() < 1e-5
    # a gap opens between the lips: no skin Gaussian stays at the closed-mouth seam in front
    m = ANCHORS["mouth_center"] * S.numpy()
    seam1 = ((g1.means[:, 0].abs() < 0.008) & ((g1.means[:, 1] - m[1]).abs() < 0.003) & (g1.means[:, 2] > m[2] - 0.004)
             & (g1.opacities > 0.5))
    dark = g1.colors[seam1].mean(-1) < 0.35 if seam1.any() else torch.ones(1, dtype=torch.bool)
    assert dark.float().mean() > 0.5


def test_blink_closes_the_left_eyelid_only(rig):
    g0, g1 = rig.pose(np.stack([np.zeros(EXPRESSION_DIM, np.float32), expression(blink_left=1.0)]))

    def lid_cover(g, eye):  # opacity of the front-most layer over the eye centre (the lid when closed)
        c = torch.as_tensor(ANCHORS[eye], dtype=torch.float32) * rig.S
        near = (g.means[:, :2] - c[:2]).norm(dim=-1) < 0.003
        z = g.means[near, 2]
        return g.opacities[near][z > z.max() - 0.0008].max()

    assert lid_cover(g0, "eye_left") < 0.1 and lid_cover(g0, "eye_right") < 0.1
    assert lid_cover(g1, "eye_left") > 0.9
    assert lid_cover(g1, "eye_right") < 0.1


@pytest.mark.parametrize("name,region,axis,sign", [
    ("smile", "mouth_left", 1, +1),
    ("frown", "mouth_left", 1, -1),
    ("pucker", "mouth_center", 2, +1),
    ("brow_raise", (0.03, 0.022, 0.085), 1, +1),
    ("cheek_puff", (0.045, -0.055, 0.07), 0, +1),
])
def test_expressions_move_their_region(rig, name, region, axis, sign):
    g0, g1 = rig.pose(np.stack([np.zeros(EXPRESSION_DIM, np.float32), expression(**{name: 1.0})]))
    s = rig.identity.scale
    c = ANCHORS[region] if isinstance(region, str) else np.array(region)
    near = _near(g0, c, 0.02 * s, rig.S)
    d = (g1.means[near] - g0.means[near])[:, axis].mean()
    assert sign * d > 0.001, (name, float(d))
    back = g0.means[:, 2] < -0.05
    assert (g1.means[back] - g0.means[back]).norm(dim=-1).max() < 1e-4


def test_tongue_out_and_gaze(rig):
    g0, g1, g2 = rig.pose(np.stack([np.zeros(EXPRESSION_DIM, np.float32), expression(tongue_out=1.0), expression(gaze_x=1.0)]))
    m = torch.as_tensor(ANCHORS["mouth_center"], dtype=torch.float32) * rig.S
    mouth = ((g0.means[:, :2] - m[:2]).abs() < torch.tensor([0.012, 0.02])).all(-1)
    assert g1.means[mouth, 2].max() > g0.means[mouth, 2].max() + 0.008  # the tongue sticks out of the mouth
    assert not torch.allclose(g0.colors, g2.colors)  # irises moved
    assert torch.equal(g0.means, g2.means)


def test_expression_space_and_sampler():
    assert len(EXPRESSION_NAMES) == EXPRESSION_DIM >= 12
    for k, v in EXPRESSION_PRESETS.items():
        assert v.shape == (EXPRESSION_DIM,) and np.array_equal(clip_expression(v), v), k
    rng = np.random.default_rng(0)
    zs = np.stack([sample_expression(rng) for _ in range(300)])
    assert np.array_equal(clip_expression(zs), zs)
    assert (np.abs(zs).sum(1) > 0).mean() > 0.9
    assert (zs[:, EXPRESSION_NAMES.index("jaw_open")] > 0.5).mean() > 0.1  # extremes happen
    sp = expression_space()
    assert sp["names"] == EXPRESSION_NAMES and "smile" in sp["presets"]
    with pytest.raises(KeyError):
        expression(bogus=1)


def test_wrong_expression_size_raises(rig):
    with pytest.raises(InputError):
        rig.pose(np.zeros(5))
