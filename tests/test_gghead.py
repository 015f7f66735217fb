"""GGHead generator: parity with the original code, the official-checkpoint path, refusal of code-running pickles.

The parity fixture (tests/fixtures/gghead_parity.safetensors, 166 KB) was exported from GGHead's own
``GGHeadModel`` (tobias-kirschstein/gghead + NVlabs/eg3d, built outside this repository on CPU) with random
weights: its state dict, a fixed input (z, c, truncation 0.7) and its outputs (UV attribute maps, per-Gaussian
attributes). The config below is the one it was built with (see the file's metadata).
"""

from __future__ import annotations

import enum
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from persistence_fakes import fake_persistence_modules
from torch import nn

from avat3r.errors import CheckpointError
from avat3r.generate.config import GGHeadConfig, preset
from avat3r.generate.model import GGHeadGenerator
from avat3r.generate.official import from_official_state, load_official
from avat3r.generate.template import obj_template, sample_template, uv_grid
from avat3r.io import safe_pickle

FIXTURE = Path(__file__).parent / "fixtures" / "gghead_parity.safetensors"
FIXTURE_CFG = dict(z_dim=32, w_dim=32, mapping_layers=2, plane_resolution=16, channel_base=128, channel_max=16,
                   n_uniform=16, template="flame", template_resolution=16, sh_degree=1, position_range=0.25,
                   max_scale=-3.0, scale_offset=-5.0, center_scale_activation=True, rotation_activation=True,
                   color_overshoot=0.001, opacity_overshoot=0.001, zero_conv_position=True, world_scale=1.0)


def _fixture():
    from safetensors.torch import load_file

    fx = load_file(str(FIXTURE))
    state = {k[2:]: v for k, v in fx.items() if k.startswith("G.")}
    return fx, state


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-12)).item()


def _check_parity(G, fx):
    with torch.no_grad():
        out = G(fx["in.z"], fx["in.c"], truncation_psi=0.7)
    assert _rel(out["ws"], fx["out.ws"]) <= 1e-4
    assert _rel(out["maps"], fx["out.uv_map"]) <= 1e-4
    for k in ("position", "scale", "rotation", "color", "opacity"):
        assert out[k].shape == fx["out." + k].shape, k
        assert _rel(out[k], fx["out." + k]) <= 1e-4, k
    assert _rel(G.opacity(out["opacity"]), fx["out.opacity_activated"].clamp(0, 1)) <= 1e-4
    return out


def test_parity_with_original_gghead_on_random_weights():
    fx, state = _fixture()
    G, rep = from_official_state(GGHeadConfig(**FIXTURE_CFG), state)
    assert rep.missing == [] and rep.unused == [] and rep.mapped == len(state)
    out = _check_parity(G, fx)
    # the comparison is not vacuous: another truncation gives other maps
    with torch.no_grad():
        other = G(fx["in.z"], fx["in.c"], truncation_psi=1.0)
    assert _rel(other["maps"], out["maps"]) > 1e-2


# ---- a pickle in GGHead's real layout, written here from the fixture tensors ---------------------------------
_FAKE = ("torch_utils", "torch_utils.persistence", "training", "training.networks_stylegan2", "gghead", "gghead.models",
         "gghead.models.gghead_model", "gghead.models.stylegan2", "gghead.config", "gghead.config.gaussian_attribute")
_TOUCHED = Path(os.environ.get("TMPDIR", "/tmp")) / "avat3r_gghead_persistence_src_ran"


@pytest.fixture
def fake_gghead_modules():
    """Importable stand-ins for GGHead / EG3D classes (module and class names as in the real checkpoints)."""
    with fake_persistence_modules(_FAKE, _TOUCHED) as (mods, make):
        yield _gghead_classes(mods, lambda module, name, persistent=False: make(module, name, persistent))


def _gghead_classes(mods, cls) -> dict:
    ns = "training.networks_stylegan2"
    classes = {
        "root": cls("gghead.models.gghead_model", "GGHeadModel"),
        "backbone": cls("gghead.models.stylegan2", "GGHGenerator"),
        "synthesis": cls("gghead.models.stylegan2", "GGHSynthesisNetwork"),
        "block": cls("gghead.models.stylegan2", "GGHSynthesisBlock"),
        "mapping": cls(ns, "MappingNetwork", True), "fc": cls(ns, "FullyConnectedLayer", True),
        "layer": cls(ns, "SynthesisLayer", True), "torgb": cls(ns, "ToRGBLayer", True),
    }

    class GaussianAttribute(str, enum.Enum):
        POSITION = "position"
        SCALE = "scale"
        ROTATION = "rotation"
        COLOR = "color"
        OPACITY = "opacity"

    GaussianAttribute.__module__ = "gghead.config.gaussian_attribute"
    GaussianAttribute.__qualname__ = "GaussianAttribute"
    mods["gghead.config.gaussian_attribute"].GaussianAttribute = GaussianAttribute
    cfgs = {n: type(n, (), {"__qualname__": n}) for n in ("GGHeadConfig", "MappingNetworkConfig", "SynthesisNetworkConfig", "RenderingConfig",
                                        "GaussianAttributeConfig", "SuperResolutionConfig")}
    for n, c in cfgs.items():
        c.__module__ = "gghead.models.gghead_model"
        setattr(mods["gghead.models.gghead_model"], n, c)
    return classes, GaussianAttribute, cfgs


def _obj(c, **kw):
    o = c()
    o.__dict__.update(kw)
    return o


def _build_gghead_pickle(classes, GA, cfgs, state) -> bytes:
    """{training_set_kwargs, G, D, G_ema, augment_pipe} with G_ema a GGHeadModel tree holding the fixture tensors."""
    def kind(path):
        last = path.split(".")[-1]
        if path == "":
            return "root"
        if last in ("backbone", "synthesis", "mapping", "torgb"):
            return last
        if last.startswith("b") and last[1:].isdigit():
            return "block"
        if last in ("conv0", "conv1"):
            return "layer"
        if last == "_zero_conv_position":
            return "conv"
        return "fc"

    mods: dict[str, nn.Module] = {}

    def module(path):
        if path not in mods:
            k = kind(path)
            mods[path] = nn.Conv2d(3, 3, 1) if k == "conv" else classes[k]()
            if path:
                parent, _, name = path.rpartition(".")
                setattr(module(parent), name, mods[path])
        return mods[path]

    buffers = {"_uv_grid", "_uv_position_map", "_flame_vertices", "w_avg", "noise_const", "resample_filter"}
    for key, v in state.items():
        path, _, name = key.rpartition(".")
        m = module(path)
        if name in buffers:
            m.register_buffer(name, v.clone())
        else:
            setattr(m, name, nn.Parameter(v.clone()))
    c = cfgs
    root = mods[""]
    root._config = _obj(c["GGHeadConfig"], z_dim=32, w_dim=32, c_dim=25, plane_resolution=16, n_uniform_flame_vertices=16,
                        uv_attributes=[GA.POSITION, GA.SCALE, GA.ROTATION, GA.COLOR, GA.OPACITY], position_range=0.25,
                        position_attenuation=1, scale_offset=-5, max_scale=-3, center_scale_activation=True,
                        use_rotation_activation=True, rotation_attenuation=1, color_overshoot=0.001,
                        opacity_overshoot=0.001, use_zero_conv_position=True, use_background_cnn=False,
                        neural_rendering_resolution=16,
                        mapping_network_config=_obj(c["MappingNetworkConfig"], num_layers=2, lr_multiplier=0.01),
                        synthesis_network_config=_obj(c["SynthesisNetworkConfig"], channel_base=128, channel_max=16,
                                                      conv_clamp=None, architecture="skip", use_noise=True),
                        rendering_config=_obj(c["RenderingConfig"], c_gen_conditioning_zero=False, c_scale=1),
                        super_resolution_config=_obj(c["SuperResolutionConfig"], use_superresolution=False),
                        gaussian_attribute_config=_obj(c["GaussianAttributeConfig"], use_rodriguez_rotation=True,
                                                       sh_degree=1, n_color_channels=3))
    snap = {"training_set_kwargs": {"resolution": 16}, "G": root, "D": None, "G_ema": root, "augment_pipe": None}
    return pickle.dumps(snap, protocol=4)


def test_official_pickle_layout_loads_without_running_code(tmp_path, fake_gghead_modules):
    fx, state = _fixture()
    _TOUCHED.unlink(missing_ok=True)
    path = tmp_path / "checkpoint-000000.pkl"
    path.write_bytes(_build_gghead_pickle(*fake_gghead_modules, state))
    for k in _FAKE:  # the loader must not need (or import) any of GGHead's / EG3D's modules
        sys.modules.pop(k, None)
    G, rep = load_official(path)
    assert not _TOUCHED.exists(), "EG3D persistence source was executed"
    assert rep.missing == [] and rep.mapped == len(state) and "checkpoint" in rep.template
    _check_parity(G, fx)


class _Payload:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_planted_payload_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint-evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Payload(f"touch {marker}")}, protocol=4))
    with pytest.raises(CheckpointError, match=r"(posix|os|nt)\.system.*Nothing was executed"):
        load_official(path)
    assert not marker.exists()
    # the same through eval and through a class outside the model packages
    with pytest.raises(CheckpointError, match="builtins.eval"):
        safe_pickle.loads(b"\x80\x04cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(CheckpointError, match="subprocess.Popen"):
        safe_pickle.loads(b"\x80\x04csubprocess\nPopen\n(S'true'\ntR.")


def test_wrong_kind_of_checkpoint(tmp_path):
    p = tmp_path / "a.pkl"
    p.write_bytes(pickle.dumps({"G": None, "D": None}))
    with pytest.raises(CheckpointError, match="G_ema"):
        load_official(p)
    # an EG3D snapshot: G_ema is a TriPlaneGenerator
    mod = types.ModuleType("training.triplane")
    TriPlaneGenerator = type("TriPlaneGenerator", (nn.Module,), {"__module__": "training.triplane"})
    mod.TriPlaneGenerator = TriPlaneGenerator
    saved = {k: sys.modules.get(k) for k in ("training", "training.triplane")}
    sys.modules.update({"training": types.ModuleType("training"), "training.triplane": mod})
    try:
        p.write_bytes(pickle.dumps({"G_ema": TriPlaneGenerator()}, protocol=4))
    finally:
        for k, v in saved.items():
            sys.modules.pop(k) if v is None else sys.modules.__setitem__(k, v)
    with pytest.raises(CheckpointError, match="TriPlaneGenerator, not a GGHeadModel"):
        load_official(p)
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a pickle"):
        load_official(p)
    p.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(CheckpointError, match="zip"):
        load_official(p)
    p.write_bytes(b"\x80\x04truncated")
    with pytest.raises(CheckpointError, match="not a readable pickle"):
        load_official(p)


# ---- the generator on our template --------------------------------------------------------------------------
def test_tiny_generator_renders_a_head_on_cpu():
    from avat3r.cameras import orbit_cameras

    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny")).eval()
    out = G.sample(seed=3, truncation=0.7)
    B, Gn = 1, G.num_gaussians
    assert out["maps"].shape == (B, G.config.n_uv_channels, 32, 32) and G.config.n_uv_channels == 22
    assert out["position"].shape == (B, Gn, 3) and out["rotation"].shape == (B, Gn, 4) and out["color"].shape == (B, Gn, 12)
    # same seed, same head; another seed, another head
    assert torch.equal(G.sample(seed=3, truncation=0.7)["maps"], out["maps"])
    assert not torch.equal(G.sample(seed=4, truncation=0.7)["maps"], out["maps"])
    # truncation 0 gives the average head for any seed
    assert torch.allclose(G.sample(seed=1, truncation=0.0)["maps"], G.sample(seed=2, truncation=0.0)["maps"])
    g = G.gaussians(out, 0)
    g.validate()
    cams = orbit_cameras(2, size=48, radius=1.0, fov_deg=20)
    rgb, alpha = G.render(out, cams, index=0)
    assert rgb.shape == (2, 48, 48, 3) and alpha.shape == (2, 48, 48, 1)
    assert alpha[:, 20:28, 20:28].mean() > 0.5 and alpha[:, :3, :3].max() < 0.05  # head in the middle, empty corners


def test_obj_template_rasterises_uv_layout(tmp_path):
    # a unit square in xy with uv = xy: the position map is the texel centre, every grid site valid
    obj = tmp_path / "quad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n")
    t = obj_template(obj, 8, register_to_bfm=False)
    assert t.valid_map.min() == 1
    centres = (torch.arange(8) + 0.5) / 8
    assert torch.allclose(t.position_map[0, 3], centres) and torch.allclose(t.position_map[1, :, 3], centres)
    grid = uv_grid(t.valid_map, 8)
    pts = sample_template(t.position_map, grid)
    assert grid.shape[1] == pts.shape[0] == 36  # the outermost ring of samples straddles the map border
    assert torch.allclose(pts[:, :2], (grid[0, :, 0] + 1) / 2, atol=1e-5)
