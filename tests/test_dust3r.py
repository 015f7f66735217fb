"""DUSt3R network: parity with the original implementation, the official key list, loading and bad input."""

import argparse
import json
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from avat3r.errors import CheckpointError
from avat3r.priors.checkpoints import load_pth_tensors
from avat3r.priors.dust3r import PRESETS, Dust3rNet, convert_state_dict, find_dust3r_weights, load_dust3r
from avat3r.priors.dust3r.model import DecoderBlock, EncoderBlock, RoPE2D
from avat3r.priors.dust3r.preprocess import prepare_images, target_size

FIX = Path(__file__).parent / "fixtures" / "priors"
sys.path.insert(0, str(FIX))
from seeded import seeded_state_dict  # noqa: E402


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def tiny():
    return load_dust3r(FIX / "dust3r_tiny_state.safetensors", config="tiny")


def test_tiny_model_matches_original(tiny):
    io = load_file(FIX / "dust3r_tiny_io.safetensors")
    with torch.no_grad():
        r1, r2 = tiny(io["img1"], io["img2"])
        p1, p2 = tiny(io["img1"].transpose(2, 3), io["img2"].transpose(2, 3))
    for ours, ref in [(r1["pts3d"], io["pts3d_1"]), (r1["conf"], io["conf_1"]), (r2["pts3d_in_other_view"], io["pts3d_2"]),
                      (r2["conf"], io["conf_2"]), (p1["pts3d"], io["p_pts3d_1"]), (p1["conf"], io["p_conf_1"]),
                      (p2["pts3d_in_other_view"], io["p_pts3d_2"]), (p2["conf"], io["p_conf_2"])]:
        assert ours.shape == ref.shape
        assert rel(ours, ref) < 1e-4


def test_real_width_blocks_match_original():
    io = load_file(FIX / "dust3r_block_io.safetensors")
    rope = RoPE2D(100.0)
    enc, dec = EncoderBlock(1024, 16, 4.0, rope).eval(), DecoderBlock(768, 12, 4.0, rope).eval()
    enc.load_state_dict(seeded_state_dict({k: v.shape for k, v in enc.state_dict().items()}, seed=2))
    dec.load_state_dict(seeded_state_dict({k: v.shape for k, v in dec.state_dict().items()}, seed=3))
    with torch.no_grad():
        assert rel(enc(io["enc_in"], io["pos"]), io["enc_out"]) < 1e-4
        assert rel(dec(io["dec_x"], io["dec_y"], io["pos"], io["pos"]), io["dec_out"]) < 1e-4


def test_state_dict_matches_official_key_list():
    keys = json.loads((FIX / "dust3r_vitl_512_dpt_keys.json").read_text())
    with torch.device("meta"):
        net = Dust3rNet(PRESETS["vitl_512_dpt"])
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == keys["safetensors_keys"]
    assert sum(v.numel() for v in net.state_dict().values()) == 571_171_208
    # the .pth layout (with the layer_rn aliases) converts onto exactly the same keys
    shared = {}
    sd = {}
    for k, s in keys["pth_keys"].items():
        canon = k.replace("layer_rn.0.", "layer1_rn.").replace("layer_rn.1.", "layer2_rn.").replace(
            "layer_rn.2.", "layer3_rn.").replace("layer_rn.3.", "layer4_rn.")
        sd[k] = shared.setdefault(canon, torch.empty(s, device="meta"))
    assert set(convert_state_dict(sd, net)) == set(ours)


def _pth_like_release(tmp_path, tiny, drop_dec2=False):
    """A torch.save file laid out as the release: {'args': Namespace, 'model': state dict with aliases}."""
    sd = dict(tiny.state_dict())
    for h in (1, 2):
        for k in range(4):
            sd[f"downstream_head{h}.dpt.scratch.layer_rn.{k}.weight"] = sd[f"downstream_head{h}.dpt.scratch.layer{k + 1}_rn.weight"]
    if drop_dec2:
        sd = {k: v for k, v in sd.items() if not k.startswith("dec_blocks2.")}
    path = tmp_path / "release.pth"
    torch.save({"args": argparse.Namespace(model="AsymmetricCroCo3DStereo(pos_embed='RoPE100', ...)"), "model": sd}, path)
    return path


def test_pth_release_layout_loads_with_restricted_unpickler(tmp_path, tiny):
    path = _pth_like_release(tmp_path, tiny)
    obj = load_pth_tensors(path)
    assert obj["args"].model.startswith("AsymmetricCroCo3DStereo")  # inert Namespace stand-in
    net = load_dust3r(path, config="tiny")
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        a, b = net(x, x.flip(-1)), tiny(x, x.flip(-1))
    assert torch.equal(a[0]["pts3d"], b[0]["pts3d"])
    # no second decoder in the file: copied from the first, as the original loader does
    net2 = load_dust3r(_pth_like_release(tmp_path, tiny, drop_dec2=True), config="tiny")
    assert torch.equal(net2.dec_blocks2[0].attn.qkv.weight, tiny.dec_blocks[0].attn.qkv.weight)


def test_infer_config_from_pth(tmp_path, tiny):
    net = load_dust3r(_pth_like_release(tmp_path, tiny))  # no config: sizes read off the tensors
    c = net.config
    assert (c.enc_embed_dim, c.enc_depth, c.dec_embed_dim, c.dec_depth, c.head_layer_dims) == (32, 2, 24, 4, (8, 8, 12, 16))


# ---- bad input ------------------------------------------------------------------------------------
def test_missing_unexpected_and_wrong_shape_keys(tmp_path, tiny):
    sd = load_file(FIX / "dust3r_tiny_state.safetensors")
    cases = {
        "missing": {k: v for k, v in sd.items() if k != "enc_norm.weight"},
        "unexpected": {**sd, "extra.weight": torch.zeros(1)},
        "wrong shapes": {**sd, "enc_norm.weight": torch.zeros(7)},
    }
    for word, bad in cases.items():
        p = tmp_path / f"{word.replace(' ', '_')}.safetensors"
        save_file(bad, p)
        with pytest.raises(CheckpointError, match=word):
            load_dust3r(p, config="tiny")
    with pytest.raises(CheckpointError, match="wrong shapes"):  # right file, wrong architecture
        load_dust3r(FIX / "dust3r_tiny_state.safetensors", config="vitl_512_dpt")


def test_truncated_safetensors(tmp_path):
    data = (FIX / "dust3r_tiny_state.safetensors").read_bytes()
    p = tmp_path / "model.safetensors"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_dust3r(p, config="tiny")


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_pth_needing_code_is_refused_and_nothing_runs(tmp_path, tiny):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"model": tiny.state_dict(), "x": _Evil(marker)}, p)
    with pytest.raises(CheckpointError, match="refusing"):
        load_dust3r(p, config="tiny")
    assert not marker.exists()
    legacy = tmp_path / "legacy.pth"  # a plain pickle (not a torch.save zip) is refused outright
    legacy.write_bytes(pickle.dumps({"model": {}}))
    with pytest.raises(CheckpointError, match="not a zip"):
        load_pth_tensors(legacy)
    broken = tmp_path / "broken.pth"  # storage record missing
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(broken, "w") as zout:
        for n in zin.namelist():
            if not n.endswith("/data/0"):
                zout.writestr(n, zin.read(n))
    with pytest.raises(CheckpointError):
        load_pth_tensors(broken)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("AVAT3R_DUST3R", raising=False)
    monkeypatch.chdir(tmp_path)
    if (Path(__file__).resolve().parents[1] / "weights" / "dust3r").exists():
        pytest.skip("DUSt3R weights are present in this checkout")
    with pytest.raises(CheckpointError) as e:
        find_dust3r_weights()
    msg = str(e.value)
    assert "weights/dust3r/model.safetensors" in msg and "AVAT3R_DUST3R" in msg and "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt" in msg
    monkeypatch.setenv("AVAT3R_DUST3R", str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="does not exist"):
        find_dust3r_weights()


# ---- image preparation ------------------------------------------------------------------------------
def test_prepare_images_sizes_and_intrinsics():
    from avat3r.cameras import Cameras, intrinsics_from_fov, look_at

    assert target_size(512, 512) == ((512, 512), (0, 0, 512, 512))
    assert target_size(512, 512, square_ok=False)[1] == (0, 64, 512, 384)  # the official loader's 4:3 crop
    assert target_size(600, 900) == ((341, 512), (0, 2, 512, 336))
    imgs = torch.rand(2, 600, 900, 3).numpy()
    K = intrinsics_from_fov(30, 900, 600)
    cams = Cameras(K.expand(2, 3, 3), look_at(torch.tensor([[0, 0, 1.0], [0.3, 0, 1.0]])), 900, 600)
    prep = prepare_images(imgs, cams)
    assert prep.images.shape == (2, 3, 336, 512) and prep.images.min() >= -1 and prep.images.max() <= 1
    s = 512 / 900
    assert torch.allclose(prep.cameras.K[0, 0, 0], K[0, 0] * s)
    assert torch.allclose(prep.cameras.K[0, 1, 2], K[1, 2] * (341 / 600) - 2)
    assert prep.cameras.width[0] == 512 and prep.cameras.height[0] == 336


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_model_matches_original_on_gpu(tiny):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    io = load_file(FIX / "dust3r_tiny_io.safetensors")
    net = tiny.to("cuda")
    try:
        with torch.no_grad():
            r1, r2 = net(io["img1"].cuda(), io["img2"].cuda())
        assert rel(r1["pts3d"].cpu(), io["pts3d_1"]) < 1e-4 and rel(r2["conf"].cpu(), io["conf_2"]) < 1e-4
    finally:
        tiny.to("cpu")


def test_prior_runs_the_network_end_to_end(tiny):
    import numpy as np

    from avat3r.cameras import orbit_cameras
    from avat3r.capture import Capture
    from avat3r.priors.dust3r import Dust3rPrior, Dust3rPriorConfig

    cams = orbit_cameras(3, radius=0.6, fov_deg=25, size=40, azimuth_range=(-45, 45))
    cap = Capture(np.random.default_rng(0).random((3, 40, 40, 3)).astype(np.float32), cams, ["a", "b", "c"])
    prior = Dust3rPrior(model=tiny, config=Dust3rPriorConfig(long_side=32, graph="half"), device="cpu")
    assert prior.name == "dust3r" and callable(prior)
    out = prior(cap)
    assert out.positions.shape == (3, 40, 40, 3) and out.confidence.shape == (3, 40, 40)
    assert torch.isfinite(out.positions).all() and ((out.confidence >= 0) & (out.confidence < 1)).all()
    assert prior.last_alignment.depth.shape == (3, 32, 32)


def test_hub_config_json(tmp_path):
    from avat3r.priors.dust3r import config_from_hub

    text = ('{"output_mode": "pts3d", "head_type": "dpt", "depth_mode": ["exp", -Infinity, Infinity], '
            '"conf_mode": ["exp", 1, Infinity], "freeze": "none", "landscape_only": false, "patch_embed_cls": '
            '"PatchEmbedDust3R", "img_size": [512, 512], "patch_size": 16, "enc_embed_dim": 1024, "enc_depth": 24, '
            '"enc_num_heads": 16, "dec_embed_dim": 768, "dec_depth": 12, "dec_num_heads": 12, "pos_embed": "RoPE100"}')
    assert config_from_hub(json.loads(text)) == PRESETS["vitl_512_dpt"]
    with pytest.raises(CheckpointError, match="DPT"):
        config_from_hub({"head_type": "linear"})
    # a config.json beside the weights is used (here: a wrong one -> clear mismatch error)
    (tmp_path / "model.safetensors").write_bytes((FIX / "dust3r_tiny_state.safetensors").read_bytes())
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="does not match"):
        load_dust3r(tmp_path / "model.safetensors")
