"""The Avat3r network (avat3r.model): shapes, gradients, skips, masking, cached animation, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from avat3r.errors import CheckpointError, InputError
from avat3r.gaussians import Gaussians
from avat3r.model import Avat3rModel, AvatarState, GaussianMaps, ModelConfig
from avat3r.model.hub import load_config

C_EXP = ModelConfig.preset("tiny").expression_dim  # 20: the SynthHeads expression space


def make_inputs(B=1, V=2, H=32, W=32, C=C_EXP, feature_dim=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = dict(
        images=torch.rand(B, V, 3, H, W, generator=g),
        positions=(torch.rand(B, V, 3, H, W, generator=g) - 0.5) * 0.3,
        confidence=torch.rand(B, V, 1, H, W, generator=g),
        plucker=torch.randn(B, V, 6, H, W, generator=g),
    )
    if feature_dim:
        x["features"] = torch.randn(B, V, feature_dim, 5, 7, generator=g)
    z = torch.randn(B, C, generator=g)
    return x, z


def tiny(**overrides) -> Avat3rModel:
    torch.manual_seed(0)
    return Avat3rModel(ModelConfig.preset("tiny", **overrides)).eval()


# ---- config --------------------------------------------------------------------------------------------------
def test_presets_and_json_round_trip():
    for name in ("paper", "small", "tiny"):
        cfg = ModelConfig.preset(name)
        assert cfg.name == name
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    paper = ModelConfig.preset("paper")
    assert (paper.patch_size, paper.dim, paper.num_self_layers, paper.num_cross_layers) == (8, 768, 8, 8)
    assert (paper.expression_dim, paper.image_size, paper.upsampler_steps, paper.feature_dim) == (256, 512, 1, 1920)
    assert paper.prior == "dust3r" and ModelConfig.preset("small").prior == "visual_hull"
    cfg = ModelConfig.preset("tiny")
    assert cfg.names == [f"z{i}" for i in range(C_EXP)] and cfg.presets["neutral"] == [0.0] * C_EXP
    with pytest.raises(CheckpointError, match="unknown keys.*bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(CheckpointError, match="expression_names"):
        ModelConfig.preset("tiny", expression_names=["a", "b"])
    with pytest.raises(CheckpointError, match="unknown model preset"):
        ModelConfig.preset("huge")


def test_small_preset_fits_the_shipping_budget():
    m = Avat3rModel(ModelConfig.preset("small"))
    assert m.num_parameters() * 2 <= 40e6  # <= 40 MB in fp16 (issue 3)
    assert ModelConfig.preset("paper", features=None, feature_dim=0).features is None  # paper size without Sapiens


# ---- shapes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["cached", "interleaved"])
@pytest.mark.parametrize("V,H,W", [(1, 32, 32), (2, 48, 32), (3, 40, 56), (4, 32, 64)])
def test_shapes_any_views_and_non_square(order, V, H, W):
    m = tiny(layer_order=order)
    x, z = make_inputs(B=2, V=V, H=H, W=W)
    with torch.no_grad():
        maps = m(**x, expression=z)
    assert isinstance(maps, GaussianMaps) and maps.shape == (2, V, H, W)
    assert maps.means.shape == maps.scales.shape == maps.colors.shape == (2, V, H, W, 3)
    assert maps.quats.shape == (2, V, H, W, 4) and maps.opacities.shape == (2, V, H, W)
    gs = m.to_gaussians(maps)
    assert len(gs) == 2 and all(isinstance(g, Gaussians) for g in gs)
    for g in gs:
        g.validate()
        assert torch.allclose(g.quats.norm(dim=-1), torch.ones(len(g)), atol=1e-5)
        assert (g.scales >= m.config.scale_min * 0.999).all() and (g.scales <= m.config.scale_max * 1.001).all()
        assert ((g.colors > 0) & (g.colors < 1)).all()


def test_bad_inputs_give_clear_errors():
    m = tiny()
    x, z = make_inputs(H=36, W=32)
    with pytest.raises(InputError, match="multiple of the patch size 8"):
        m(**x, expression=z)
    x, z = make_inputs()
    with pytest.raises(InputError, match=rf"expression must have shape \[B, {C_EXP}\]"):
        m(**x, expression=torch.zeros(1, 5))
    bad = dict(x, positions=x["positions"][:, :, :2])
    with pytest.raises(InputError, match="positions must have shape"):
        m(**bad, expression=z)
    with pytest.raises(InputError, match="no feature path"):
        m(**x, expression=z, features=torch.zeros(1, 2, 4, 3, 3))


def test_views_are_an_unordered_set():
    """No view-index embedding: permuting the input views permutes the output maps."""
    m = tiny()
    x, z = make_inputs(V=3)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = m(**x, expression=z)
        b = m(**{k: v[:, perm] for k, v in x.items()}, expression=z)
    assert torch.allclose(a.means[:, perm], b.means, atol=1e-5)
    assert torch.allclose(a.colors[:, perm], b.colors, atol=1e-5)


def test_windowed_attention_ignores_padding():
    """Token grids that are not window multiples: each window equals attention over its real tokens alone."""
    from avat3r.model.upsampler import WindowBlocks

    torch.manual_seed(0)
    wb = WindowBlocks(16, 2, 2.0, window=4, depth=1).eval()
    x = torch.randn(2, 10, 14, 16)
    with torch.no_grad():
        out = wb(x)
        for i in range(0, 10, 4):
            for j in range(0, 14, 4):
                t = x[:, i : i + 4, j : j + 4]
                n, h, w, c = t.shape
                ref = wb.blocks[0](t.reshape(n, h * w, c)).view(n, h, w, c)
                assert torch.allclose(out[:, i : i + 4, j : j + 4], ref, atol=1e-5)


# ---- gradients -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order,cross_mlp", [("cached", True), ("cached", False), ("interleaved", True)])
def test_gradients_reach_every_parameter(order, cross_mlp):
    m = tiny(layer_order=order, cross_mlp=cross_mlp, features="test", feature_dim=12).train()
    x, z = make_inputs(V=2, feature_dim=12)
    maps = m(**x, expression=z)
    loss = sum(t.float().square().mean() for t in (maps.means, maps.quats, maps.scales * 100, maps.opacities, maps.colors))
    loss.backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without gradient: {dead}"


def test_gradient_checkpointing_gives_the_same_gradients():
    x, z = make_inputs(V=2)
    grads = []
    for ckpt in (False, True):
        m = tiny(head_init_std=0.1).train()
        m.gradient_checkpointing = ckpt
        m(**x, expression=z).means.square().sum().backward()
        grads.append(m.patch_embed.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


# ---- masking (eq. 13) ----------------------------------------------------------------------------------------
def test_mask_keeps_exactly_pixels_above_threshold():
    m = tiny()
    x, z = make_inputs(B=2, V=2)
    conf = x["confidence"]
    conf[0, 0, 0, :4, :4] = 0.5  # exactly tau: not kept (strict >)
    with torch.no_grad():
        maps = m(**x, expression=z)
    keep = conf[:, :, 0] > 0.5
    assert torch.equal(maps.mask, keep)
    gs = m.to_gaussians(maps)
    for b in range(2):
        assert len(gs[b]) == int(keep[b].sum())
        assert torch.equal(gs[b].means, maps.means[b][keep[b]])
        assert torch.equal(gs[b].colors, maps.colors[b][keep[b]])
    # confidence given as [B, V, H, W] works the same
    with torch.no_grad():
        maps2 = m(**dict(x, confidence=conf[:, :, 0]), expression=z)
    assert torch.equal(maps2.mask, keep)


# ---- skips (eqs. 11-12) --------------------------------------------------------------------------------------
def _zero_head(m: Avat3rModel) -> Avat3rModel:
    with torch.no_grad():
        m.upsampler.out.weight.zero_()
        m.upsampler.out.bias.zero_()
    return m


def test_skips_with_zero_network_output():
    x, z = make_inputs(V=2)
    pos = x["positions"].permute(0, 1, 3, 4, 2)
    img = x["images"].permute(0, 1, 3, 4, 2)
    with torch.no_grad():
        on = _zero_head(tiny(pos_skip=True, rgb_skip=True))(**x, expression=z)
        off = _zero_head(tiny(pos_skip=False, rgb_skip=False))(**x, expression=z)
    assert torch.equal(on.means, pos)  # eq. 11: M^pos = 0 + I^pos
    assert torch.allclose(on.colors, img, atol=2e-4)  # eq. 12 (logit space): M^rgb = I
    assert torch.equal(off.means, torch.zeros_like(pos))
    assert torch.allclose(off.colors, torch.full_like(img, 0.5))
    assert torch.allclose(on.quats, torch.tensor([1.0, 0, 0, 0]).expand_as(on.quats))
    assert torch.allclose(on.opacities, torch.full_like(on.opacities, 0.5))


def test_each_skip_changes_only_its_attribute():
    x, z = make_inputs(V=2)
    pos = x["positions"].permute(0, 1, 3, 4, 2)
    with torch.no_grad():
        base = tiny(head_init_std=0.5)(**x, expression=z)
        no_pos = tiny(head_init_std=0.5, pos_skip=False)(**x, expression=z)
        no_rgb = tiny(head_init_std=0.5, rgb_skip=False)(**x, expression=z)
    cfg = ModelConfig.preset("tiny")
    # pos skip off: same raw offsets, rescaled to the absolute range and not added to I^pos
    assert torch.allclose((base.means - pos) / cfg.max_offset, no_pos.means / cfg.position_range, atol=1e-5)
    assert torch.equal(base.colors, no_pos.colors) and torch.equal(base.scales, no_pos.scales)
    assert not torch.allclose(base.colors, no_rgb.colors)
    assert torch.equal(base.means, no_rgb.means) and torch.equal(base.opacities, no_rgb.opacities)


# ---- cached animation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["cached", "interleaved"])
def test_animate_equals_forward(order):
    m = tiny(layer_order=order, head_init_std=0.1)
    x, _ = make_inputs(V=3)
    zs = torch.randn(3, C_EXP, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        state = m.encode(**x)
        assert isinstance(state, AvatarState) and state.layer_order == order
        outs = []
        for i in range(3):
            a = m.animate(state, zs[i : i + 1])
            f = m(**x, expression=zs[i : i + 1])
            for name in ("means", "quats", "scales", "opacities", "colors", "mask"):
                assert torch.equal(getattr(a, name), getattr(f, name)), name
            outs.append(a)
        batch = m.animate(state, zs)  # one avatar, T expressions -> T frames
    assert batch.shape[0] == 3
    assert torch.allclose(batch.means[1], outs[1].means[0], atol=1e-5)
    assert not torch.allclose(outs[0].means, outs[1].means)  # the expression matters


def test_cached_state_is_expression_independent():
    m = tiny(layer_order="cached")
    x, _ = make_inputs(V=2)
    with torch.no_grad():
        t1 = m.encode(**x).tokens
        t2 = m.encode(**x).tokens
    assert torch.equal(t1, t2) and t1.shape == (1, 2 * 4 * 4, m.config.dim)


# ---- feature path (eqs. 5-6) ---------------------------------------------------------------------------------
def test_feature_path_on_and_off():
    m = tiny(features="test", feature_dim=24, head_init_std=0.1)
    assert hasattr(m, "feature_fuse") and not hasattr(tiny(), "feature_fuse")
    x, z = make_inputs(V=2, feature_dim=24)
    with torch.no_grad():
        a = m(**x, expression=z)
        b = m(**dict(x, features=x["features"] * 3 + 1), expression=z)
    assert not torch.allclose(a.means, b.means)
    del x["features"]
    with pytest.raises(InputError, match="trained with test features"):
        m(**x, expression=z)


# ---- checkpoints ---------------------------------------------------------------------------------------------
def test_save_load_bit_identical(tmp_path):
    m = tiny(head_init_std=0.1, expression_names=[f"e{i}" for i in range(C_EXP)], expression_presets={"smile": [0.5] * C_EXP})
    x, z = make_inputs(V=2)
    m.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    m2 = Avat3rModel.from_pretrained(tmp_path / "ckpt")
    assert m2.config == m.config and m2.expression_space.presets["smile"] == [0.5] * C_EXP
    with torch.no_grad():
        a, b = m(**x, expression=z), m2(**x, expression=z)
    for name in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name

    # fp16 shipping copy: half the bytes, loads back as float32, outputs equal up to fp16 weight rounding
    m.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size32 = (tmp_path / "ckpt" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    m3 = Avat3rModel.from_pretrained(str(tmp_path / "fp16"))
    assert next(m3.parameters()).dtype == torch.float32
    with torch.no_grad():
        c = m3(**x, expression=z)
    assert torch.allclose(a.means, c.means, atol=1e-3) and torch.allclose(a.colors, c.colors, atol=1e-2)


def test_checkpoint_config_mismatch_is_clear(tmp_path):
    m = tiny()
    d = tmp_path / "ckpt"
    m.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "dim": 48, "heads": 2}))
    with pytest.raises(CheckpointError, match=r"shape mismatch.*patch_embed\.weight"):
        Avat3rModel.from_pretrained(d)
    (d / "config.json").write_text(json.dumps({**cfg, "num_self_layers": 3}))
    with pytest.raises(CheckpointError, match=r"missing: self_blocks\.2\."):
        Avat3rModel.from_pretrained(d)
    (d / "config.json").write_text(json.dumps({**cfg, "num_self_layers": 1}))
    with pytest.raises(CheckpointError, match=r"unexpected: self_blocks\.1\."):
        Avat3rModel.from_pretrained(d)
    (d / "config.json").write_text(json.dumps({**cfg, "wings": 2}))
    with pytest.raises(CheckpointError, match="unknown keys.*wings"):
        load_config(d / "config.json")
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks model.safetensors"):
        Avat3rModel.from_pretrained(d)


def test_offline_missing_repo_says_where_to_put_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"(?s)not in the Hub cache.*offline mode.*config\.json and model\.safetensors"):
        Avat3rModel.from_pretrained("nobody-here/avat3r-does-not-exist")
    with pytest.raises(CheckpointError, match="does not exist"):
        Avat3rModel.from_pretrained(str(tmp_path / "no" / "such" / "dir"))


def test_offline_uses_cached_hub_copy(monkeypatch, tmp_path):
    """A repo id whose files sit in the Hub cache loads with HF_HUB_OFFLINE=1 (no network touched)."""
    from huggingface_hub import constants

    m = tiny(head_init_std=0.1)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--avat3r-tiny"
    m.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m2 = Avat3rModel.from_pretrained("someone/avat3r-tiny")
    x, z = make_inputs()
    with torch.no_grad():
        assert torch.equal(m(**x, expression=z).means, m2(**x, expression=z).means)


# ---- GPU ------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("order", ["cached", "interleaved"])
def test_gpu_bf16_matches_cpu(order):
    m = tiny(layer_order=order, head_init_std=0.1)
    x, z = make_inputs(V=3)
    with torch.no_grad():
        ref = m(**x, expression=z)
        mg = m.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = mg(**{k: v.cuda() for k, v in x.items()}, expression=z.cuda())
    assert out.means.dtype == torch.float32
    assert torch.allclose(out.means.cpu(), ref.means, atol=5e-3)
    assert torch.allclose(out.colors.cpu(), ref.colors, atol=5e-2)
