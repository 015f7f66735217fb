"""GGHead's official checkpoints (``checkpoint-<kimg>.pkl`` = pickled {training_set_kwargs, G, D, G_ema, augment_pipe})
into our generator, without running any of the pickle's code (``avat3r.io.safe_pickle``).

Keys map one for one: ``backbone.mapping.*``, ``backbone.synthesis.*`` and ``_zero_conv_position.*`` keep their names;
GGHead's template buffers ``_uv_grid``, ``_flame_vertices``, ``_uv_position_map`` become ``template_uv``,
``template_points``, ``template_position_map``. When a checkpoint lacks those buffers, the template is rebuilt from
GGHead's FLAME .obj (licence-gated; ``template.FLAME_TEMPLATE_HELP`` says where to put it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..io import safe_pickle
from .config import GGHeadConfig
from .model import GGHeadGenerator
from .template import UVTemplate, find_flame_template, obj_template

__all__ = ["load_official", "from_official_state", "config_from_official", "KEY_RENAMES", "LoadReport"]

KEY_RENAMES = {"_uv_grid": "template_uv", "_flame_vertices": "template_points", "_uv_position_map": "template_position_map"}
_ATTR_ORDER = ["position", "scale", "rotation", "color", "opacity"]


@dataclass
class LoadReport:
    """What loading mapped: ``missing`` (ours, not in the file), ``unused`` (the file's, not used), template source."""

    mapped: int = 0
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)
    template: str = ""

    def __str__(self) -> str:
        return (f"{self.mapped} tensors mapped; missing {self.missing or 'none'}; unused {self.unused or 'none'}; "
                f"template: {self.template}")


def _state(x):
    return x.state if isinstance(x, safe_pickle.Stub) else x


def _attr_name(a) -> str:
    """A GaussianAttribute enum member as pickled (a stub called with its value) -> 'position' etc."""
    if isinstance(a, safe_pickle.Stub) and a.args:
        return str(a.args[0]).lower()
    return str(a).lower()


def config_from_official(cfg_stub) -> GGHeadConfig:
    """GGHead's pickled ``GGHeadConfig`` (a stub's state) -> our config; refuses settings our generator lacks.
    world_scale undoes GGHead's FLAME -> BFM scaling (x 2.68), so rendered heads come out in metres."""
    c = _state(cfg_stub)
    if not isinstance(c, dict) or "plane_resolution" not in c:
        raise CheckpointError("the checkpoint's G_ema has no GGHead config (_config): not a GGHead checkpoint")
    m = _state(c.get("mapping_network_config")) or {}
    s = _state(c.get("synthesis_network_config")) or {}
    r = _state(c.get("rendering_config")) or {}
    sr = _state(c.get("super_resolution_config")) or {}
    ga = _state(c.get("gaussian_attribute_config")) or {}
    attrs = [_attr_name(a) for a in c.get("uv_attributes") or []]
    unsupported = []
    need = {
        "uv_attributes": (attrs, _ATTR_ORDER), "use_rodriguez_rotation": (ga.get("use_rodriguez_rotation"), True),
        "use_background_cnn": (c.get("use_background_cnn", False), False),
        "use_superresolution": (sr.get("use_superresolution", False), False), "n_shells": (c.get("n_shells", 1), 1),
        "use_gaussian_hierarchy": (c.get("use_gaussian_hierarchy", False), False),
        "disable_position_offsets": (c.get("disable_position_offsets", False), False),
        "use_position_activation": (c.get("use_position_activation", True), True),
        "use_color_activation": (c.get("use_color_activation", True), True),
        "no_exp_scale_activation": (c.get("no_exp_scale_activation", False), False),
        "use_align_corners": (c.get("use_align_corners", False), False),
        "interpolation_mode": (c.get("interpolation_mode", "bilinear"), "bilinear"),
        "architecture": (s.get("architecture", "skip"), "skip"), "n_color_channels": (ga.get("n_color_channels", 3), 3),
        "use_auxiliary_sphere": (c.get("use_auxiliary_sphere", False), False),
        "use_background_plane": (c.get("use_background_plane", False), False),
    }
    for k, (got, want) in need.items():
        if got != want:
            unsupported.append(f"{k}={got!r} (need {want!r})")
    if unsupported:
        raise CheckpointError("this GGHead checkpoint uses settings our generator does not implement: " + ", ".join(unsupported))
    return GGHeadConfig(
        z_dim=int(c["z_dim"]), w_dim=int(c["w_dim"]), c_dim=int(c.get("c_dim") or 25),
        mapping_layers=int(m.get("num_layers", 8)), mapping_lr_multiplier=float(m.get("lr_multiplier", 0.01)),
        c_gen_conditioning_zero=bool(r.get("c_gen_conditioning_zero", True)), c_scale=float(r.get("c_scale", 1)),
        plane_resolution=int(c["plane_resolution"]), channel_base=int(s.get("channel_base", 32768)),
        channel_max=int(s.get("channel_max", 512)), conv_clamp=s.get("conv_clamp"), use_noise=bool(s.get("use_noise", True)),
        pretrained_plane_resolution=c.get("pretrained_plane_resolution"),
        n_uniform=int(c.get("n_uniform_flame_vertices", 256)), template="flame",
        template_resolution=int(c["plane_resolution"]), sh_degree=int(ga.get("sh_degree", 0)),
        zero_conv_position=bool(c.get("use_zero_conv_position", False)),
        position_range=float(c.get("position_range", 1)), position_attenuation=float(c.get("position_attenuation", 1)),
        scale_offset=float(c.get("scale_offset", -5)), max_scale=float(c.get("max_scale", 1)),
        center_scale_activation=bool(c.get("center_scale_activation", False)),
        rotation_activation=bool(c.get("use_rotation_activation", False)),
        rotation_attenuation=float(c.get("rotation_attenuation", 1)),
        color_overshoot=float(c.get("color_overshoot", 0)), opacity_overshoot=float(c.get("opacity_overshoot", 0)),
        world_scale=1 / 2.682716929557429, image_resolution=int(c.get("neural_rendering_resolution", 512)), preset="gghead-official",
    )


def from_official_state(cfg: GGHeadConfig, state: dict[str, torch.Tensor], template_path=None) -> tuple[GGHeadGenerator, LoadReport]:
    """Build our generator from GGHead's flat state dict (names as ``GGHeadModel.state_dict()``)."""
    rep = LoadReport()
    R = cfg.template_resolution
    has_template = all(k in state for k in KEY_RENAMES)
    if has_template:
        tpl = UVTemplate(state["_uv_position_map"].float(), torch.ones(1, R, R), "checkpoint buffers")
        rep.template = "the checkpoint's own template buffers (_uv_grid, _flame_vertices, _uv_position_map)"
    else:
        path = find_flame_template(template_path)
        tpl = obj_template(path, R)
        rep.template = f"rebuilt from {path}"
    G = GGHeadGenerator(cfg, template=tpl)
    if has_template:
        G.set_template(state["_uv_grid"], state["_flame_vertices"], state["_uv_position_map"])
    ours = G.state_dict()
    theirs = {KEY_RENAMES.get(k, k): v for k, v in state.items()}
    load = {}
    for k, v in theirs.items():
        if k not in ours:
            rep.unused.append(k)
            continue
        if tuple(v.shape) != tuple(ours[k].shape):
            raise CheckpointError(f"checkpoint tensor {k} has shape {list(v.shape)}, our generator expects "
                                  f"{list(ours[k].shape)} for the config read from the file")
        load[k] = v.float()
    rep.missing = sorted(set(ours) - set(load))
    if any(not k.startswith("template_") for k in rep.missing):
        raise CheckpointError(f"the checkpoint lacks generator tensors {[k for k in rep.missing if not k.startswith('template_')]}")
    G.load_state_dict(load, strict=False)
    rep.mapped = len(load)
    return G.eval(), rep


def load_official(path, template_path=None, which: str = "G_ema") -> tuple[GGHeadGenerator, LoadReport]:
    """Read GGHead's ``.pkl`` without executing it and return (generator, report)."""
    obj = safe_pickle.load(path)
    if not isinstance(obj, dict) or which not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: expected a GGHead training snapshot (a dict with {which!r}), found {keys}")
    G = obj[which]
    name = G.qualname if isinstance(G, safe_pickle.Stub) else type(G).__name__
    if not name.endswith("GGHeadModel"):
        raise CheckpointError(f"{path}: {which} is a {name}, not a GGHeadModel: this is not a GGHead checkpoint "
                              "(EG3D / StyleGAN checkpoints are not supported here)")
    cfg = config_from_official(G.state.get("_config"))
    state = safe_pickle.module_state_dict(G)
    return from_official_state(cfg, state, template_path)


def official_help() -> str:
    """Where to put official files."""
    return (f"Put GGHead's checkpoint (*.pkl) anywhere and pass its path; {Path('weights/gghead_official')} is a good place. "
            "The template buffers travel inside GGHead checkpoints; only checkpoints without them need the FLAME .obj.")
