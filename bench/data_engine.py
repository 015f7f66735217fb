"""The SynthHeads data engine on one GPU: samples/s, the stage-by-stage split, the old per-sample path, and
whether training stays network-bound (issue #15 item 1).

    python bench/data_engine.py                                  # CUDA: everything below
    python bench/data_engine.py --device cpu --runs tiny/off --seconds 3 --no-train --workers 0   # CPU dry run

* throughput: ``DataEngine.iterate`` as the trainer drives it (batch 4 per step, chunks of 8 steps, a pool of 32
  identities turning over every 256 samples, rigs and draws built by CPU worker processes), after a warm-up;
  at the ``small`` preset's sizes (4 x 256² inputs + 8 x 334² supervision views) and the paper's (512² + 667²),
  with the augmentations off and on ("real" preset); visual-hull prior included.
* stages: the same with ``engine.profile`` (the device is synchronised between stages; per sample).
* old path: ``SynthHeadsSampler.sample`` one sample at a time on the GPU (rig cached), for comparison.
* training: the ``small`` model's step (batch 4, bf16) on one fixed batch, and fed by the engine (foreground and
  background thread); network-bound means the fed step within 20 % of the fixed-batch step.

Writes $OUT/data_engine.json (or ./out/data_engine.json; --json NAME) after every measurement and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avat3r.data.engine import DataEngine, EngineConfig  # noqa: E402
from avat3r.data.sampler import SynthHeadsSampler  # noqa: E402

SIZES = {"small": (256, 334), "paper": (512, 667), "tiny": (32, 40)}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def make_engine(a, size: str, augment: str) -> DataEngine:
    i, t = SIZES[size]
    s = SynthHeadsSampler(input_size=i, target_size=t, num_inputs=4, num_targets=8, device=a.device, augment=augment,
                          seed=11)
    return DataEngine(s, EngineConfig(pool_size=a.pool, identity_uses=256, chunk_steps=a.chunk, workers=a.workers))


def throughput(a, e: DataEngine, background: bool = False) -> dict:
    dev = e.device
    B = a.batch
    it = e.iterate(lambda st: [(st * B + k, st * B + k) for k in range(B)], 0, 10**9, background=background)
    t0 = time.perf_counter()
    for _ in range(2 * a.chunk):  # warm-up: the pool's first rigs, gsplat's first calls
        next(it)
    sync(dev)
    warm_s = time.perf_counter() - t0
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < a.seconds:
        for _ in range(a.chunk):
            n += len(next(it))
    sync(dev)
    dt = time.perf_counter() - t0
    it.close()
    return {"samples_per_s": n / dt, "samples": n, "seconds": dt, "warmup_s": warm_s}


def stages(a, e: DataEngine, chunks: int = 3) -> dict:
    B = a.batch
    e.profile, e.timings = True, {}
    items = [[(10**6 + c * 1000 + k, 10**5 + c * a.chunk * B + k) for k in range(a.chunk * B)] for c in range(chunks + 1)]
    e.make(items[0])  # warm (rigs of these positions)
    e.timings = {}
    for c in range(1, chunks + 1):
        e.make(items[c])
    n = chunks * a.chunk * B
    e.profile = False
    out = {k: 1000 * v / n for k, v in e.timings.items()}
    out["total"] = sum(out.values())
    return out


def old_path(a, size: str, n: int = 5) -> dict:
    i, t = SIZES[size]
    s = SynthHeadsSampler(input_size=i, target_size=t, num_inputs=4, num_targets=8, device=a.device, identities=(7, 8),
                          split="train", seed=11)
    for k in range(2):
        s.sample(k)  # builds and caches both rigs
    ts = []
    for k in range(n):
        sync(s.device)
        t0 = time.perf_counter()
        s.sample(2 + k)
        sync(s.device)
        ts.append(time.perf_counter() - t0)
    return {"ms_per_sample": 1000 * statistics.median(ts)}


def train_check(a, size: str, augment: str) -> dict:
    from avat3r.train.config import TrainConfig
    from avat3r.train.trainer import Trainer

    i, t = SIZES[size]
    cfg = TrainConfig(model_preset="small" if size != "tiny" else "tiny", batch_size=a.batch, input_size=i,
                      supervision_size=t, data_engine="on", out_dir="/tmp/avat3r_bench_train", log_every=10**9,
                      ckpt_every=0, image_every=0, seed=5,
                      data_options={"augment": augment, "engine": {"pool_size": a.pool, "chunk_steps": a.chunk,
                                                                   "workers": a.workers}})
    tr = Trainer(cfg, device=a.device, progress=False, tensorboard=False)
    dev = tr.device
    res = {}
    try:
        tr.cfg.data_engine_background = False  # no data thread while the fixed batch is timed
        loader = tr._loader(0, 10**6)
        batch = next(loader)
        loader.close()
        for _ in range(5):
            tr.train_step(batch)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(a.train_steps):
            tr.train_step(batch)
        sync(dev)
        res["fixed_batch_ms"] = 1000 * (time.perf_counter() - t0) / a.train_steps
        for bg in (False, True):
            tr.cfg.data_engine_background = bg
            start = tr.step
            loader = tr._loader(start, start + 10**6)
            for _ in range(2 * a.chunk):  # warm-up (pool rigs, thread start)
                tr.train_step(next(loader))
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(a.train_steps):
                tr.train_step(next(loader))
            sync(dev)
            res["engine_background_ms" if bg else "engine_foreground_ms"] = 1000 * (time.perf_counter() - t0) / a.train_steps
            loader.close()
        res["overhead_background"] = res["engine_background_ms"] / res["fixed_batch_ms"] - 1
        res["overhead_foreground"] = res["engine_foreground_ms"] / res["fixed_batch_ms"] - 1
        res["samples_per_s_background"] = 1000 * a.batch / res["engine_background_ms"]
    finally:
        tr.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", default="small/off,small/real,paper/off,paper/real", help="size/augment pairs")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--no-old", action="store_true")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--json", default="data_engine.json", help="result file name under --out")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    a = ap.parse_args()
    dev = torch.device(a.device)
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "cpu_cores": os.cpu_count(),
           "batch": a.batch, "chunk_steps": a.chunk, "pool": a.pool, "command": " ".join(sys.argv), "runs": {}}
    sizes = list(dict.fromkeys(r.split("/")[0] for r in a.runs.split(",")))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    save = lambda: Path(a.out, a.json).write_text(json.dumps(res, indent=1))  # noqa: E731  after every measurement
    for size in ([] if a.train_only else sizes):
        for augment in [r.split("/")[1] for r in a.runs.split(",") if r.split("/")[0] == size]:
            key = f"{size}/{augment}"
            try:
                e = make_engine(a, size, augment)
                r = throughput(a, e)
                r["stages_ms_per_sample"] = stages(a, e)
                e.close()
                del e
            except Exception as ex:  # keep the other measurements
                r = {"error": f"{type(ex).__name__}: {ex}", "trace": traceback.format_exc()[-2000:]}
            res["runs"][key] = r
            save()
            print(key, json.dumps(r), flush=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if not a.no_old:
            try:
                res["runs"][f"{size}/old_per_sample"] = old_path(a, size)
            except Exception as ex:
                res["runs"][f"{size}/old_per_sample"] = {"error": f"{type(ex).__name__}: {ex}"}
            print(size, "old", res["runs"][f"{size}/old_per_sample"], flush=True)
    if not a.no_train:
        size = "small" if "small" in sizes else sizes[0]
        try:
            res["train"] = train_check(a, size, "real")
        except Exception as ex:
            res["train"] = {"error": f"{type(ex).__name__}: {ex}", "trace": traceback.format_exc()[-2000:]}
        print("train", json.dumps(res["train"]), flush=True)
    if dev.type == "cuda":
        res["max_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    save()
    print("\n| sizes / augment | samples/s | pose | render in | render tgt | augment | prior | total ms/sample |")
    print("|---|---|---|---|---|---|---|---|")
    for k, r in res["runs"].items():
        st = r.get("stages_ms_per_sample")
        if st:
            aug = st.get("augment_lighting", 0) + st.get("augment_inputs", 0)
            print(f"| {k} | {r['samples_per_s']:.0f} | {st.get('pose', 0):.2f} | {st.get('render_inputs', 0):.2f} | "
                  f"{st.get('render_targets', 0):.2f} | {aug:.2f} | {st.get('prior', 0):.2f} | {st['total']:.2f} |")


if __name__ == "__main__":
    main()
