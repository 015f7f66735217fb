"""Export trained weights for shipping: ``config.json`` + ``model.safetensors`` (fp16 by default) + model card,
through the model's own ``save_pretrained`` (the format ``Avat3rModel.from_pretrained`` and the pipeline read).

    python -m avat3r.train.export runs/small weights/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch

from ..errors import Avat3rError, CheckpointError
from .checkpoint import latest_checkpoint, load_checkpoint, read_meta
from .config import TrainConfig

__all__ = ["export_weights", "export_checkpoint", "model_from_checkpoint", "export_main"]


def model_from_checkpoint(ckpt, device="cpu"):
    """(model, meta) from a training checkpoint or run folder (weights only; RNG untouched)."""
    from ..model import Avat3rModel, ModelConfig

    path = latest_checkpoint(ckpt)
    if path is None:
        raise CheckpointError(f"{ckpt}: no training checkpoint found (expected a step_* folder or a run folder)")
    meta = read_meta(path)
    model = Avat3rModel(ModelConfig.from_dict(meta["model_config"]))
    load_checkpoint(path, model, None, restore_rng=False)
    meta["path"] = str(path)
    return model.to(device).eval(), meta


def export_weights(model, out, *, dtype: torch.dtype = torch.float16, train_config: TrainConfig | dict | None = None,
                   summary: dict | None = None) -> Path:
    """Write ``out/config.json`` + ``out/model.safetensors`` (+ README.md) and ``out/training.json``."""
    net = model.module if hasattr(model, "module") else model
    path = net.save_pretrained(out, dtype=dtype)
    summary = summary or {}
    info = {"step": summary.get("step", summary.get("steps")),
            "train_config": train_config.to_dict() if isinstance(train_config, TrainConfig) else train_config,
            "summary": summary, "dtype": str(dtype)}
    tmp = Path(out) / "training.json.tmp"
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    tmp.replace(Path(out) / "training.json")
    return Path(path)


def export_checkpoint(ckpt, out, *, dtype: torch.dtype = torch.float16) -> Path:
    model, meta = model_from_checkpoint(ckpt)
    return export_weights(model, out, dtype=dtype, train_config=meta["train_config"],
                          summary={"step": meta["step"], "checkpoint": meta["path"], "last": meta.get("extra", {}).get("last")})


def export_main(argv: Sequence[str] | None = None) -> int:
    """``python -m avat3r.train.export CKPT OUT``: a training checkpoint -> fp16 config.json + model.safetensors."""
    p = argparse.ArgumentParser(prog="avat3r-export-weights", description=export_main.__doc__)
    p.add_argument("checkpoint", help="training checkpoint (step_* folder) or run folder (newest checkpoint)")
    p.add_argument("out", help="output folder, e.g. weights/")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    args = p.parse_args(argv)
    try:
        path = export_checkpoint(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    except Avat3rError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # python -m avat3r.train.export CKPT OUT
    sys.exit(export_main())
