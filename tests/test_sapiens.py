"""Sapiens feature extractor: parity with the original ViT, the official key lists, formats and bad input."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from avat3r.errors import CheckpointError, InputError
from avat3r.priors import sapiens as S
from avat3r.priors.sapiens import SapiensConfig, SapiensFeatures, SapiensViT, load_sapiens_state_dict

FIX = Path(__file__).parent / "fixtures" / "priors"
sys.path.insert(0, str(FIX))
from seeded import seeded_state_dict  # noqa: E402

TINY = SapiensConfig(embed_dim=32, depth=2, num_heads=2, pretrain_size=64)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def tiny_model():
    m = SapiensViT(TINY)
    m.load_state_dict(load_sapiens_state_dict(load_file(FIX / "sapiens_tiny_state.safetensors"), m))
    return m.eval()


def test_tiny_model_matches_original_with_pos_embed_interpolation():
    io = load_file(FIX / "sapiens_tiny_io.safetensors")
    m = tiny_model()
    with torch.no_grad():
        assert rel(m(io["x1"]), io["y1"]) < 1e-4          # 64x64: the checkpoint grid
        y2 = m(io["x2"])                                   # 96x80: bicubic-resized position embeddings
    assert y2.shape == (1, 32, 6, 5) and rel(y2, io["y2"]) < 1e-4


def test_real_width_layers_match_original():
    io = load_file(FIX / "sapiens_block_io.safetensors")
    for size, seed in (("0.3b", 12), ("2b", 13)):
        w, _, h = S.SAPIENS_ARCH[size]
        layer = S._Layer(w, h, 4.0).eval()
        layer.load_state_dict(seeded_state_dict({k: v.shape for k, v in layer.state_dict().items()}, seed=seed))
        with torch.no_grad():
            assert rel(layer(io[f"{size}_in"]), io[f"{size}_out"]) < 1e-4


@pytest.mark.parametrize("size", ["0.3b", "2b"])
def test_state_dict_matches_official_key_list(size):
    keys = json.loads((FIX / f"sapiens_{size}_keys.json").read_text())["keys"]
    with torch.device("meta"):
        m = SapiensViT(SapiensConfig.for_size(size))
    assert {k: list(v.shape) for k, v in m.state_dict().items()} == keys
    # a checkpoint with the backbone. prefix and MAE decoder keys converts onto exactly these keys
    sd = {"backbone." + k: torch.empty(s, device="meta") for k, s in keys.items()}
    sd["neck.mask_token"] = torch.empty(1, device="meta")
    assert set(load_sapiens_state_dict(sd, m)) == set(keys)


def test_feature_extractor_from_pth_and_normalisation(tmp_path):
    sd = load_file(FIX / "sapiens_tiny_state.safetensors")
    p = tmp_path / "sapiens_tiny.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": sd}, p)  # mmengine layout
    m = SapiensViT(TINY)
    from avat3r.priors.checkpoints import load_state_dict_file

    sd2, meta = load_state_dict_file(p, container_keys=("state_dict", "model"))
    m.load_state_dict(load_sapiens_state_dict(sd2, m))
    ext = SapiensFeatures("0.3b", model=m, device="cpu", resolution=(64, 64))
    img = np.random.default_rng(0).random((3, 48, 48, 3)).astype(np.float32)
    x = ext.preprocess(img)
    assert x.shape == (3, 3, 64, 64)
    # normalisation on 0..255 RGB: a constant image of the mean colour maps to zero
    mean_img = np.broadcast_to(np.array(S.MEAN, np.float32) / 255, (1, 64, 64, 3))
    assert ext.preprocess(mean_img).abs().max() < 1e-4
    f = ext(img)
    assert f.shape == (3, 32, 4, 4) and f.dtype == torch.float32 and ext.dim == 32


def test_wrong_size_checkpoint_is_refused():
    m = SapiensViT(SapiensConfig(embed_dim=48, depth=2, num_heads=2, pretrain_size=64))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_sapiens_state_dict(load_file(FIX / "sapiens_tiny_state.safetensors"), m)
    m3 = SapiensViT(SapiensConfig(embed_dim=32, depth=3, num_heads=2, pretrain_size=64))
    with pytest.raises(CheckpointError, match="missing"):
        load_sapiens_state_dict(load_file(FIX / "sapiens_tiny_state.safetensors"), m3)


def _traced_tiny(tmp_path):
    m = tiny_model()
    ts = torch.jit.trace(m, torch.zeros(1, 3, 64, 64))
    p = tmp_path / "sapiens_tiny_torchscript.pt2"
    ts.save(str(p))
    return p, m


def test_torchscript_of_wrong_model_is_refused_before_running(tmp_path):
    p, _ = _traced_tiny(tmp_path)
    with pytest.raises(CheckpointError, match="not Sapiens-0.3b"):
        SapiensFeatures.from_file(p, "0.3b", device="cpu")


def test_torchscript_right_model_and_output_check(tmp_path, monkeypatch):
    p, m = _traced_tiny(tmp_path)
    monkeypatch.setitem(S.SAPIENS_ARCH, "0.3b", (32, 2, 2))  # pretend the tiny file is the official size
    with pytest.raises(InputError, match="1024x1024"):
        SapiensFeatures.from_file(p, "0.3b", device="cpu", resolution=(64, 64))
    ext = SapiensFeatures.from_file(p, "0.3b", device="cpu")
    ext.resolution = (64, 64)  # the tiny file was traced at 64x64
    img = np.random.default_rng(1).random((2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(ext.preprocess(img))
    assert torch.allclose(ext(img), ref, atol=1e-5)
    with pytest.raises(CheckpointError, match="SHA-256"):
        SapiensFeatures.from_file(p, "0.3b", device="cpu", expected_sha256="0" * 64)


def test_bad_files(tmp_path, monkeypatch):
    bad = tmp_path / "sapiens_0.3b_epoch_1600.pth"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a zip"):
        SapiensFeatures.from_file(bad, "0.3b", device="cpu")
    ts = tmp_path / "x_torchscript.pt2"
    ts.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="TorchScript"):
        SapiensFeatures.from_file(ts, "0.3b", device="cpu")
    with pytest.raises(InputError, match="unknown Sapiens size"):
        SapiensFeatures("5b")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("AVAT3R_SAPIENS", raising=False)
    monkeypatch.chdir(tmp_path)
    if (Path(__file__).resolve().parents[1] / "weights" / "sapiens").exists():
        pytest.skip("Sapiens weights are present in this checkout")
    with pytest.raises(CheckpointError) as e:
        SapiensFeatures.from_pretrained("sapiens-2b")
    assert "sapiens_2b_epoch_660.pth" in str(e.value) and "weights/sapiens/" in str(e.value) and "AVAT3R_SAPIENS" in str(e.value)
