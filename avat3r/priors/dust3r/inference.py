"""Pairwise DUSt3R inference over V views (the input of the global alignment).

Scene graphs: ``complete`` = all ordered pairs (i, j), i != j (DUSt3R's ``complete`` graph, symmetrised);
``star`` = (0, j) and (j, 0); ``half`` = (i, j) with i < j only (one direction, half the cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import Dust3rNet

__all__ = ["PairPredictions", "make_pairs", "pairwise_inference"]


@dataclass
class PairPredictions:
    """E edges (i, j). pts_i [E, h, w, 3]: view i's points in camera i's frame; pts_j [E, h, w, 3]: view j's
    points in camera i's frame; conf_i, conf_j [E, h, w]: DUSt3R confidences (>= 1)."""

    edges: list[tuple[int, int]]
    pts_i: torch.Tensor
    pts_j: torch.Tensor
    conf_i: torch.Tensor
    conf_j: torch.Tensor


def make_pairs(n: int, graph: str = "complete") -> list[tuple[int, int]]:
    if n < 2:
        raise ValueError(f"DUSt3R needs at least 2 views, got {n}")
    if graph == "complete":
        return [(i, j) for i in range(n) for j in range(n) if i != j]
    if graph == "half":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    if graph == "star":
        return [e for j in range(1, n) for e in ((0, j), (j, 0))]
    raise ValueError(f"unknown scene graph {graph!r}; use 'complete', 'half' or 'star'")


@torch.no_grad()
def pairwise_inference(model: Dust3rNet, images: torch.Tensor, edges: list[tuple[int, int]], batch_size: int = 8,
                       amp: bool = False) -> PairPredictions:
    """images [V, 3, h, w] in [-1, 1] -> predictions for every edge, batched ``batch_size`` pairs at a time.
    ``amp``: bf16 autocast for the transformer on CUDA (the heads always run in fp32)."""
    dev = next(model.parameters()).device
    images = images.to(dev, next(model.parameters()).dtype)
    outs = []
    for s in range(0, len(edges), batch_size):
        chunk = edges[s: s + batch_size]
        a = images[[i for i, _ in chunk]]
        b = images[[j for _, j in chunk]]
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
            r1, r2 = model(a, b)
        outs.append((r1["pts3d"].float(), r2["pts3d_in_other_view"].float(), r1["conf"].float(), r2["conf"].float()))
    cat = [torch.cat([o[k] for o in outs]) for k in range(4)]
    return PairPredictions(list(edges), *cat)
