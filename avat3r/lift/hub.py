"""Lift encoder weights on disk: ``config.json`` + ``model.safetensors`` (+ README.md card), never a pickle.

``load_encoder(G)`` reads ``$AVAT3R_LIFT_WEIGHTS`` or the shipped ``weights/lift/``; an encoder is refused when it
was built for another generator shape. ``None`` when none is installed: the lift then starts from the
generator's average head and relies on the optimisation (and says so).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import EncoderConfig
from .encoder import LiftEncoder

__all__ = ["save_encoder", "load_encoder", "default_encoder_dir", "MODEL_TYPE", "WEIGHTS_ENV"]

MODEL_TYPE = "lift_encoder"
WEIGHTS_ENV = "AVAT3R_LIFT_WEIGHTS"


def default_encoder_dir() -> Path:
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights" / "lift"


def save_encoder(enc: LiftEncoder, out_dir, *, extra: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write config.json + model.safetensors into out_dir (``dtype``: e.g. float16 to halve the file)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = {k: (v.detach().cpu().to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu()).contiguous()
         for k, v in enc.state_dict().items()}
    save_file(t, str(out / "model.safetensors"), metadata={"model_type": MODEL_TYPE})
    cfg = {"model_type": MODEL_TYPE, **enc.config.to_dict(), **({"training": extra} if extra else {})}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def load_encoder(G=None, path=None, device="cpu", required: bool = False) -> LiftEncoder | None:
    """The encoder at ``path`` (default ``default_encoder_dir()``) for generator G; None when none is there
    (CheckpointError instead with required=True, or when the path was given explicitly)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path) if path is not None else default_encoder_dir()
    if not ((p / "config.json").is_file() and (p / "model.safetensors").is_file()):
        if required or path is not None:
            raise CheckpointError(f"no lift encoder at {p} (config.json + model.safetensors): train one with "
                                  f"`python -m avat3r.lift.train --out {p}` or set {WEIGHTS_ENV}")
        return None
    try:
        d = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p / 'config.json'} is not readable JSON: {e}") from e
    if not isinstance(d, dict) or d.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{p} does not hold a lift encoder (model_type {MODEL_TYPE!r})")
    cfg = EncoderConfig.from_dict(d)
    if G is not None and (cfg.num_ws, cfg.w_dim) != (G.num_ws, G.config.w_dim):
        raise CheckpointError(f"the lift encoder at {p} was trained for a generator with {cfg.num_ws} x {cfg.w_dim} ws "
                              f"({cfg.generator_preset!r}); the loaded generator has {G.num_ws} x {G.config.w_dim}: "
                              "retrain it for this generator (python -m avat3r.lift.train)")
    try:
        t = load_file(str(p / "model.safetensors"))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{p / 'model.safetensors'} is not a readable safetensors file: {e}") from e
    enc = LiftEncoder(cfg)
    ours = enc.state_dict()
    bad = [k for k in ours if k not in t or tuple(t[k].shape) != tuple(ours[k].shape)]
    if bad:
        raise CheckpointError(f"{p / 'model.safetensors'} does not match its config.json (missing or mis-shaped: {bad[:5]})")
    enc.load_state_dict({k: t[k].float() for k in ours})
    return enc.to(device).eval()
