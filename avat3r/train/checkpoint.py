"""Training checkpoints: model + optimiser + step + configs + RNG states, as safetensors + JSON (no pickle).

A checkpoint is a folder ``<out_dir>/checkpoints/step_<NNNNNNNNN>/``::

    trainer.json               step, TrainConfig, ModelConfig, optimiser hyper-parameters, tensor index
    tensors-000.safetensors    model weights ("model/<name>") and Adam state ("optim/<param>/<key>"),
    tensors-001.safetensors    ... split so that no file exceeds ``shard_mib`` (the device returns <= 16 MiB files)
    rng-rank<r>.safetensors    torch CPU / CUDA, numpy and Python RNG states of rank r, as tensors

``<out_dir>/checkpoints/latest.json`` names the newest complete checkpoint. Folders are written under a
temporary name and renamed when complete, so a crash never leaves a half-written checkpoint behind.

Formats:
- ``exact``: everything in float32 -> resuming continues bit-exactly (same losses as an uninterrupted run).
- ``compact``: model weights in float32, Adam's second moment log-quantised to 8 bits, the first moment
  dropped (its memory is ~1/(1-beta1) = 10 steps, it is rebuilt at once). About 1.25x the fp32 model size
  (the ``small`` preset: ~50 MiB instead of ~120 MiB), for carrying a run between device sessions; the
  resumed run is close to, not bit-identical with, an uninterrupted one.
- ``weights``: float32 weights, step, configs and RNG only (the ``small`` preset: ~40 MiB); Adam restarts,
  with a short LR re-warm-up (``TrainConfig.rewarm_steps``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state_tensors", "set_rng_state_tensors",
           "checkpoint_size"]

FORMAT_VERSION = 1


# ---- RNG states as tensors ----------------------------------------------------------------------------
def rng_state_tensors() -> dict[str, torch.Tensor]:
    """This process's RNG states (torch CPU, current CUDA device, numpy, Python) as plain tensors."""
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    out["numpy_meta"] = torch.tensor([float(pos), float(has_gauss), float(cached)], dtype=torch.float64)
    version, internal, gauss_next = random.getstate()
    out["python_state"] = torch.tensor(list(internal), dtype=torch.int64)
    out["python_meta"] = torch.tensor([float(version), 0.0 if gauss_next is None else 1.0,
                                       0.0 if gauss_next is None else float(gauss_next)], dtype=torch.float64)
    return out


def set_rng_state_tensors(t: dict[str, torch.Tensor]) -> None:
    """Inverse of ``rng_state_tensors``."""
    torch.set_rng_state(t["torch_cpu"])
    if "torch_cuda" in t and torch.cuda.is_available():
        torch.cuda.set_rng_state(t["torch_cuda"])
    meta = t["numpy_meta"].tolist()
    np.random.set_state(("MT19937", t["numpy_keys"].numpy().astype(np.uint32), int(meta[0]), int(meta[1]), meta[2]))
    pm = t["python_meta"].tolist()
    random.setstate((int(pm[0]), tuple(int(v) for v in t["python_state"].tolist()), pm[2] if pm[1] else None))


# ---- optimiser state <-> flat tensors -------------------------------------------------------------------
def _quantize_log(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v >= 0 -> (uint8 codes, [lo, hi] of log2 v); code 0 = exactly 0. Relative error <= ~6% on v."""
    v = v.float()
    nz = v > 0
    if not nz.any():
        return torch.zeros_like(v, dtype=torch.uint8), torch.zeros(2)
    lv = torch.log2(v[nz])
    lo, hi = lv.min(), lv.max()
    span = (hi - lo).clamp_min(1e-12)
    q = torch.zeros_like(v, dtype=torch.uint8)
    q[nz] = (1 + torch.round((lv - lo) / span * 254)).to(torch.uint8)
    return q, torch.stack([lo, hi])


def _dequantize_log(q: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
    lo, hi = rng.tolist()
    v = torch.exp2(lo + (q.float() - 1) / 254 * (hi - lo))
    return torch.where(q == 0, torch.zeros_like(v), v)


def _optimizer_tensors(opt: torch.optim.Optimizer, fmt: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, extra = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            name = f"optim/{pid}/{k}"
            if not isinstance(v, torch.Tensor):
                extra[name] = v
            elif fmt == "compact" and k == "exp_avg":
                continue
            elif fmt == "compact" and k == "exp_avg_sq":
                q, r = _quantize_log(v.detach().cpu())
                tensors[name + ".q8"], tensors[name + ".range"] = q, r
            else:
                tensors[name] = v.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "non_tensor_state": extra}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, where: str) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        if not name.startswith("optim/"):
            continue
        _, pid, key = name.split("/", 2)
        if key.endswith(".range"):
            continue
        if key.endswith(".q8"):
            key = key[:-3]
            v = _dequantize_log(v, tensors[f"optim/{pid}/{key}.range"])
        state.setdefault(int(pid), {})[key] = v
    for name, v in meta.get("non_tensor_state", {}).items():
        _, pid, key = name.split("/", 2)
        state.setdefault(int(pid), {})[key] = v
    for st in state.values():  # compact checkpoints drop the first moment: restart it from zero
        if "exp_avg_sq" in st and "exp_avg" not in st:
            st["exp_avg"] = torch.zeros_like(st["exp_avg_sq"])
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{where}: optimiser state does not match this model ({e}); was it trained with another config?") from e


# ---- save / load ---------------------------------------------------------------------------------------
def _shard(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(tensors):
        n = tensors[k].numel() * tensors[k].element_size()
        if shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = tensors[k]
        size += n
    return shards


def save_checkpoint(out_dir, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    train_config: dict, model_config: dict, extra: dict | None = None, fmt: str = "exact",
                    shard_mib: int = 15, rank: int = 0, world_size: int = 1, barrier=None, keep: int = 0) -> Path:
    """Write ``<out_dir>/checkpoints/step_<step>/`` (all ranks call this; rank 0 writes the shared files).

    barrier: a callable that synchronises the ranks (None for one process). keep > 0 deletes older checkpoints."""
    root = Path(out_dir) / "checkpoints"
    final = root / f"step_{step:09d}"
    tmp = root / f".step_{step:09d}.tmp"
    sync = barrier or (lambda: None)
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    sync()
    tmp.mkdir(parents=True, exist_ok=True)  # other nodes without a shared file system
    save_file(rng_state_tensors(), str(tmp / f"rng-rank{rank}.safetensors"))
    sync()
    if rank == 0:
        tensors = {f"model/{k}": v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
                   for k, v in model.state_dict().items()}
        opt_meta = {}
        if optimizer is not None and fmt != "weights":
            ot, opt_meta = _optimizer_tensors(optimizer, fmt)
            tensors.update(ot)
        index = {}
        for i, shard in enumerate(_shard(tensors, shard_mib * 2**20)):
            fname = f"tensors-{i:03d}.safetensors"
            save_file(shard, str(tmp / fname), metadata={"format": "pt"})
            index.update({k: fname for k in shard})
        meta = {
            "format_version": FORMAT_VERSION, "checkpoint_format": fmt, "step": step, "world_size": world_size,
            "train_config": train_config, "model_config": model_config, "optimizer": opt_meta,
            "index": index, "torch_version": torch.__version__, "extra": extra or {},
        }
        (tmp / "trainer.json").write_text(json.dumps(meta, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        latest_tmp = root / "latest.json.tmp"
        latest_tmp.write_text(json.dumps({"step": step, "path": final.name}) + "\n")
        os.replace(latest_tmp, root / "latest.json")
        if keep > 0:
            old = sorted(p for p in root.glob("step_*") if p.is_dir() and p != final)
            for p in old[: max(0, len(old) - (keep - 1))]:
                shutil.rmtree(p, ignore_errors=True)
    sync()
    return final


def latest_checkpoint(path) -> Path | None:
    """The newest checkpoint under a run folder / its checkpoints folder, or ``path`` itself if it is one."""
    p = Path(path)
    if (p / "trainer.json").is_file():
        return p
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    latest = root / "latest.json"
    if latest.is_file():
        cand = root / json.loads(latest.read_text())["path"]
        if (cand / "trainer.json").is_file():
            return cand
    steps = checkpoint_steps(root)
    return steps[max(steps)] if steps else None


def checkpoint_steps(path) -> dict[int, Path]:
    """{step: folder} of the complete step_* checkpoints under a run folder or its checkpoints folder."""
    root = Path(path) / "checkpoints" if (Path(path) / "checkpoints").is_dir() else Path(path)
    return {int(q.name.split("_", 1)[1]): q for q in root.glob("step_*")
            if q.name.split("_", 1)[1].isdigit() and (q / "trainer.json").is_file()}


def common_step_checkpoints(runs) -> tuple[int, list[Path]]:
    """The largest step at which every run folder has a checkpoint, and those checkpoints (in the order of ``runs``).

    Runs that share a GPU for the same wall-clock budget reach different steps; evaluating each at the common step
    compares them at equal samples seen (the ablations, bench/ablate_device.sh)."""
    per_run = []
    for r in runs:
        found = checkpoint_steps(r)
        if not found:
            raise CheckpointError(f"{r}: no step_* checkpoints; --same-step needs run folders saved with --ckpt-every")
        per_run.append(found)
    shared = set(per_run[0]).intersection(*per_run[1:])
    if not shared:
        raise CheckpointError("the runs share no checkpoint step: save them with the same --ckpt-every "
                              f"(steps per run: {[sorted(f)[-3:] for f in per_run]})")
    step = max(shared)
    return step, [f[step] for f in per_run]


def read_meta(ckpt) -> dict:
    p = Path(ckpt) / "trainer.json"
    if not p.is_file():
        raise CheckpointError(f"{ckpt}: not a training checkpoint (no trainer.json); give a step_* folder or a run folder")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: malformed JSON ({e})") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format {meta.get('format_version')} is not {FORMAT_VERSION}")
    return meta


def load_tensors(ckpt) -> dict[str, torch.Tensor]:
    ckpt = Path(ckpt)
    meta = read_meta(ckpt)
    tensors: dict[str, torch.Tensor] = {}
    for fname in sorted(set(meta["index"].values())):
        f = ckpt / fname
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; the checkpoint is incomplete (copy all tensors-*.safetensors)")
        tensors.update(load_file(str(f)))
    return tensors


def load_checkpoint(ckpt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    rank: int = 0, restore_rng: bool = True) -> dict:
    """Load weights (+ optimiser, + this rank's RNG states) into the given objects; returns trainer.json."""
    ckpt = Path(ckpt)
    meta = read_meta(ckpt)
    tensors = load_tensors(ckpt)
    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    missing = sorted(set(model.state_dict()) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f"{ckpt}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.load_state_dict(state)
    meta["optimizer_restored"] = False
    if optimizer is not None and meta.get("optimizer"):
        _load_optimizer(optimizer, tensors, meta["optimizer"], str(ckpt))
        meta["optimizer_restored"] = True
    rng_file = ckpt / f"rng-rank{rank}.safetensors"
    meta["rng_restored"] = False
    if restore_rng and rng_file.is_file():
        set_rng_state_tensors(load_file(str(rng_file)))
        meta["rng_restored"] = True
    return meta


def checkpoint_size(ckpt) -> int:
    """Bytes of all files of a checkpoint folder."""
    return sum(f.stat().st_size for f in Path(ckpt).iterdir() if f.is_file())
