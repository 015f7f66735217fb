"""GGHead generator weights on disk: ``config.json`` + ``model.safetensors`` (+ README.md card), never a pickle.

``load_generator()`` reads the shipped weights (``weights/gghead/``), a directory, or ``$AVAT3R_GGHEAD_WEIGHTS``;
``.pkl`` files are GGHead's official snapshots and go through ``official.load_official`` (restricted unpickler).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import GGHeadConfig
from .model import GGHeadGenerator

__all__ = ["save_generator", "load_generator", "default_weights_dir", "generator_missing", "weights_location", "MODEL_TYPE", "WEIGHTS_ENV"]

MODEL_TYPE = "gghead"
WEIGHTS_ENV = "AVAT3R_GGHEAD_WEIGHTS"
_CACHE: dict = {}


def default_weights_dir() -> Path:
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights" / "gghead"


def generator_missing() -> str | None:
    """None when default GGHead weights are installed (a weights folder or an official .pkl), else where they
    were looked for (for the sources' "unavailable" messages)."""
    p = default_weights_dir()
    if ((p / "config.json").is_file() and (p / "model.safetensors").is_file()) or (p.is_file() and p.suffix == ".pkl"):
        return None
    return f"no GGHead weights in {weights_location()}"


def weights_location() -> str:
    """Where the default weights are looked for, as a message may show it (no server path: issue 13)."""
    return f"${WEIGHTS_ENV}" if os.environ.get(WEIGHTS_ENV) else "weights/gghead"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_generator(G: GGHeadGenerator, out_dir, *, extra: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write config.json + model.safetensors (G's state, template buffers included) into out_dir."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in G.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point() and not k.startswith("template_"):
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    cfg = {"model_type": MODEL_TYPE, **G.config.to_dict(), **({"training": extra} if extra else {})}
    _atomic_write(out / "model.safetensors", lambda p: save_file(tensors, p, metadata={"model_type": MODEL_TYPE}))
    _atomic_write(out / "config.json", lambda p: Path(p).write_text(json.dumps(cfg, indent=2) + "\n"))
    return out


def load_generator(path=None, device="cpu", cache: bool = True) -> GGHeadGenerator:
    """A generator from a weights directory (default: the shipped weights/gghead) or an official GGHead .pkl."""
    p = Path(path) if path is not None else default_weights_dir()
    key = (str(p.resolve()) if p.exists() else str(p), str(device))
    if cache and key in _CACHE:
        return _CACHE[key]
    if p.is_file() and p.suffix == ".pkl":
        from .official import load_official

        G, _ = load_official(p)
    else:
        G = _load_dir(p)
    G = G.to(device).eval().requires_grad_(False)
    if cache:
        _CACHE[key] = G
    return G


def _load_dir(p: Path) -> GGHeadGenerator:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if p.is_file():
        raise CheckpointError(f"{p} is a file; give a GGHead weights directory (config.json + model.safetensors) or a .pkl")
    missing = [n for n in ("config.json", "model.safetensors") if not (p / n).is_file()]
    if missing:
        raise CheckpointError(f"no GGHead weights at {p} (missing {', '.join(missing)}): put config.json + "
                              f"model.safetensors there, set {WEIGHTS_ENV}, or train some with `python -m avat3r.generate.train`")
    try:
        d = json.loads((p / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p / 'config.json'} is not readable JSON: {e}") from e
    if not isinstance(d, dict) or d.get("model_type") != MODEL_TYPE:
        kind = d.get("model_type") if isinstance(d, dict) else type(d).__name__
        raise CheckpointError(f"{p} holds a {kind!r} checkpoint, not a GGHead generator (model_type 'gghead')")
    d = {k: v for k, v in d.items() if k != "training"}
    cfg = GGHeadConfig.from_dict(d)
    try:
        tensors = load_file(str(p / "model.safetensors"))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{p / 'model.safetensors'} is not a readable safetensors file: {e}") from e
    G = GGHeadGenerator(cfg)
    ours = G.state_dict()
    bad = [k for k in ours if k not in tensors or tuple(tensors[k].shape) != tuple(ours[k].shape)]
    if bad:
        raise CheckpointError(f"{p / 'model.safetensors'} does not match its config.json (missing or mis-shaped: {bad[:5]})")
    G.load_state_dict({k: tensors[k].float() for k in ours})
    return G
