"""Data-parallel training (DDP, gloo backend on CPU): 2 processes x batch 1 give the same losses as 1 process x
batch 2 (the same global batch, the same samples), with torch.multiprocessing spawning the ranks the way
torchrun would (RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import TINY, tiny_pool  # noqa: E402

from avat3r.train.config import TrainConfig  # noqa: E402
from avat3r.train.data import SamplePool  # noqa: E402

STEPS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, batch: int, port: int, pool: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from avat3r.train.distributed import cleanup
    from avat3r.train.trainer import Trainer

    cfg = TrainConfig.from_run("full", out_dir=out, **{**TINY, "batch_size": batch, "lr": 1e-3})
    tr = Trainer(cfg, dataset=SamplePool.load(pool, length=64), device="cpu", progress=False, tensorboard=False)
    tr.fit(max_steps=STEPS, save_final=False)
    if rank == 0:
        Path(out, "losses.json").write_text(json.dumps([h["loss"] for h in tr.history]))
    cleanup()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_processes_match_one(tmp_path, tmp_path_factory):
    pool = str(tiny_pool(tmp_path_factory.getbasetemp()))
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    mp.spawn(_run, args=(2, 1, _free_port(), pool, str(ddp)), nprocs=2, join=True)
    _run(0, 1, 2, _free_port(), pool, str(single))  # one process, batch 2: no process group
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(k, None)
    l2 = json.loads((ddp / "losses.json").read_text())
    l1 = json.loads((single / "losses.json").read_text())
    assert len(l1) == len(l2) == STEPS
    # the second step also checks that the averaged gradients (one optimiser step) agree
    assert l2 == pytest.approx(l1, rel=1e-5, abs=1e-7), (l1, l2)
