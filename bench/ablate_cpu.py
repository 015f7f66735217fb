"""A CPU pilot of the ablations (paper Tables 2-3): the `tiny` preset at 64², trained on fixed pools of SynthHeads
samples, every run for the same number of steps, then evaluated by ``avat3r eval --runs`` on the hold-out set.

This is a small-budget stand-in that any CPU machine reproduces: one training step takes ~0.6 s on one core (the
PyTorch rasteriser's backward dominates), so 3000 steps are ~30 min per run and two pools of 800 samples ~9 min
(2 cores: runs go two at a time). The `small`-preset ablations on GPUs are
``PHASE=ablate bash bench/train_device.sh``. Two pools are made once (inconsistent inputs, and consistent inputs
for the "w/o rand. timesteps" run), in parallel, then the runs train two at a time.

    python bench/ablate_cpu.py --out runs/ablate_cpu --steps 1500 --pool 600
    # -> runs/ablate_cpu/<run>/ (checkpoints), docs/eval/ablations_cpu.{md,json} with --tables docs/eval
    python bench/ablate_cpu.py --out runs/expr_cpu --steps 1500 --pool 300 --runs full expr_weight
    # the expression-region loss weight (lambda_expression = 5) against the recipe; then
    # python bench/expression_effect.py --checkpoint runs/expr_cpu/<run> for the response
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RUNS = ("full", "no_pos_skip", "no_col_skip", "no_prior", "consistent_inputs", "interleaved")
#: runs beyond the paper's tables: (named run, TrainConfig overrides)
EXTRA_RUNS = {"expr_weight": ("full", {"lambda_expression": 5.0, "run": "expr_weight"})}
COMMON = dict(model_preset="tiny", input_size=64, supervision_size=48, num_supervision=4, batch_size=4,
              lr=1e-3, warmup_steps=100, num_workers=0, log_every=50, image_every=0, lambda_lpips=0.0, seed=0,
              checkpoint_format="weights", ckpt_every=0)


def make_pool(path: str, n: int, consistent: bool, regions: bool = False) -> str:
    import torch

    torch.set_num_threads(1)
    from avat3r.train.config import TrainConfig
    from avat3r.train.data import SamplePool
    from avat3r.train.trainer import build_dataset

    if Path(path).is_file():
        return path
    cfg = TrainConfig.from_run("consistent_inputs" if consistent else "full", **COMMON,
                               data_options={"expression_region": regions})  # the regions change no other tensor
    ds = build_dataset(cfg, "train", length=n)
    t0 = time.time()
    SamplePool.from_dataset(ds, n).save(path)
    print(f"pool {path}: {n} samples in {time.time() - t0:.0f} s", flush=True)
    return path


def train_run(name: str, pool: str, out: str, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from avat3r.train.config import TrainConfig
    from avat3r.train.data import SamplePool
    from avat3r.train.trainer import Trainer

    base, extra = EXTRA_RUNS.get(name, (name, {}))
    cfg = TrainConfig.from_run(base, out_dir=out, **COMMON, **extra)
    tr = Trainer(cfg, dataset=SamplePool.load(pool, length=steps * cfg.batch_size), progress=False, tensorboard=False)
    t0 = time.time()
    s = tr.fit(max_steps=steps)
    tr.close()
    print(f"{name}: {steps} steps in {time.time() - t0:.0f} s, last loss {s['last'].get('loss', float('nan')):.4f}", flush=True)
    return {"run": name, "seconds": time.time() - t0, "last": s["last"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/ablate_cpu")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--pool", type=int, default=600, help="samples per pool")
    p.add_argument("--runs", nargs="*", default=list(RUNS), help=f"of {RUNS + tuple(EXTRA_RUNS)}")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--tables", default=None, help="write ablations_cpu.{md,json} here (default: the out folder)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as ex:
        regions = any(EXTRA_RUNS.get(r, ("", {}))[1].get("lambda_expression", 0) > 0 for r in args.runs)
        kinds = [False] + ([True] if "consistent_inputs" in args.runs else [])
        pools = {c: ex.submit(make_pool, str(out / f"pool_{'consistent' if c else 'random'}_{args.pool}"
                                             f"{'_regions' if regions else ''}.safetensors"), args.pool, c, regions)
                 for c in kinds}
        pools = {c: f.result() for c, f in pools.items()}
        futs = [ex.submit(train_run, r, pools[r == "consistent_inputs"], str(out / r), args.steps) for r in args.runs]
        logs = [f.result() for f in futs]
    (out / "train_summary.json").write_text(json.dumps(logs, indent=1) + "\n")
    tables = Path(args.tables or out)
    cmd = [sys.executable, "-m", "avat3r.eval", "--runs", *[str(out / r) for r in args.runs], "--no-faces",
           "--num-samples", "12", "--video-frames", "12", "--video-identities", "2", "--device", "cpu",
           "--out", str(out / "eval"), "--quiet"]
    rc = subprocess.call(cmd)
    if rc == 0:
        tables.mkdir(parents=True, exist_ok=True)
        for ext in ("md", "json"):
            (tables / f"ablations_cpu.{ext}").write_text((out / "eval" / f"ablations.{ext}").read_text())
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
