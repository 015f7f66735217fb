"""Robustness augmentations (avat3r.data.augment): every switch is off by default and never acts in evaluation,
and each one changes what it should (inputs only, except lighting which changes the scene)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avat3r.cameras import Cameras, look_at
from avat3r.data import augment as A
from avat3r.data.sampler import SamplerConfig, SynthHeadsSampler
from avat3r.errors import InputError
from avat3r.head_template import HEAD_BOX_CENTER

TINY = dict(input_size=32, target_size=24, num_targets=1, num_inputs=2, backend="torch", prior="none", seed=4)


def _sample(**aug) -> dict:
    torch.set_num_threads(1)
    return SynthHeadsSampler(**TINY, augment=dict(aug, prob=1.0)).sample(6)


@pytest.fixture(scope="module")
def plain():
    return _sample()


def test_all_off_by_default_and_never_in_evaluation():
    cfg = SamplerConfig()
    assert not cfg.augment.any and not A.AugmentConfig().any
    assert all(getattr(A.AugmentConfig.preset("real"), s) for s in A.SWITCHES)
    with pytest.raises(InputError):
        A.as_augment_config({"bogus": 1})
    torch.set_num_threads(1)
    ev = SynthHeadsSampler(**{**TINY, "split": "test"}, augment="real")
    assert not ev.augmenting  # hold-out samples are never augmented (docs/eval numbers stay reproducible)
    a, b = ev.sample(0), SynthHeadsSampler(**{**TINY, "split": "test"}).sample(0)
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b[k]), k
    assert SynthHeadsSampler(**TINY, augment="real").augmenting
    # the trainer's evaluation datasets take the same data options but stay clean
    from avat3r.train.config import TrainConfig
    from avat3r.train.trainer import build_dataset

    tc = TrainConfig(model_preset="tiny", input_size=32, data_options={"augment": "real"})
    assert build_dataset(tc, "train", length=2).sampler.augmenting
    assert not build_dataset(tc, "test", length=2).sampler.augmenting


def _cams_equal(a: Cameras, b: Cameras) -> bool:
    return torch.equal(a.K, b.K) and torch.equal(a.world_to_cam, b.world_to_cam)


def test_camera_perturbation_changes_input_cameras_only(plain):
    s = _sample(camera=True)
    assert not _cams_equal(s["input_cameras"], plain["input_cameras"])
    assert torch.equal(s["input_images"], plain["input_images"])        # the pixels are the true views
    assert _cams_equal(s["target_cameras"], plain["target_cameras"])
    assert torch.equal(s["target_images"], plain["target_images"])


def test_camera_errors_have_the_front_ends_size():
    h = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    w2c = look_at((h + torch.tensor([0.0, 0.0, 1.0]))[None], h)  # frontal, 1 m in front of the face
    cams = Cameras(torch.tensor([[[500.0, 0, 256], [0, 500, 256], [0, 0, 1]]]).repeat(40, 1, 1), w2c.repeat(40, 1, 1), 512, 512)
    cfg = A.AugmentConfig(camera=True, prob=1.0)
    degs, framing = [], []
    for i in range(40):
        prm = A.draw_params(cfg, 0, i, 1)
        p = A.perturb_cameras(cams[[i]], prm, cfg)
        R0, R1 = cams.world_to_cam[i, :3, :3], p.world_to_cam[0, :3, :3]
        degs.append(float(torch.rad2deg(torch.arccos(((R0.T @ R1).trace() - 1).clamp(-2, 2) / 2))))
        h = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)[None]
        framing.append(float((p.project(h)[0] - cams[[i]].project(h)[0]).norm()))
    assert 3.0 < float(np.median(degs)) < 9.0  # docs/FRONTEND.md: median 5.9 deg near frontal
    assert max(degs) <= cfg.rot_max_deg + 1e-3
    assert np.median(framing) < 60  # the head stays roughly where the crop put it (rotation about the head)


def test_mask_errors_erode_dilate_and_show_background():
    H = 64
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
    m = (((yy - 32) ** 2 + (xx - 32) ** 2) < 18 ** 2).float()[None, None].repeat(4, 1, 1, 1)
    img = m.repeat(1, 3, 1, 1) * 0.6
    cfg = A.AugmentConfig(mask=True, prob=1.0, mask_holes=0.0, mask_background=0.0)
    prm = A.draw_params(cfg, 0, 0, 4)
    prm["edge"] = np.array([-1.0, 1.0, -0.5, 0.0])
    gen = [torch.Generator().manual_seed(0)]
    x, mm = A.perturb_masks(img, m, [prm], cfg, gen)
    area = mm.sum((1, 2, 3))
    assert area[0] < m[0].sum() * 0.9 and area[1] > m[1].sum() * 1.1 and area[2] < m[2].sum()  # erosion / dilation
    eroded = (m[0, 0] > 0.5) & (mm[0, 0] == 0)
    assert eroded.any() and x[0][:, eroded].abs().max() == 0      # eroded parts turn black in the image
    grown = mm[1, 0] > m[1, 0] + 0.5
    assert x[1][:, grown].mean() > 0.1                           # dilated parts show the background
    cfg2 = A.AugmentConfig(mask=True, prob=1.0, mask_holes=1.0, mask_background=1.0)
    prm2 = A.draw_params(cfg2, 0, 3, 4)
    prm2["edge_on"][:] = False
    x2, m2 = A.perturb_masks(img, m, [prm2], cfg2, [torch.Generator().manual_seed(1)])
    assert ((m2 < 0.5) & (m > 0.5)).any() and ((m2 > 0.5) & (m < 0.5)).any()  # holes and background left in


def test_exposure_changes_brightness_of_inputs_only(plain):
    s = _sample(color=True, wb_std=0.0, exposure_ev=1.0)
    ratio = s["input_images"].mean((1, 2, 3)) / plain["input_images"].mean((1, 2, 3))
    ev = A.draw_params(A.AugmentConfig(color=True, exposure_ev=1.0), TINY["seed"], 6, 2)["ev"]
    assert torch.allclose(ratio, torch.as_tensor(2.0 ** ev, dtype=torch.float32), rtol=0.1)
    assert torch.equal(s["target_images"], plain["target_images"])
    assert torch.equal(s["input_masks"], plain["input_masks"])


def test_mask_switch_changes_masks_and_inputs_not_targets(plain):
    s = _sample(mask=True, mask_holes=1.0)
    assert not torch.equal(s["input_masks"], plain["input_masks"])
    assert torch.equal(s["target_images"], plain["target_images"]) and torch.equal(s["target_masks"], plain["target_masks"])


def test_lighting_changes_the_scene_not_its_shape(plain):
    s = _sample(lighting=True)
    assert not torch.equal(s["input_images"], plain["input_images"])
    assert not torch.equal(s["target_images"], plain["target_images"])   # one light for inputs and targets
    assert torch.equal(s["input_masks"], plain["input_masks"]) and torch.equal(s["target_masks"], plain["target_masks"])


def test_crops_change_input_framing_not_targets(plain):
    s = _sample(crop=True)
    assert not torch.equal(s["input_cameras"].K, plain["input_cameras"].K)
    assert s["input_images"].shape == plain["input_images"].shape
    assert torch.equal(s["target_images"], plain["target_images"])


def test_noise_blur_jpeg():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32).clamp(0, 1)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    b = A.gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.allclose(b[0], x[0], atol=1e-6)
    grad = lambda y: (y[..., 1:] - y[..., :-1]).abs().mean()  # noqa: E731
    assert grad(b[2]) < grad(b[1]) < grad(x[1])
    j = A.jpeg_compress(x, torch.tensor([95.0, 50.0, 10.0]))
    err = (j - x).pow(2).mean((1, 2, 3))
    assert 0 < err[0] < err[1] < err[2] and float(-10 * torch.log10(err[0])) > 25
    cfg = A.AugmentConfig(noise=True, prob=1.0, noise_std=0.05)
    prm = A.draw_params(cfg, 0, 0, 3)
    n = A.photometric(x, [prm], cfg, [torch.Generator().manual_seed(0)])
    assert 0.005 < float((n - x).std()) < 0.1


def test_widened_synthheads_add_shoulders_and_hair_only_when_asked():
    from avat3r.data.headgeom import HeadRig
    from avat3r.data.identity import sample_identity

    torch.set_num_threads(1)
    seed = next(s for s in range(50) if sample_identity(s, wide=True).torso and sample_identity(s).hair_style == "long")
    base, wide = sample_identity(seed), sample_identity(seed, wide=True)
    assert not base.torso and base.hair_texture == 0  # the original heads are untouched
    assert wide.skin == base.skin and wide.jaw_width == base.jaw_width and wide.hair_style == base.hair_style
    assert wide.hair_volume != base.hair_volume and wide.hair_texture > 0
    rw = HeadRig(wide)
    assert "torso" in [p.name for p in rw.parts]
    tor = next(p for p in rw.parts if p.name == "torso")
    assert float(tor.pos[..., 0].abs().max()) > 0.15  # shoulders, wider than any head
    assert not SynthHeadsSampler(**{**TINY, "split": "test"}, widen=True).widening  # never the hold-out
    assert SynthHeadsSampler(**TINY, widen=True).widening
