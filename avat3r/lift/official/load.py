"""EG3D's official checkpoints (``ffhq512-128.pkl``, ``ffhqrebalanced512-128.pkl``, ...: a pickled dict
{training_set_kwargs, G, D, G_ema, augment_pipe} whose networks are EG3D *persistence* objects) -> our
``EG3DGenerator``, read with ``avat3r.io.safe_pickle``: tensors and plain data only, the module source code the
persistence wrapper stores is kept as text and never run.

The constructor arguments come from the pickle itself (``G_ema._init_kwargs`` and ``G_ema.rendering_kwargs``, which
EG3D's persistence keeps), the tensors from ``G_ema``'s module tree; names map one for one. Where the files go:
``weights/eg3d/`` (or ``$AVAT3R_EG3D_WEIGHTS``: a file or a folder); see docs/LIFT.md, "EG3D + GOAE".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import CheckpointError
from ...io import safe_pickle
from .eg3d import SR_MODULES, EG3DConfig, EG3DGenerator

__all__ = ["EG3D_ENV", "load_eg3d", "eg3d_config_from_pickle", "from_eg3d_state", "find_eg3d_checkpoint",
           "eg3d_missing", "EG3DLoadReport", "EG3D_HELP"]

EG3D_ENV = "AVAT3R_EG3D_WEIGHTS"
EG3D_HELP = ("download EG3D's FFHQ checkpoint (ffhqrebalanced512-128.pkl, the one GOAE inverts into, or "
             "ffhq512-128.pkl) from NVIDIA's NGC catalogue (nvidia/research/eg3d, licence: NVIDIA Source Code "
             f"License) into weights/eg3d/, or point ${EG3D_ENV} at the file")
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "sr_num_fp16_res", "mapping_kwargs",
               "rendering_kwargs", "sr_kwargs")


@dataclass
class EG3DLoadReport:
    """What loading mapped: tensors mapped, ours missing from the file, the file's unused by us."""

    path: str = ""
    mapped: int = 0
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.path}: {self.mapped} tensors mapped; missing {self.missing or 'none'}; unused {self.unused or 'none'}"


def _state(x):
    return x.state if isinstance(x, safe_pickle.Stub) else x


def _plain(x):
    """Stubbed EasyDicts / nested containers -> plain Python values."""
    x = _state(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def eg3d_config_from_pickle(G, where: str = "checkpoint") -> EG3DConfig:
    """The TriPlaneGenerator stub's constructor arguments and rendering options -> EG3DConfig."""
    st = _state(G)
    if not isinstance(st, dict) or "_modules" not in st:
        raise CheckpointError(f"{where}: G_ema is not a pickled torch module")
    kw = dict(_plain(st.get("_init_kwargs")) or {})
    for name, v in zip(_POSITIONAL, _plain(st.get("_init_args")) or ()):
        kw.setdefault(name, v)
    if "z_dim" not in kw:
        raise CheckpointError(f"{where}: G_ema carries no constructor arguments (_init_kwargs): not a persistence pickle "
                              "written by NVlabs/eg3d's training code. Use an official EG3D .pkl (" + EG3D_HELP + ")")
    rk = dict(_plain(st.get("rendering_kwargs")) or kw.get("rendering_kwargs") or {})
    mk = dict(kw.get("mapping_kwargs") or {})
    need = ["superresolution_module", "depth_resolution", "depth_resolution_importance", "ray_start", "ray_end", "box_warp"]
    lacking = [k for k in need if k not in rk]
    if lacking:
        raise CheckpointError(f"{where}: the generator's rendering_kwargs lack {lacking}: not an EG3D TriPlaneGenerator")
    sr = str(rk["superresolution_module"]).rsplit(".", 1)[-1]
    if sr not in SR_MODULES:
        raise CheckpointError(f"{where}: super-resolution module {sr!r} is not implemented here (known: {sorted(SR_MODULES)})")
    unknown_mapping = set(mk) - {"num_layers", "embed_features", "layer_features", "lr_multiplier", "activation", "w_avg_beta"}
    if mk.get("activation", "lrelu") != "lrelu" or unknown_mapping:
        raise CheckpointError(f"{where}: mapping settings {mk} are not implemented here")
    syn = {k: v for k, v in kw.items() if k not in _POSITIONAL}
    if syn.get("architecture", "skip") != "skip":
        raise CheckpointError(f"{where}: synthesis architecture {syn['architecture']!r}: only 'skip' (EG3D's) is implemented")
    return EG3DConfig(
        z_dim=int(kw["z_dim"]), c_dim=int(kw["c_dim"]), w_dim=int(kw["w_dim"]), img_resolution=int(kw["img_resolution"]),
        img_channels=int(kw["img_channels"]), mapping_layers=int(mk.get("num_layers", 8)),
        mapping_embed_features=mk.get("embed_features"), mapping_layer_features=mk.get("layer_features"),
        mapping_lr_multiplier=float(mk.get("lr_multiplier", 0.01)), channel_base=int(syn.get("channel_base", 32768)),
        channel_max=int(syn.get("channel_max", 512)), conv_clamp=syn.get("conv_clamp"), sr_module=sr,
        sr_num_fp16_res=int(kw.get("sr_num_fp16_res", 0)), sr_antialias=bool(rk.get("sr_antialias", True)),
        sr_noise_mode=str(rk.get("superresolution_noise_mode", "none")),
        neural_rendering_resolution=int(st.get("neural_rendering_resolution", 64)),
        depth_resolution=int(rk["depth_resolution"]), depth_resolution_importance=int(rk["depth_resolution_importance"]),
        ray_start=rk["ray_start"], ray_end=rk["ray_end"], box_warp=float(rk["box_warp"]),
        disparity_space_sampling=bool(rk.get("disparity_space_sampling", False)), white_back=bool(rk.get("white_back", False)),
        density_noise=float(rk.get("density_noise", 0) or 0), clamp_mode=str(rk.get("clamp_mode", "softplus")),
        c_gen_conditioning_zero=bool(rk.get("c_gen_conditioning_zero", False)), c_scale=float(rk.get("c_scale", 0)),
        decoder_lr_mul=float(rk.get("decoder_lr_mul", 1)), avg_camera_radius=float(rk.get("avg_camera_radius", 2.7)),
        avg_camera_pivot=[float(v) for v in rk.get("avg_camera_pivot", [0, 0, 0.2])], preset="eg3d-official",
    )


def from_eg3d_state(cfg: EG3DConfig, state: dict[str, torch.Tensor], where: str = "checkpoint") -> tuple[EG3DGenerator, EG3DLoadReport]:
    """Our generator from EG3D's flat state dict (names as ``TriPlaneGenerator.state_dict()``); every tensor of ours
    must be in the file with its shape (CheckpointError naming the missing / mis-shaped ones otherwise)."""
    G = EG3DGenerator(cfg)
    ours = G.state_dict()
    rep = EG3DLoadReport(path=str(where))
    rep.unused = sorted(k for k in state if k not in ours)
    rep.missing = sorted(k for k in ours if k not in state)
    if rep.missing:
        more = f" (and {len(rep.missing) - 8} more)" if len(rep.missing) > 8 else ""
        raise CheckpointError(f"{where}: the EG3D checkpoint lacks {len(rep.missing)} of the generator's {len(ours)} tensors: "
                              f"{rep.missing[:8]}{more}. The file is partial or from another model; "
                              f"re-download it ({EG3D_HELP})")
    bad = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in ours.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise CheckpointError(f"{where}: tensors whose shapes do not match the config read from the same file: {bad[:5]}")
    G.load_state_dict({k: state[k].float() for k in ours})
    rep.mapped = len(ours)
    return G.eval(), rep


def load_eg3d(path=None, which: str = "G_ema", device="cpu") -> tuple[EG3DGenerator, EG3DLoadReport]:
    """Read an EG3D ``.pkl`` without executing it -> (generator on ``device``, report). path: a file, a folder
    holding one, or None for ``find_eg3d_checkpoint()``."""
    p = find_eg3d_checkpoint(path, required=True)
    obj = safe_pickle.load(p)
    if not isinstance(obj, dict) or which not in obj:
        keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{p}: expected an EG3D network snapshot (a dict with {which!r}), found {keys}")
    G = obj[which]
    name = G.class_name if isinstance(G, safe_pickle.Stub) else type(G).__name__
    if name != "TriPlaneGenerator":
        raise CheckpointError(f"{p}: {which} is a {name}, not EG3D's TriPlaneGenerator: not an EG3D checkpoint "
                              "(GGHead checkpoints load with avat3r.generate.official.load_official)")
    cfg = eg3d_config_from_pickle(G, str(p))
    gen, rep = from_eg3d_state(cfg, safe_pickle.module_state_dict(G), str(p))
    return gen.to(device).requires_grad_(False), rep  # frozen: the lift optimises w+ only


def _default_location() -> Path:
    env = os.environ.get(EG3D_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "weights" / "eg3d"


def find_eg3d_checkpoint(path=None, required: bool = False) -> Path | None:
    """The EG3D .pkl at ``path`` (a file, or a folder with exactly one .pkl) or at the default location
    (``$AVAT3R_EG3D_WEIGHTS`` or ``weights/eg3d/``). None when there is none (CheckpointError with required=True
    or when ``path`` was given)."""
    p = Path(path) if path is not None else _default_location()
    if p.is_file():
        return p
    pkls = sorted(p.glob("*.pkl")) if p.is_dir() else []
    if len(pkls) == 1:
        return pkls[0]
    if len(pkls) > 1:
        raise CheckpointError(f"{p} holds several .pkl files ({[q.name for q in pkls]}): keep one EG3D checkpoint there "
                              f"or point ${EG3D_ENV} at the file")
    if required or path is not None:
        raise CheckpointError(f"no EG3D checkpoint at {p}: {EG3D_HELP}")
    return None


def eg3d_missing() -> str | None:
    """None when an EG3D checkpoint is installed, else a sentence saying what to do."""
    try:
        return None if find_eg3d_checkpoint() is not None else f"no EG3D checkpoint ({EG3D_HELP})"
    except CheckpointError as e:
        return str(e)
