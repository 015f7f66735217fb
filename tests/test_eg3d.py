"""EG3D tri-plane generator: parity with NVlabs/eg3d's original code on random weights, its official pickle layout
loaded without running code, and clear refusals of wrong or partial files.

tests/fixtures/eg3d/eg3d_parity.safetensors (0.7 MB) holds the inputs and the ORIGINAL code's outputs (ws,
triplanes subsampled + per-channel moments, raw image, depth, super-resolved image) for a tiny TriPlaneGenerator
whose weights ``make_fixture.fixture_weights`` computes from the state dict's names and shapes (stored in the
file's metadata); ``make_fixture.py`` (run by hand with the original code outside the repository) says how.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from persistence_fakes import fake_persistence_modules
from torch import nn

from avat3r.errors import CheckpointError
from avat3r.lift.official.eg3d import eg3d_camera
from avat3r.lift.official.load import EG3D_ENV, eg3d_missing, find_eg3d_checkpoint, load_eg3d
from avat3r.lift.official.volume import ray_box_limits

FIXDIR = Path(__file__).parent / "fixtures" / "eg3d"
_spec = importlib.util.spec_from_file_location("eg3d_make_fixture", FIXDIR / "make_fixture.py")
make_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixture)

_TOUCHED = Path(os.environ.get("TMPDIR", "/tmp")) / "avat3r_eg3d_persistence_src_ran"
_FAKE = ("torch_utils", "torch_utils.persistence", "training", "training.triplane", "training.networks_stylegan2",
         "training.superresolution", "training.volumetric_rendering", "training.volumetric_rendering.renderer",
         "training.volumetric_rendering.ray_sampler", "training.volumetric_rendering.ray_marcher")


def _fixture():
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(FIXDIR / "eg3d_parity.safetensors"), "pt") as f:
        meta = f.metadata()
    return load_file(str(FIXDIR / "eg3d_parity.safetensors")), meta


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-12)).item()


@pytest.fixture
def eg3d_classes():
    """Importable stand-ins for EG3D's classes (module and class names as in the real pickles); the persistent
    ones pickle as EG3D's persistence does: _reconstruct_persistent_obj(meta) with the module's source inside."""
    with fake_persistence_modules(_FAKE, _TOUCHED) as (_, make):
        yield _eg3d_classes(lambda module, name, persistent=True: make(module, name, persistent))


def _eg3d_classes(cls) -> dict:
    ns, vr = "training.networks_stylegan2", "training.volumetric_rendering"
    classes = {n: cls(ns, n) for n in ("Generator", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
                                       "MappingNetwork", "FullyConnectedLayer")}
    classes["TriPlaneGenerator"] = cls("training.triplane", "TriPlaneGenerator")
    classes["OSGDecoder"] = cls("training.triplane", "OSGDecoder", persistent=False)
    for n in ("SuperresolutionHybrid2X", "SynthesisBlockNoUp"):
        classes[n] = cls("training.superresolution", n)
    classes["ImportanceRenderer"] = cls(vr + ".renderer", "ImportanceRenderer", persistent=False)
    classes["RaySampler"] = cls(vr + ".ray_sampler", "RaySampler", persistent=False)
    classes["MipRayMarcher2"] = cls(vr + ".ray_marcher", "MipRayMarcher2", persistent=False)
    return classes


def _kind(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    table = {"": "TriPlaneGenerator", "backbone": "Generator", "synthesis": "SynthesisNetwork", "mapping": "MappingNetwork",
             "superresolution": "SuperresolutionHybrid2X", "block0": "SynthesisBlockNoUp", "block1": "SynthesisBlock",
             "decoder": "OSGDecoder", "torgb": "ToRGBLayer", "conv0": "SynthesisLayer", "conv1": "SynthesisLayer"}
    if path in table or last in table:
        return table.get(path, table.get(last))
    if last.startswith("b") and last[1:].isdigit():
        return "SynthesisBlock"
    return "FullyConnectedLayer"  # fc*, embed, affine, decoder.net.0 / .2


def eg3d_snapshot(classes, state: dict, init_kwargs: dict, neural_res: int = 64, with_init: bool = True) -> bytes:
    """{training_set_kwargs, G, D, G_ema, augment_pipe} with G_ema a TriPlaneGenerator tree holding ``state``."""
    mods: dict[str, nn.Module] = {}

    def module(path):
        if path not in mods:
            mods[path] = nn.Sequential() if path == "decoder.net" else classes[_kind(path)]()
            if path:
                parent, _, name = path.rpartition(".")
                setattr(module(parent), name, mods[path])
        return mods[path]

    module("decoder.net")
    mods["decoder.net"].add_module("0", classes["FullyConnectedLayer"]())
    mods["decoder.net"].add_module("1", nn.Softplus())
    mods["decoder.net"].add_module("2", classes["FullyConnectedLayer"]())
    for key, v in state.items():
        path, _, name = key.rpartition(".")
        m = module(path) if path not in ("decoder.net.0", "decoder.net.2") else mods["decoder.net"][int(path[-1])]
        if name in ("w_avg", "noise_const", "resample_filter"):
            m.register_buffer(name, v.clone())
        else:
            setattr(m, name, nn.Parameter(v.clone()))
    root = mods[""]
    root.renderer = classes["ImportanceRenderer"]()
    root.renderer.plane_axes = torch.eye(3).repeat(3, 1, 1)
    root.renderer.ray_marcher = classes["MipRayMarcher2"]()
    root.ray_sampler = classes["RaySampler"]()
    root.rendering_kwargs = init_kwargs["rendering_kwargs"]
    root.neural_rendering_resolution = neural_res
    if with_init:  # EG3D's persistence keeps the constructor's arguments
        root._init_args, root._init_kwargs = (), init_kwargs
    snap = {"training_set_kwargs": {"resolution": 128}, "G": root, "D": None, "G_ema": root, "augment_pipe": None}
    return pickle.dumps(snap, protocol=4)


def _fixture_state(meta) -> dict:
    return make_fixture.fixture_weights(json.loads(meta["shapes"]))


def test_parity_with_original_eg3d_on_random_weights(tmp_path, eg3d_classes):
    fx, meta = _fixture()
    state = _fixture_state(meta)
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(eg3d_snapshot(eg3d_classes, state, json.loads(meta["init_kwargs"])))
    for k in _FAKE:  # the loader must neither need nor import any of EG3D's modules
        sys.modules.pop(k, None)
    _TOUCHED.unlink(missing_ok=True)
    G, rep = load_eg3d(path)
    assert not _TOUCHED.exists(), "EG3D persistence source was executed"
    assert rep.missing == [] and rep.unused == [] and rep.mapped == len(state) == 177
    assert G.config.sr_module == "SuperresolutionHybrid2X" and G.config.depth_resolution == 12
    z, c, nr = fx["in.z"], fx["in.c"], int(meta["neural_rendering_resolution"])
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=float(meta["truncation_psi"]))
        planes = G.planes(ws).reshape(len(ws), 96, 256, 256)
        torch.manual_seed(int(meta["seed"]))
        out = G.synthesis(ws, c, neural_rendering_resolution=nr)
    errs = {"ws": _rel(ws, fx["out.ws"]), "planes_sub": _rel(planes[..., ::16, ::16], fx["out.planes_sub"]),
            "planes_mean": _rel(planes.mean(dim=(2, 3)), fx["out.planes_mean"]),
            "planes_sq": _rel(planes.square().mean(dim=(2, 3)), fx["out.planes_sq"])}
    for k in ("image_raw", "image_depth", "image"):
        errs[k] = _rel(out[k], fx["out." + k])
        d, ref = out[k] - out[k].mean(), fx["out." + k] - fx["out." + k].mean()
        errs[k + "_centred"] = _rel(d, ref)  # the variation, not just the offset, must agree
    print("relative errors vs the original:", {k: f"{v:.1e}" for k, v in errs.items()})
    assert max(errs.values()) <= 1e-4, errs
    # not vacuous: other importance-sampling noise gives another raw image, another view other pixels
    with torch.no_grad():
        torch.manual_seed(int(meta["seed"]) + 1)
        other = G.synthesis(ws, c, neural_rendering_resolution=nr, planes=out["planes"])
    assert _rel(other["image_raw"], fx["out.image_raw"]) > 1e-3
    assert _rel(out["image"][0], out["image"][1]) > 1e-2


def test_camera_label_matches_eg3ds_pose_sampler():
    fx, _ = _fixture()  # in.c was built by the original LookAtPoseSampler + FOV_to_intrinsics
    c = eg3d_camera([math.degrees(-0.3), math.degrees(0.2)], [math.degrees(0.1), math.degrees(-0.05)])
    assert _rel(c, fx["in.c"]) < 1e-5


def test_ray_box_limits():
    o = torch.tensor([[0.0, 0.0, 3.0], [0.0, 3.0, 3.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    t0, t1 = ray_box_limits(o, d, 1.0)
    assert torch.allclose(t0[0], torch.tensor([2.5])) and torch.allclose(t1[0], torch.tensor([3.5]))
    assert t0[1].item() == -1 and t1[1].item() == -2  # misses the box


class _Payload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_wrong_partial_and_malicious_files_are_refused(tmp_path, eg3d_classes, monkeypatch):
    fx, meta = _fixture()
    state = _fixture_state(meta)
    kw = json.loads(meta["init_kwargs"])
    p = tmp_path / "eg3d.pkl"
    partial = {k: v for k, v in state.items() if not k.startswith("superresolution.block1")}
    p.write_bytes(eg3d_snapshot(eg3d_classes, partial, kw))
    with pytest.raises(CheckpointError, match=r"lacks 19 of the generator's 177 tensors.*superresolution\.block1.*re-download"):
        load_eg3d(p)
    p.write_bytes(eg3d_snapshot(eg3d_classes, state, kw, with_init=False))
    with pytest.raises(CheckpointError, match="no constructor arguments"):
        load_eg3d(p)
    bad = dict(kw, rendering_kwargs=dict(kw["rendering_kwargs"], superresolution_module="x.SuperresolutionHybrid16X"))
    p.write_bytes(eg3d_snapshot(eg3d_classes, state, bad))
    with pytest.raises(CheckpointError, match="SuperresolutionHybrid16X.*not implemented"):
        load_eg3d(p)
    p.write_bytes(pickle.dumps({"G_ema": eg3d_classes["Generator"]()}, protocol=4))
    with pytest.raises(CheckpointError, match="is a Generator, not EG3D's TriPlaneGenerator"):
        load_eg3d(p)
    marker = tmp_path / "pwned"
    p.write_bytes(pickle.dumps({"G_ema": _Payload(f"touch {marker}")}, protocol=4))
    with pytest.raises(CheckpointError, match="Nothing was executed"):
        load_eg3d(p)
    assert not marker.exists()
    p.write_bytes(pickle.dumps({"G": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="G_ema"):
        load_eg3d(p)
    # where the files go: nothing installed -> None / a sentence naming weights/eg3d and the variable
    monkeypatch.setenv(EG3D_ENV, str(tmp_path / "none"))
    assert find_eg3d_checkpoint() is None and "weights/eg3d" in eg3d_missing() and EG3D_ENV in eg3d_missing()
    with pytest.raises(CheckpointError, match="no EG3D checkpoint"):
        load_eg3d()
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.pkl").write_bytes(b"x")
    (tmp_path / "two" / "b.pkl").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="several .pkl"):
        load_eg3d(tmp_path / "two")


# ---- the lift route with EG3D installed -----------------------------------------------------------------------
def test_cameras_between_eg3d_and_our_world():
    from avat3r.head_template import HEAD_BOX_CENTER
    from avat3r.lift.official.eg3d import EG3DConfig
    from avat3r.lift.official.route import eg3d_orbit, eg3d_to_cameras
    from avat3r.lift.views import view_angles

    cfg = EG3DConfig()
    c = eg3d_orbit([-60.0, -20.0, 20.0, 60.0], [8.0, 0.0, 0.0, 8.0], cfg)
    cams = eg3d_to_cameras(c, 64, cfg)
    az, el = view_angles(cams)
    assert torch.allclose(az, torch.tensor([-60.0, -20.0, 20.0, 60.0]), atol=1e-3)
    assert torch.allclose(el, torch.tensor([8.0, 0.0, 0.0, 8.0]), atol=1e-3)
    uv, z = cams.project(torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)[None])
    assert torch.allclose(uv, torch.full_like(uv, 32.0), atol=1e-3) and (z > 0).all()  # the pivot at the centre
    up, _ = cams.project(torch.tensor([[0.0, 0.1, 0.0]]))
    assert (up[:, 0, 1] < 32).all()  # y up in the world = up in the image
    # a point on EG3D's ray through pixel (row 5, column 40) lands on that pixel's centre in our camera
    from avat3r.lift.official.route import EG3D_METRES
    from avat3r.lift.official.volume import ray_bundle

    o, d = ray_bundle(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), 64)
    k = 5 * 64 + 40
    p_eg3d = o[:, k] + 2.5 * d[:, k]  # [4, 3]
    p_ours = (p_eg3d - torch.tensor(cfg.avg_camera_pivot)) * EG3D_METRES + torch.as_tensor(HEAD_BOX_CENTER).float()
    uv = torch.stack([cams[i].project(p_ours[i:i + 1])[0][0, 0] for i in range(4)])
    assert torch.allclose(uv, torch.tensor([[40.5, 5.5]]).expand(4, 2), atol=1e-3), uv


def test_reframe_moves_the_head_where_the_target_camera_sees_it():
    from avat3r.cameras import orbit_camera
    from avat3r.head_template import HEAD_BOX_CENTER
    from avat3r.lift.official.eg3d import EG3DConfig
    from avat3r.lift.official.route import eg3d_to_cameras, photo_label, reframe

    src = orbit_camera(15.0, 5.0, 96)
    dst = eg3d_to_cameras(photo_label(src, EG3DConfig()), 64, EG3DConfig())
    R = dst.world_to_cam[0, :3, :3]  # a point on the head-centre plane facing the target camera
    nose = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)[None] + 0.05 * R[0] - 0.03 * R[1]
    u, v = src.project(nose)[0][0, 0].round().long().tolist()
    img = np.zeros((96, 96, 3), np.float32)
    img[v - 1:v + 2, u - 1:u + 2] = 1.0
    out, m = reframe(img, np.ones((96, 96), np.float32), src, dst, 64)
    peak = divmod(int(out[0, 0].argmax()), 64)
    u2, v2 = dst.project(nose)[0][0, 0].tolist()
    assert abs(peak[0] - v2) <= 1.5 and abs(peak[1] - u2) <= 1.5 and m.mean() > 0.5


def test_lift_uses_eg3d_when_installed_and_says_so(tmp_path, eg3d_classes, monkeypatch):
    from skimage import data

    from avat3r.cameras import orbit_camera
    from avat3r.capture import Capture
    from avat3r.lift.official import route as official_route
    from avat3r.lift.route import lift_photo, load_lift_models
    from avat3r.lift.views import view_angles
    from avat3r.sources import get_source

    fx, meta = _fixture()
    d = tmp_path / "eg3d"
    d.mkdir()
    (d / "tiny-eg3d.pkl").write_bytes(eg3d_snapshot(eg3d_classes, _fixture_state(meta), json.loads(meta["init_kwargs"]),
                                                    neural_res=16))
    monkeypatch.setenv(EG3D_ENV, str(d))
    monkeypatch.setattr(official_route, "_CACHE", {})
    monkeypatch.setenv("AVAT3R_GGHEAD_WEIGHTS", str(tmp_path / "no-gghead"))
    assert get_source("lift").available() is None  # EG3D alone makes the route available
    from PIL import Image

    img = np.asarray(Image.fromarray(data.astronaut()).resize((48, 48)), np.float32) / 255
    yy, xx = np.mgrid[:48, :48]
    mask = (((xx - 24) / 16.0) ** 2 + ((yy - 24) / 20.0) ** 2 < 1).astype(np.float32)
    view = Capture(img[None], orbit_camera(15.0, 5.0, 48), ["photo"], mask[None])
    msgs = []
    cap, res, _, report = lift_photo(view, size=48, progress=lambda f, m: msgs.append(m))
    G, enc = load_lift_models()
    assert type(G).__name__ == "EG3DGenerator" and enc is None
    assert cap.names == ["eg3d_az-60", "eg3d_az-20", "eg3d_az+20", "eg3d_az+60"] and cap.images.shape == (4, 48, 48, 3)
    assert cap.masks.shape == (4, 48, 48) and np.isfinite(cap.images).all()
    az, _ = view_angles(cap.cameras)
    assert torch.allclose(az, torch.tensor([-60.0, -20.0, 20.0, 60.0]), atol=1e-3)
    text = " ".join(report)
    assert "EG3D generator (the paper's stack)" in text and "177 tensors mapped" in text and "average w" in text
    assert any("EG3D" in m for m in msgs) and res.render_after.shape == (128, 128, 3)
    # the views differ (the camera moves), and the route said which stack ran
    assert np.abs(cap.images[0] - cap.images[3]).mean() > 1e-3
    # with optimisation steps: w+ moves against the photo, the generator stays frozen
    from avat3r.lift.official.route import lift_photo_eg3d

    cap2, res2, rep2 = lift_photo_eg3d(view, 48, G, None, steps=3)
    assert len(res2.curve) == 3 and res2.curve[-1] < res2.curve[0] and "optimised against the photo" in " ".join(rep2)
    assert not torch.equal(res2.ws, res2.ws_encoder) and all(p.grad is None for p in G.parameters())


def test_cli_lift_with_eg3d_installed(tmp_path, eg3d_classes, ckpt, monkeypatch):
    """`avat3r lift photo.jpg -o DIR` with only EG3D installed: the four EG3D views as a capture folder, the avatar
    and lift.json's report naming the stack."""
    from skimage import data

    from avat3r.cli import main
    from avat3r.data.capture_folder import read_capture_folder
    from avat3r.io.images import save_image
    from avat3r.lift.official import route as official_route

    _, meta = _fixture()
    d = tmp_path / "eg3d"
    d.mkdir()
    (d / "tiny.pkl").write_bytes(eg3d_snapshot(eg3d_classes, _fixture_state(meta), json.loads(meta["init_kwargs"]), neural_res=16))
    monkeypatch.setenv(EG3D_ENV, str(d))
    monkeypatch.setenv("AVAT3R_GGHEAD_WEIGHTS", str(tmp_path / "no-gghead"))
    monkeypatch.setattr(official_route, "_CACHE", {})
    photo = tmp_path / "astronaut.png"
    save_image(photo, data.astronaut().astype(np.float32) / 255)
    out = tmp_path / "lifted"
    rc = main(["-q", "lift", str(photo), "--mode", "lift", "--weights", str(ckpt), "--device", "cpu", "--steps", "0",
               "-o", str(out), "--frames", "0", "--size", "48"])
    assert rc == 0
    cap = read_capture_folder(out / "capture")
    assert cap.names == ["eg3d_az-60", "eg3d_az-20", "eg3d_az+20", "eg3d_az+60"] and cap.masks is not None
    info = json.loads((out / "lift.json").read_text())
    assert any("EG3D generator (the paper's stack)" in line for line in info["report"])
