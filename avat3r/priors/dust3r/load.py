"""Loading the official DUSt3R weights into :class:`Dust3rNet`, key for key.

Published files (``naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt``):

- Hub: ``config.json`` + ``model.safetensors`` (1001 tensors, 571,171,208 parameters);
- release ``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth``: a pickle ``{'args': Namespace, 'model': state_dict}``
  (1009 tensors), read with the restricted unpickler of ``checkpoints.py``.

Aliases tolerated (both from the original code): the DPT adapter registers each projection conv twice, as
``scratch.layer{k}_rn`` and as ``scratch.layer_rn.{k-1}``; ``torch.save`` keeps both names, safetensors keeps
only ``layer{k}_rn``. A checkpoint without ``dec_blocks2`` (CroCo-style) gets a copy of ``dec_blocks``, as the
original ``load_state_dict`` does. Anything else missing, unexpected or of the wrong shape is an error.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from ...errors import CheckpointError
from ..checkpoints import load_state_dict_file, resolve_weight_file, state_dict_mismatch
from .model import PRESETS, Dust3rConfig, Dust3rNet

__all__ = ["HUB_REPO", "config_from_hub", "convert_state_dict", "load_dust3r", "find_dust3r_weights"]

HUB_REPO = "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt"
PTH_NAME = "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth"
ENV_VAR = "AVAT3R_DUST3R"
_ALIAS = re.compile(r"^(downstream_head[12]\.dpt\.scratch\.)layer_rn\.([0-3])\.weight$")


def config_from_hub(cfg: dict) -> Dust3rConfig:
    """Hub ``config.json`` (the original constructor's kwargs) -> Dust3rConfig; refuses other variants."""
    def get(k, default):
        return cfg.get(k, default)

    if get("head_type", "dpt") != "dpt" or get("output_mode", "pts3d") != "pts3d":
        raise CheckpointError(
            f"DUSt3R config: head_type={cfg.get('head_type')!r}, output_mode={cfg.get('output_mode')!r}; only the DPT "
            "pointmap model (DUSt3R_ViTLarge_BaseDecoder_512_dpt) is supported"
        )
    pe = str(get("pos_embed", "RoPE100"))
    if not pe.startswith("RoPE"):
        raise CheckpointError(f"DUSt3R config: pos_embed={pe!r}; only RoPE models are supported")
    depth = get("depth_mode", ["exp", -math.inf, math.inf])
    conf = get("conf_mode", ["exp", 1, math.inf])
    return Dust3rConfig(
        patch_size=int(get("patch_size", 16)),
        enc_embed_dim=int(get("enc_embed_dim", 1024)), enc_depth=int(get("enc_depth", 24)),
        enc_num_heads=int(get("enc_num_heads", 16)), dec_embed_dim=int(get("dec_embed_dim", 768)),
        dec_depth=int(get("dec_depth", 12)), dec_num_heads=int(get("dec_num_heads", 12)),
        mlp_ratio=float(get("mlp_ratio", 4.0)), rope_freq=float(pe[4:]),
        depth_mode=str(depth[0]), conf_mode=(str(conf[0]), float(conf[1]), float(conf[2])),
        img_size=int(max(get("img_size", [512, 512]) if isinstance(get("img_size", 512), (list, tuple)) else [get("img_size", 512)])),
    )


def convert_state_dict(sd: dict[str, torch.Tensor], model: Dust3rNet, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Map a published state dict onto ``model``'s keys (aliases above) and check names and shapes exactly."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        m = _ALIAS.match(k)
        if m:
            k2 = f"{m.group(1)}layer{int(m.group(2)) + 1}_rn.weight"
            if k2 in sd and sd[k2] is not v and not torch.equal(sd[k2], v):
                raise CheckpointError(f"{source}: '{k}' and its alias '{k2}' differ; the file is inconsistent")
            out[k2] = v
        else:
            out[k] = v
    if not any(k.startswith("dec_blocks2.") for k in out):
        out.update({"dec_blocks2." + k[len("dec_blocks."):]: v for k, v in list(out.items()) if k.startswith("dec_blocks.")})
    problem = state_dict_mismatch(model.state_dict(), out)
    if problem:
        raise CheckpointError(
            f"{source}: does not match the DUSt3R architecture ({problem}). Use the official "
            f"{HUB_REPO} weights (model.safetensors + config.json, or {PTH_NAME}) with the matching config"
        )
    return out


def find_dust3r_weights(path=None, allow_download: bool = True) -> Path:
    """Locate the weights: ``path`` / ``$AVAT3R_DUST3R`` / ``weights/dust3r/`` / HF cache / Hub download."""
    return resolve_weight_file(
        path, env_var=ENV_VAR, local_names=["dust3r/model.safetensors", f"dust3r/{PTH_NAME}"],
        repo_id=HUB_REPO, filename="model.safetensors", what="DUSt3R", allow_download=allow_download,
    )


def _config_for(path: Path, sd: dict) -> Dust3rConfig:
    """config.json beside a .safetensors (the Hub layout); otherwise the sizes read off the tensors (a .pth's
    training args are a constructor string, never evaluated)."""
    cfg_file = path.with_name("config.json")
    if path.suffix == ".safetensors" and cfg_file.is_file():
        try:
            return config_from_hub(json.loads(cfg_file.read_text()))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from e
    return infer_config(sd)


def infer_config(sd: dict) -> Dust3rConfig:
    """Architecture sizes read off the tensor shapes (for .pth files and configs without sizes)."""
    try:
        enc_dim = sd["patch_embed.proj.weight"].shape[0]
        patch = sd["patch_embed.proj.weight"].shape[-1]
        dec_dim = sd["decoder_embed.weight"].shape[0]
        enc_depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("enc_blocks."))
        dec_depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("dec_blocks."))
        hd = "downstream_head1.dpt."
        layer_dims = tuple(sd[f"{hd}act_postprocess.{i}.0.weight"].shape[0] for i in range(4))
        rn = f"{hd}scratch.layer1_rn.weight" if f"{hd}scratch.layer1_rn.weight" in sd else f"{hd}scratch.layer_rn.0.weight"
        feat = sd[rn].shape[0]
        last = sd[f"{hd}head.4.weight"].shape[1]
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"not a DUSt3R DPT state dict (missing {e}); use the official {HUB_REPO} weights") from e
    # head counts are not visible in shapes: 64-channel heads as in all published DUSt3R models
    return Dust3rConfig(patch_size=patch, enc_embed_dim=enc_dim, enc_depth=enc_depth, enc_num_heads=max(1, enc_dim // 64),
                        dec_embed_dim=dec_dim, dec_depth=dec_depth, dec_num_heads=max(1, dec_dim // 64),
                        head_feature_dim=feat, head_last_dim=last, head_layer_dims=layer_dims)


def load_dust3r(path=None, *, config: Dust3rConfig | str | None = None, device="cpu", dtype=torch.float32,
                allow_download: bool = True) -> Dust3rNet:
    """Build the network and load weights (safetensors or .pth) exactly; eval mode."""
    path = find_dust3r_weights(path, allow_download) if path is None or Path(path).is_dir() else Path(path)
    sd, _ = load_state_dict_file(path, container_keys=("model", "state_dict"))
    if isinstance(config, str):
        config = PRESETS[config]
    config = config or _config_for(path, sd)
    with torch.device("meta"):  # no random init: names and shapes are checked, then the tensors are assigned
        model = Dust3rNet(config)
    sd = convert_state_dict(sd, model, source=str(path))
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval()
