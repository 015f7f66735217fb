"""Multi-GPU training through torchrun + DDP: loss agreement and throughput scaling (issue 5).

Usage (repo root, a machine with >= 2 GPUs): python bench/train_ddp.py [--gpus 2] [--preset paper] [--steps 30]
    -> table + $OUT/train_ddp.json (or ./out)

Three runs of the real trainer (``Trainer.fit``: DataLoader, DDP, bf16, Adam) on the synthetic sphere dataset
(bench/train_synthetic.py), each launched as ``torchrun --standalone --nproc_per_node=K bench/train_ddp.py --worker``:
  a) 1 GPU,  batch 1      -> throughput base (samples/s)
  b) K GPUs, batch 1 each -> throughput (goal: >= 0.9 K x base, i.e. >= 1.8x on 2 GPUs)
  c) 1 GPU,  batch K      -> the same global batch as (b): per-step losses must agree with (b)
Warm-up steps run first (not timed); the losses of all steps are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def worker(args) -> None:
    from train_synthetic import SyntheticHeads

    from avat3r.model import ModelConfig
    from avat3r.train.config import TrainConfig
    from avat3r.train.distributed import cleanup
    from avat3r.train.trainer import Trainer

    mc = ModelConfig.preset(args.preset)
    cfg = TrainConfig(model_preset=args.preset, out_dir=args.run_dir, batch_size=args.batch, input_size=args.input_size,
                      supervision_size=args.target_size, num_workers=2, log_every=1, ckpt_every=0, image_every=0,
                      lpips_start=10**9, compile=args.compile, seed=0)
    ds = SyntheticHeads(num_samples=8, input_size=args.input_size, target_size=args.target_size,
                        expression_dim=mc.expression_dim, feature_dim=mc.feature_dim)
    tr = Trainer(cfg, dataset=ds, progress=False, tensorboard=False)
    tr.fit(max_steps=args.warmup, save_final=False)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    s = tr.fit(max_steps=args.warmup + args.steps, save_final=False)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    if tr.info.is_main:
        out = {"world_size": tr.info.world_size, "batch_per_gpu": args.batch, "steps": args.steps, "seconds": dt,
               "it_per_s": args.steps / dt, "samples_per_s": args.steps * args.batch * tr.info.world_size / dt,
               "losses": [h["loss"] for h in tr.history], "summary": {k: v for k, v in s.items() if k != "last"}}
        Path(args.result).write_text(json.dumps(out, indent=1))
    tr.close()
    cleanup()


def launch(args, gpus: int, batch: int, tag: str) -> dict:
    res = Path(args.out) / f"train_ddp_{tag}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", str(Path(__file__).resolve()),
           "--worker", "--preset", args.preset, "--batch", str(batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--input-size", str(args.input_size), "--target-size", str(args.target_size), "--result", str(res),
           "--run-dir", str(Path(args.out) / f"ddp_{tag}")] + (["--compile"] if args.compile else [])
    print("$", " ".join(cmd), flush=True)
    t = time.time()
    rc = subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": "4"})
    if rc != 0 or not res.exists():
        return {"error": f"rc={rc}", "wall_s": time.time() - t}
    return json.loads(res.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--preset", default="paper")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--target-size", type=int, default=667)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", default=os.environ.get("OUT", "out"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    k = args.gpus
    runs = {"1gpu_b1": launch(args, 1, 1, "1gpu_b1"), f"{k}gpu_b1": launch(args, k, 1, f"{k}gpu_b1"),
            f"1gpu_b{k}": launch(args, 1, k, f"1gpu_b{k}")}
    out = {"preset": args.preset, "gpus": k, "runs": runs,
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    a, b, c = runs["1gpu_b1"], runs[f"{k}gpu_b1"], runs[f"1gpu_b{k}"]
    if all("error" not in r for r in (a, b, c)):
        out["scaling"] = b["samples_per_s"] / a["samples_per_s"]
        lb, lc = b["losses"], c["losses"]
        rel = [abs(x - y) / max(abs(y), 1e-8) for x, y in zip(lb, lc)]
        out["loss_max_rel_diff"] = max(rel)
        out["loss_first_steps_rel_diff"] = rel[:5]
        print(f"\n{args.preset} preset, {out['device']}")
        print(f"{'run':10s} {'GPUs':>4s} {'batch/GPU':>9s} {'it/s':>7s} {'samples/s':>10s}")
        for name, r in runs.items():
            print(f"{name:10s} {r['world_size']:4d} {r['batch_per_gpu']:9d} {r['it_per_s']:7.2f} {r['samples_per_s']:10.2f}")
        print(f"throughput scaling {k} GPUs vs 1: {out['scaling']:.2f}x (goal >= {0.9 * k:.1f}x)")
        print(f"losses {k} GPUs x batch 1 vs 1 GPU x batch {k}: max relative difference {out['loss_max_rel_diff']:.2e} "
              f"over {len(rel)} steps (first steps: {[f'{r:.1e}' for r in rel[:5]]})")
    else:
        print("some runs failed:", {n: r.get("error") for n, r in runs.items()})
    (Path(args.out) / "train_ddp.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {Path(args.out) / 'train_ddp.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
