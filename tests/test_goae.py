"""GOAE (the encoder that inverts photos into EG3D): parity of the Swin-V2 w+ encoder, the AFA module and the
occlusion-aware mix with jiangyzy/GOAE's original code on random weights; its released file format (torch.save
state dicts) read with torch's restricted loader; refusals; the lift route with GOAE installed.

tests/fixtures/goae/goae_parity.safetensors (0.3 MB) holds the ORIGINAL code's outputs and the state dicts' names
and shapes; ``make_fixture.goae_weights`` recomputes the weights (see make_fixture.py for how it was written).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_eg3d import _fixture as eg3d_fixture  # noqa: E402 - tests/ is on sys.path (pytest's prepend mode)
from test_eg3d import _fixture_state as eg3d_state  # noqa: E402
from test_eg3d import eg3d_classes, eg3d_snapshot  # noqa: E402, F401 - eg3d_classes is a fixture used below

from avat3r.errors import CheckpointError
from avat3r.lift.official.goae import (
    GOAE,
    GOAE_ENV,
    GOAEConfig,
    goae_missing,
    load_goae,
    synthesis_from,
    synthesis_until,
    visible_mask,
)

FIXDIR = Path(__file__).parent / "fixtures" / "goae"
_spec = importlib.util.spec_from_file_location("goae_make_fixture", FIXDIR / "make_fixture.py")
make_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixture)


def _fixture():
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(FIXDIR / "goae_parity.safetensors"), "pt") as f:
        meta = f.metadata()
    return load_file(str(FIXDIR / "goae_parity.safetensors")), meta


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-12)).item()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """GOAE's two files as released (torch.save state dicts, the original's names), from the fixture's weights;
    the Swin buffers (relative coordinates, shift masks) are ours, checked against the original's sums first."""
    fx, meta = _fixture()
    cfg = GOAEConfig(depths=json.loads(meta["depths"]), heads=json.loads(meta["heads"]), window=int(meta["window"]),
                     pretrained_windows=json.loads(meta["pretrained_windows"]))
    net = GOAE(cfg)
    ours = net.encoder.state_dict()
    for k, (s, sq) in json.loads(meta["encoder_buffer_sums"]).items():
        assert abs(float(ours[k].double().sum()) - s) <= 1e-6 * max(1.0, abs(s)), k
        assert abs(float(ours[k].double().square().sum()) - sq) <= 1e-6 * max(1.0, sq), k
    shapes = json.loads(meta["encoder_shapes"])
    assert sorted(shapes) == sorted(ours)  # key for key
    w = make_fixture.goae_weights(shapes, 0)
    enc_sd = {k: w.get(k, ours[k]) for k in shapes}
    afa_ours = net.afa.state_dict()
    w = make_fixture.goae_weights(json.loads(meta["afa_shapes"]), 100_000)
    afa_sd = {k: w.get(k, afa_ours[k]) for k in json.loads(meta["afa_shapes"])}
    d = tmp_path_factory.mktemp("goae")
    torch.save({"module." + k: v for k, v in enc_sd.items()}, d / "encoder_FFHQ.pt")  # DataParallel names too
    torch.save(afa_sd, d / "afa_FFHQ.pt")
    return d, fx, meta


def test_encoder_and_afa_match_the_original(released):
    d, fx, _ = released
    net, line = load_goae(d)
    assert "203 tensors mapped" in line and "AFA afa_FFHQ.pt: 174 tensors mapped" in line
    x = make_fixture.fixture_input(0, (1, 3, 256, 256))
    img, rec = make_fixture.fixture_input(4, (1, 3, 64, 64)), make_fixture.fixture_input(5, (1, 3, 64, 64))
    feat = make_fixture.fixture_input(6, (1, 512, 8, 8))
    with torch.no_grad():
        ws = net.encoder(x)
        adain = net.afa(img, rec, feat)
    errs = {"ws": _rel(ws, fx["out.ws"]), "afa": _rel(adain, fx["out.afa"]),
            "afa_change": _rel(adain - feat, fx["out.afa"] - feat)}
    print("relative errors vs the original:", {k: f"{v:.1e}" for k, v in errs.items()})
    assert max(errs.values()) <= 1e-4, errs
    # GOAE's layout: the first w has no correction, the others base + coarse / mid / fine
    assert ws.shape == (1, 14, 512) and torch.allclose(ws[:, 0], fx["out.ws_base"][:, 0], atol=1e-5)
    assert _rel(ws[:, 1:], fx["out.ws_base"][:, 1:]) > 1e-2
    w_avg = torch.randn(512)
    assert torch.allclose(net.encode(x, w_avg), ws + w_avg)  # encode adds EG3D's w_avg, as GOAE's Net does


def test_occlusion_aware_mix_matches_the_original():
    fx, meta = _fixture()
    origins, dirs, depth, tri_f, tri_w = make_fixture.mix_inputs()
    torch.manual_seed(int(meta["seed"]))
    mask = visible_mask(origins, dirs, depth)
    mix = tri_f.clone()
    mix[:, 0] = mask * tri_f[:, 0] + (1 - mask) * tri_w[:, 0]
    assert _rel(mask[..., ::2, ::2], fx["out.mask_sub"]) <= 1e-4 and 0.05 < float(mask.mean()) < 0.95
    assert _rel(mix.mean(dim=(2, 3, 4)), fx["out.mix_mean"]) <= 1e-4
    assert _rel(mix.square().mean(dim=(2, 3, 4)), fx["out.mix_sq"]) <= 1e-4


def test_split_synthesis_equals_the_full_one():
    """GOAE runs EG3D's synthesis to 32^2, edits the features, then runs the rest: unedited, that is the full run."""
    from avat3r.lift.official.eg3d import EG3DConfig, EG3DGenerator

    torch.manual_seed(0)
    G = EG3DGenerator(EG3DConfig(z_dim=8, mapping_layers=1, channel_base=512, channel_max=4,
                                 sr_module="SuperresolutionHybrid2X", img_resolution=128)).eval()
    ws = torch.randn(1, G.num_ws, 512)
    with torch.no_grad():
        x, img = synthesis_until(G.backbone.synthesis, ws, 32)
        split = synthesis_from(G.backbone.synthesis, ws, x, img, 32)
        full = G.backbone.synthesis(ws)
    assert x.shape[-1] == 32 and torch.equal(split, full)


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_bad_files_are_refused(tmp_path, released, monkeypatch):
    d, _, _ = released
    bad = tmp_path / "bad"
    bad.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(marker)}, bad / "encoder_FFHQ.pt")
    with pytest.raises(CheckpointError, match="refused without running anything"):
        load_goae(bad)
    assert not marker.exists()
    sd = torch.load(d / "encoder_FFHQ.pt", weights_only=True)
    torch.save({k: v for k, v in sd.items() if "cross_att_fine" not in k}, bad / "encoder_FFHQ.pt")
    with pytest.raises(CheckpointError, match=r"lacks 8 of the 203 tensors.*cross_att_fine.*weights/goae"):
        load_goae(bad)
    torch.save({"backbone.mapping.w_avg": torch.zeros(512)}, bad / "encoder_FFHQ.pt")
    with pytest.raises(CheckpointError, match="not a GOAE encoder state dict"):
        load_goae(bad)
    (bad / "encoder_FFHQ.pt").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="not a plain tensor state dict"):
        load_goae(bad)
    monkeypatch.setenv(GOAE_ENV, str(tmp_path / "none"))
    assert "weights/goae" in goae_missing() and GOAE_ENV in goae_missing()
    with pytest.raises(CheckpointError, match="no GOAE encoder"):
        load_goae()


def test_lift_with_eg3d_and_goae_installed(tmp_path, released, request, monkeypatch):
    """The tiny EG3D of the EG3D fixture (14 ws of 512, like the real one) with the fixture's GOAE: the encoder gives
    w+; its AFA needs 512-channel 32^2 features, which the tiny EG3D lacks: the route says it skipped it."""
    from avat3r.cameras import orbit_camera
    from avat3r.capture import Capture
    from avat3r.lift.official import route as official_route
    from avat3r.lift.official.load import EG3D_ENV
    from avat3r.lift.route import lift_photo

    _, meta = eg3d_fixture()
    classes = request.getfixturevalue("eg3d_classes")
    e = tmp_path / "eg3d"
    e.mkdir()
    (e / "g.pkl").write_bytes(eg3d_snapshot(classes, eg3d_state(meta), json.loads(meta["init_kwargs"]), neural_res=16))
    monkeypatch.setenv(EG3D_ENV, str(e))
    monkeypatch.setenv(GOAE_ENV, str(released[0]))
    monkeypatch.setattr(official_route, "_CACHE", {})
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (48, 48, 3)).astype(np.float32)
    view = Capture(img[None], orbit_camera(-10.0, 0.0, 48), ["photo"], np.ones((1, 48, 48), np.float32))
    cap, res, _, report = lift_photo(view, size=48)
    text = " ".join(report)
    assert "GOAE encoder encoder_FFHQ.pt: 203 tensors mapped" in text and "w+ from the photo" in text
    assert "AFA skipped" in text and len(cap) == 4
    assert not torch.allclose(res.ws_encoder[0, 1], res.ws_encoder[0, 0])  # GOAE's per-layer corrections
