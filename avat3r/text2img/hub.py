"""Finding and loading a text-to-image model, offline: our small portrait model, or a local turbo snapshot.

Order: an explicit path, then ``$AVAT3R_TEXT2IMG``, then ``weights/sd-turbo`` / ``weights/sdxl-turbo`` (a real
diffusers snapshot, used when present), then the shipped ``weights/text2img`` (ours). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import CheckpointError

ENV = "AVAT3R_TEXT2IMG"
OURS = "PortraitDiffusionPipeline"
TURBO_DIRS = ("sd-turbo", "sdxl-turbo")


def weights_root() -> Path:
    return Path(__file__).resolve().parents[2] / "weights"


def default_model_dir() -> Path:
    """The model used when none is named: $AVAT3R_TEXT2IMG, else a turbo snapshot in weights/, else ours."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for name in TURBO_DIRS:
        if (weights_root() / name / "model_index.json").is_file():
            return weights_root() / name
    return weights_root() / "text2img"


def model_kind(path) -> str:
    """'ours' or 'real' (any other diffusers pipeline) from model_index.json, or CheckpointError saying what is missing."""
    p = Path(path)
    index = p / "model_index.json"
    if not index.is_file():
        raise CheckpointError(
            f"no text-to-image model at {p} (model_index.json missing). Use the shipped weights/text2img, train one "
            "(python -m avat3r.text2img.train --out DIR; see docs/TEXT2IMG.md), or point $AVAT3R_TEXT2IMG / --model at "
            "a local diffusers snapshot such as stabilityai/sd-turbo (nothing is downloaded)")
    try:
        name = json.loads(index.read_text())["_class_name"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{index}: not a diffusers model_index.json (no _class_name)") from None
    return "ours" if name == OURS else "real"


def _quiet():
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()


def load_portrait_pipeline(path=None, device=None):
    """Our PortraitDiffusionPipeline from a folder (default_model_dir() when None), float32, on ``device``."""
    from .pipeline import PortraitDiffusionPipeline

    p = Path(path) if path is not None else default_model_dir()
    if model_kind(p) != "ours":
        raise CheckpointError(f"{p} holds another diffusers pipeline, not {OURS}; load it with load_text2img")
    _quiet()
    try:
        pipe = PortraitDiffusionPipeline.from_pretrained(str(p), local_files_only=True, low_cpu_mem_usage=False,
                                                         dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{p}: the portrait model could not be loaded ({type(e).__name__}: {str(e)[:300]})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(torch.device(device) if device is not None else "cpu")
