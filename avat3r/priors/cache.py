"""Precomputed priors for training (paper supp. C): position/confidence maps and feature maps, computed once.

DUSt3R and Sapiens are too expensive to run inside the training loop, so (as in the paper) every
(subject, frame, camera) gets ONE position map, computed together with ``partners`` "reasonable partner
views" of the same frame (3 in the paper), and one feature map. Layout (no pickle anywhere)::

    <cache>/
      manifest.json                         {"version", "prior", "features", "partners", "feature_dtype"}
      <subject>/<frame>/<camera>.safetensors
          positions   [H, W, 3] float32    head-centric world, metres (eq. 2)
          confidence  [H, W]    float32    in [0, 1], keep > tau = 0.5 (eq. 13)
          features    [C, h, w] float16    optional (eq. 3), e.g. 1920 x 64 x 64 for Sapiens-2b
          metadata: {"partners": "cam_a,cam_b,cam_c", "prior": ..., "features": ...}

A cache built with one prior refuses to be read or extended with another (the manifest records it).
The trainer reads items with ``PriorCache.read(subject, frame, camera)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..capture import Capture
from ..errors import FormatError, InputError

__all__ = ["PriorCache", "partner_views", "precompute"]

VERSION = 1


def partner_views(cameras_centers: torch.Tensor, view: int, k: int = 3, max_angle_deg: float = 100.0) -> list[int]:
    """k partner views for ``view``: spread out (farthest-point sampling of viewing directions) among the cameras
    within ``max_angle_deg`` of it, so the pair graph has overlap and baseline. centers [N, 3] (head at the origin)."""
    dirs = torch.nn.functional.normalize(cameras_centers.float(), dim=-1)
    cos = dirs @ dirs[view]
    near = [int(i) for i in torch.nonzero(cos >= np.cos(np.radians(max_angle_deg))).reshape(-1) if int(i) != view]
    if len(near) < k:  # too few within the cone: take the closest ones
        order = [int(i) for i in torch.argsort(-cos) if int(i) != view]
        return order[:k]
    chosen = [view]
    dist = (dirs[near] - dirs[view]).norm(dim=-1)
    for _ in range(k):
        nxt = int(torch.argmax(dist))
        chosen.append(near[nxt])
        dist = torch.minimum(dist, (dirs[near] - dirs[near[nxt]]).norm(dim=-1))
    return chosen[1:]


def _atomic_save(tensors: dict, path: Path, metadata: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class PriorCache:
    """A cache folder for one (position prior, feature backbone) combination."""

    root: Path
    prior: str
    features: str | None = None
    partners: int = 3
    feature_dtype: str = "float16"

    def __post_init__(self):
        self.root = Path(self.root)
        man = self.root / "manifest.json"
        want = {"version": VERSION, "prior": self.prior, "features": self.features, "partners": self.partners,
                "feature_dtype": self.feature_dtype}
        if man.is_file():
            try:
                have = json.loads(man.read_text())
            except json.JSONDecodeError as e:
                raise FormatError(f"{man}: not valid JSON ({e}); delete the cache folder to rebuild it") from e
            for k in ("version", "prior", "features"):
                if have.get(k) != want[k]:
                    raise FormatError(
                        f"{man}: this cache was built with {k}={have.get(k)!r}, not {want[k]!r}; use another cache folder "
                        "or delete it to rebuild"
                    )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(want, f, indent=1)
            os.replace(tmp, man)

    def path(self, subject: str, frame: str, camera: str) -> Path:
        return self.root / str(subject) / str(frame) / f"{camera}.safetensors"

    def has(self, subject: str, frame: str, camera: str) -> bool:
        return self.path(subject, frame, camera).is_file()

    def write(self, subject, frame, camera, positions, confidence, features=None, partners: Iterable[str] = ()) -> Path:
        """positions [H, W, 3], confidence [H, W], features [C, h, w] or None (numpy or torch, any device)."""
        t = {"positions": torch.as_tensor(positions).detach().to("cpu", torch.float32),
             "confidence": torch.as_tensor(confidence).detach().to("cpu", torch.float32)}
        if t["positions"].ndim != 3 or t["positions"].shape[-1] != 3 or t["confidence"].shape != t["positions"].shape[:2]:
            raise InputError(f"cache write: positions must be [H, W, 3] and confidence [H, W], got "
                             f"{tuple(t['positions'].shape)} and {tuple(t['confidence'].shape)}")
        if features is not None:
            t["features"] = torch.as_tensor(features).to(getattr(torch, self.feature_dtype)).cpu()
        p = self.path(subject, frame, camera)
        _atomic_save(t, p, {"partners": ",".join(map(str, partners)), "prior": self.prior, "features": str(self.features)})
        return p

    def read(self, subject, frame, camera) -> dict[str, torch.Tensor]:
        """-> {'positions' [H,W,3] f32, 'confidence' [H,W] f32, 'features' [C,h,w] f32 (if cached)}."""
        p = self.path(subject, frame, camera)
        if not p.is_file():
            raise InputError(f"{p}: not in the prior cache; run avat3r.priors.cache.precompute for this dataset first")
        try:
            t = load_file(str(p))
        except Exception as e:  # noqa: BLE001 - corrupt / truncated entries
            raise FormatError(f"{p}: unreadable cache entry ({e}); delete it and precompute again") from e
        if "features" in t:
            t["features"] = t["features"].float()
        return t


def precompute(items: Iterable[tuple[str, str, Capture]], cache: PriorCache, prior: Callable[[Capture], object],
               features: Callable | None = None, *, overwrite: bool = False, progress: bool = False) -> int:
    """Fill ``cache`` for every (subject, frame, capture of all cameras of that frame).

    For each camera v: run ``prior`` on [v] + partner_views(v) and keep view v's maps; ``features`` (if given)
    runs once per capture on the missing views. Camera names are ``capture.names``. Returns entries written."""
    n = 0
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="priors")
    for subject, frame, cap in it:
        todo = [i for i, name in enumerate(cap.names) if overwrite or not cache.has(subject, frame, name)]
        if not todo:
            continue
        feats = None
        if features is not None:
            feats = torch.as_tensor(features(cap.images[todo])).cpu()
        centers = cap.cameras.centers
        for slot, v in enumerate(todo):
            group = [v] + (partner_views(centers, v, min(cache.partners, len(cap) - 1)) if len(cap) > 1 else [])
            out = prior(cap.subset(group))
            cache.write(subject, frame, cap.names[v], out.positions[0], out.confidence[0],
                        None if feats is None else feats[slot], [cap.names[g] for g in group[1:]])
            n += 1
    return n
