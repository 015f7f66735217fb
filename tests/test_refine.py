"""Test-time ray alignment (avat3r/model/refine.py): Gaussians land on their pixels' rays, the network's depth and
its expression motion are kept, and the pipeline applies it when asked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avat3r.cameras import Cameras, intrinsics_from_fov, look_at, pixel_rays, spherical_to_cartesian
from avat3r.errors import InputError
from avat3r.model.refine import ray_alignment


def _cams(V: int, size: int) -> Cameras:
    az = torch.linspace(-40, 40, V)
    eyes = spherical_to_cartesian(az, torch.zeros(V), torch.full((V,), 1.0))
    return Cameras(intrinsics_from_fov(20.0, size).expand(V, 3, 3), look_at(eyes), size, size)


def _project(cams: Cameras, p: torch.Tensor) -> torch.Tensor:
    """p [V, H, W, 3] -> pixel coordinates [V, H, W, 2]."""
    w2c = cams.world_to_cam
    x = torch.einsum("vij,vhwj->vhwi", w2c[:, :3, :3], p) + w2c[:, None, None, :3, 3]
    uv = torch.einsum("vij,vhwj->vhwi", cams.K, x)
    return uv[..., :2] / uv[..., 2:]


def _drifted(V=3, size=24, seed=0):
    cams = _cams(V, size)
    o, d = pixel_rays(cams, size, size)
    g = torch.Generator().manual_seed(seed)
    depth = 0.9 + 0.1 * torch.rand(V, size, size, 1, generator=g)
    on_ray = o + depth * d
    side = 0.02 * torch.randn(V, size, size, 3, generator=g)
    side = side - (side * d).sum(-1, keepdim=True) * d  # perpendicular: moves the point off its ray
    mask = torch.rand(V, size, size, generator=g) > 0.2
    return cams, on_ray, side, mask, o, d


def test_rays_puts_every_kept_gaussian_on_its_pixel_and_keeps_depth():
    cams, on_ray, side, mask, o, d = _drifted()
    means = on_ray + side
    before = (_project(cams, means) - _project(cams, on_ray)).norm(dim=-1)[mask]
    delta = ray_alignment(means, mask, cams, "rays")
    after = _project(cams, means + delta)
    err = (after - _project(cams, on_ray)).norm(dim=-1)[mask]
    assert before.median() > 0.5 and err.max() < 1e-3  # pixels
    depth_before = ((means - o) * d).sum(-1)[mask]
    depth_after = ((means + delta - o) * d).sum(-1)[mask]
    assert torch.allclose(depth_before, depth_after, atol=1e-6)
    assert delta[~mask].abs().max() == 0  # dropped pixels untouched


def test_rays_hf_removes_jitter_but_keeps_a_smooth_displacement():
    cams, on_ray, side, mask, o, d = _drifted(size=48)
    mask[:] = True
    shift = torch.tensor([0.05, 0.0, 0.0])
    smooth = shift - (shift * d).sum(-1, keepdim=True) * d  # a uniform sideways move (e.g. a wrong camera)
    delta = ray_alignment(on_ray + smooth + side, mask, cams, "rays_hf", sigma_px=4.0)
    inner = (slice(None), slice(12, 36), slice(12, 36))  # away from the zero-padded border
    left = (side + delta)[inner]  # what remains of the jitter
    assert left.norm(dim=-1).mean() < 0.35 * side[inner].norm(dim=-1).mean()
    # so the smooth move stays (means + delta - on_ray = smooth + left), where "rays" removes it with the jitter
    full = ray_alignment(on_ray + smooth + side, mask, cams, "rays")
    assert (full + smooth + side).norm(dim=-1).max() < 1e-5
    assert left.norm(dim=-1).mean() < 0.25 * smooth[inner].norm(dim=-1).mean()


def test_off_is_zero_and_unknown_mode_is_refused():
    cams, on_ray, side, mask, *_ = _drifted()
    assert ray_alignment(on_ray + side, mask, cams, "off").abs().max() == 0
    with pytest.raises(InputError, match="refine must be one of"):
        ray_alignment(on_ray, mask, cams, "snap")


def test_pipeline_refine_aligns_the_avatar_and_keeps_its_animation(ckpt, capture_dir):
    from dataclasses import replace

    from avat3r.pipeline import Avatar, Pipeline, PipelineConfig, load_pipeline

    base = load_pipeline(ckpt, config=PipelineConfig(device="cpu"))
    aligned = Pipeline(base.model, source=base.source, config=replace(base.pipeline_config, refine="rays"))
    a0 = base.reconstruct(capture_dir)
    a1 = Avatar(aligned, a0.capture, a0.state)  # the same network pass, served with the alignment
    dim = base.expression_space.dim
    z = np.full(dim, 0.8, np.float32)
    g0n, g0z = a0.animate(None), a0.animate(z)
    g1n, g1z = a1.animate(None), a1.animate(z)
    # the motion between two expressions is the network's, unchanged
    assert torch.allclose(g1z.means - g1n.means, g0z.means - g0n.means, atol=1e-5)
    # neutral Gaussians of the first view sit on its pixels' rays
    with torch.inference_mode():
        maps = aligned.model.animate(a1.state, torch.zeros(1, dim))
    V, H, W = maps.mask.shape[1:]
    keep = maps.mask[0, 0]
    n0 = int(keep.sum())
    o, d = pixel_rays(a1.capture.cameras, H, W)
    p = g1n.means[:n0]
    off_ray = torch.linalg.cross(p - o[0][keep], d[0][keep], dim=-1).norm(dim=-1)
    raw = torch.linalg.cross(g0n.means[:n0] - o[0][keep], d[0][keep], dim=-1).norm(dim=-1)
    assert off_ray.max() < 1e-4 < raw.max()
    assert math.isfinite(float(g1n.means.sum()))
    with pytest.raises(InputError, match="refine"):
        PipelineConfig(refine="yes")


def test_cli_choices():
    from avat3r.cli import build_parser
    from avat3r.model.refine import REFINE_MODES
    from avat3r.pipeline import PipelineConfig

    assert PipelineConfig().refine == "off"  # measured: docs/eval/refine.md
    create = build_parser().parse_args(["reconstruct", "x.jpg", "--refine", "rays_hf"])
    assert create.refine == "rays_hf"
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["reconstruct"]._actions if a.dest == "refine")
    assert tuple(action.choices) == REFINE_MODES


def test_eval_data_can_be_made_consistent_for_the_refine_benchmark(ckpt):
    """bench/refine_compare.py --consistent: the evaluation data keeps its inconsistent inputs unless asked, and when
    asked every input view of a sample shows one expression (the setting `--refine rays` is meant for)."""
    from avat3r.eval.__main__ import _dataset_for
    from avat3r.eval.evaluation import EvalConfig
    from avat3r.model import Avat3rModel

    model = Avat3rModel.from_pretrained(str(ckpt))
    cfg = EvalConfig(num_samples=1, device="cpu", faces=False, video_frames=0)
    small = {"input_size": 32, "supervision_size": 24, "num_supervision": 1}
    spread = {}
    for consistent in (False, True):
        ds, tc = _dataset_for(None, model, cfg, {**small, "consistent_inputs": consistent})
        z = torch.as_tensor(np.asarray(ds[0]["input_expressions"]))
        assert tc.consistent_inputs is consistent and z.shape[0] == 4
        spread[consistent] = float((z - z[:1]).abs().max())
    assert spread[True] == 0.0 < spread[False]
