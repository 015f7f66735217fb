"""Multi-GPU / multi-node training through torch.distributed (DDP), launched by ``torchrun``.

The same command runs on 1 to N GPUs: without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, ...) everything is a single process; with it, one process per GPU joins a process group (NCCL on
CUDA, gloo on CPU). Multi-node uses torchrun's rendezvous (``--nnodes``, ``--rdzv-backend=c10d``,
``--rdzv-endpoint=host:port``); nothing here is node-specific.

Data sharding is by rank (see ``sample_index``): global sample ``g`` of step ``s`` is
``s * world_size * batch_size + g`` and rank ``r`` takes ``g in [r*B, (r+1)*B)``. So a run with
``world_size x batch_size`` fixed sees the same samples whatever the number of processes, and a resumed run
continues with exactly the samples an uninterrupted run would have seen.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup", "barrier", "all_reduce_mean", "broadcast_bool", "sample_index"]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local) if device in ("auto", "cuda") else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        kw = {"device_id": dev} if use_cuda else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kw)
    return DistInfo(rank, world, local, dev)


def cleanup() -> None:
    """Leave the process group. All ranks meet first: a rank tearing gloo down while its peer still talks to it
    can abort the peer ("terminate called without an active exception", seen once in CI on CPU)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over all ranks (returns a new tensor; a no-op copy for one process)."""
    t = t.detach().clone()
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def broadcast_bool(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision for everyone (e.g. 'the time budget is spent: stop now')."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def sample_index(step: int, rank: int, i: int, batch_size: int, world_size: int, num_samples: int, seed: int) -> int:
    """Dataset index of item ``i`` of rank ``rank`` at ``step``: epochs are seeded permutations of the dataset."""
    g = step * world_size * batch_size + rank * batch_size + i
    epoch, pos = divmod(g, num_samples)
    return int(_permutation(seed, epoch, num_samples)[pos])


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)
