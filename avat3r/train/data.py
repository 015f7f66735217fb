"""Fixed pools of training samples: materialise N samples of a dataset once, serve them cyclically, and store
them as safetensors (+ JSON) so that other processes (DDP workers, later runs) reuse them without regenerating.

Uses: over-fitting / smoke-test runs, the tests (SynthHeads samples cost seconds each on a CPU), and
precomputed data in general (the paper precomputes its DUSt3R / Sapiens maps). No pickle: cameras are
stored as their four tensors, ints/strings in the JSON header.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..cameras import Cameras
from ..errors import FormatError

__all__ = ["SamplePool", "save_samples", "load_samples"]

_CAM_FIELDS = ("K", "world_to_cam", "width", "height")


class SamplePool(torch.utils.data.Dataset):
    """``length`` items cycling over ``samples`` (item i = samples[i % n]). Carries the expression space
    (``expression_names`` / ``expression_presets``) of the data it came from, when known."""

    def __init__(self, samples: list[dict], length: int | None = None, expression_names=None, expression_presets=None):
        if not samples:
            raise FormatError("SamplePool needs at least one sample")
        self.samples = samples
        self.length = int(length or len(samples))
        self.expression_names = expression_names
        self.expression_presets = expression_presets

    @classmethod
    def from_dataset(cls, dataset, n: int, length: int | None = None, indices=None) -> "SamplePool":
        from .trainer import expression_space_overrides

        idx = list(indices) if indices is not None else list(range(n))
        es = expression_space_overrides(dataset)
        return cls([dataset[i] for i in idx], length, es.get("expression_names"), es.get("expression_presets"))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(i)
        return self.samples[i % len(self.samples)]

    def save(self, path) -> Path:
        return save_samples(path, self.samples, {"expression_names": self.expression_names,
                                                 "expression_presets": _jsonable(self.expression_presets)})

    @classmethod
    def load(cls, path, length: int | None = None) -> "SamplePool":
        samples, meta = load_samples(path)
        return cls(samples, length, meta.get("expression_names"), meta.get("expression_presets"))


def _jsonable(d):
    if d is None:
        return None
    return {k: [float(x) for x in torch.as_tensor(v).reshape(-1).tolist()] for k, v in d.items()}


def save_samples(path, samples: list[dict], meta: dict | None = None) -> Path:
    """Write samples (tensors, Cameras, ints/floats/strings) to one .safetensors file (atomic)."""
    tensors, scalars = {}, {}
    for i, s in enumerate(samples):
        for k, v in s.items():
            if isinstance(v, Cameras):
                for f in _CAM_FIELDS:
                    tensors[f"{i}/{k}/@cam/{f}"] = getattr(v, f).detach().cpu().contiguous()
            elif isinstance(v, torch.Tensor):
                tensors[f"{i}/{k}"] = v.detach().cpu().contiguous()
            elif isinstance(v, (int, float, str, bool)) or v is None:
                scalars[f"{i}/{k}"] = v
            else:
                raise FormatError(f"save_samples: sample {i} field {k!r} has unsupported type {type(v).__name__}")
    header = {"count": str(len(samples)), "scalars": json.dumps(scalars), "meta": json.dumps(meta or {})}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def load_samples(path) -> tuple[list[dict], dict]:
    """Inverse of ``save_samples`` -> (samples, meta)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: sample pool file not found")
    with safe_open(str(path), "pt") as f:
        header = f.metadata() or {}
    if "count" not in header:
        raise FormatError(f"{path}: not a sample pool (no 'count' in the safetensors header)")
    samples: list[dict] = [{} for _ in range(int(header["count"]))]
    cams: dict[tuple[int, str], dict] = {}
    for name, t in load_file(str(path)).items():
        i, rest = name.split("/", 1)
        if "/@cam/" in rest:
            k, f = rest.split("/@cam/")
            cams.setdefault((int(i), k), {})[f] = t
        else:
            samples[int(i)][rest] = t
    for (i, k), c in cams.items():
        samples[i][k] = Cameras(c["K"], c["world_to_cam"], c["width"], c["height"])
    for name, v in json.loads(header.get("scalars", "{}")).items():
        i, k = name.split("/", 1)
        samples[int(i)][k] = v
    return samples, json.loads(header.get("meta", "{}"))
