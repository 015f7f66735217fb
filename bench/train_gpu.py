"""Training throughput of one GPU: the ``paper`` preset, batch 1, 4 inputs at 512², 8 supervision views at 667².

Usage (CUDA machine, repo root): python bench/train_gpu.py [--preset paper] [--steps 30] [--modes eager,compile]
                                 -> table + $OUT/train_gpu.json (or ./out/train_gpu.json)
Goal (issue 5): >= 5 it/s on an H100/H200 (the paper: ~1.3 it/s per A100).

One step = Trainer.train_step: network forward under bf16 autocast (+ Sapiens-width random features for the
paper preset), masking (eq. 13), rendering the 8 supervision views (gsplat when it imports, else torch),
L1 + SSIM loss (+ LPIPS only if its weights exist), backward, grad clipping, Adam. The batch sits on the GPU
(data loading is measured apart: SynthHeads generation is the data helper's bench). Also reported: the
network alone (forward + backward of a dummy loss on the maps) and the render alone (forward + backward),
so the bottleneck is visible. CPU dry run: --device cpu --preset tiny --input-size 32 --target-size 40.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_synthetic import SyntheticHeads  # noqa: E402

from avat3r.data.batch import collate, predict_gaussians  # noqa: E402
from avat3r.train.config import TrainConfig  # noqa: E402
from avat3r.train.trainer import Trainer  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, dev) -> float:
    """Seconds per call (after the caller's warm-up)."""
    sync(dev)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return (time.perf_counter() - t) / n


def run_mode(args, mode: str) -> dict:
    dev = torch.device(args.device)
    from avat3r.model import ModelConfig

    mc = ModelConfig.preset(args.preset)
    cfg = TrainConfig(model_preset=args.preset, out_dir=str(Path(args.out) / f"train_gpu_{mode}"), batch_size=args.batch,
                      input_size=args.input_size, supervision_size=args.target_size, precision=args.precision,
                      compile=mode == "compile", gradient_checkpointing=args.gradient_checkpointing, num_workers=0,
                      lpips_start=0, lpips_weights=args.lpips_weights, log_every=10**9, ckpt_every=0, image_every=0)
    ds = SyntheticHeads(num_samples=args.batch, input_size=args.input_size, target_size=args.target_size,
                        expression_dim=mc.expression_dim, feature_dim=mc.feature_dim, feature_size=args.feature_size)
    tr = Trainer(cfg, dataset=ds, device=args.device, progress=False, tensorboard=False)
    batch = collate([ds[i] for i in range(args.batch)]).to(dev)
    res = {"mode": mode, "params_M": tr.net.num_parameters() / 1e6, "lpips_active": tr.objective.lpips_active(0)}
    for _ in range(args.warmup):
        tr.train_step(batch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sec = timed(lambda: tr.train_step(batch), args.steps, dev)
    res.update(step_ms=sec * 1e3, it_per_s=1.0 / sec)
    if dev.type == "cuda":
        res["peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    gs = predict_gaussians(tr.net, batch)
    res["gaussians"] = int(sum(len(g) for g in gs))

    # the network alone: forward + backward of a dummy loss on the Gaussian maps
    def net_only():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tr.amp):
            maps = tr.net(batch.images, batch.positions, batch.confidence, batch.plucker, batch.expression, batch.features)
        (maps.means.float().mean() + maps.colors.float().mean() + maps.scales.float().mean()).backward()
        tr.optimizer.zero_grad(set_to_none=True)

    # the render alone: forward + backward of the 8 supervision views on fixed Gaussians
    from avat3r.render import render

    g0 = gs[0].detach().to(torch.float32)
    leaves = [t.clone().requires_grad_(True) for t in (g0.means, g0.quats, g0.scales, g0.opacities, g0.colors)]

    def render_only():
        from avat3r.gaussians import Gaussians

        out = render(Gaussians(*leaves), batch.target_cameras[0]).color
        out.mean().backward()

    for name, fn in (("network_fwd_bwd_ms", net_only), ("render_fwd_bwd_ms", render_only)):
        try:
            for _ in range(3):
                fn()
            res[name] = timed(fn, max(3, args.steps // 3), dev) * 1e3
        except Exception as e:  # keep the main number even if a breakdown fails
            res[name] = f"failed: {type(e).__name__}: {e}"[:300]
    try:
        from avat3r.render.api import _pick_backend

        res["render_backend"] = _pick_backend("auto", dev)
    except Exception:
        pass
    tr.close()
    return res


def data_rate(args) -> list[dict]:
    from avat3r.data.sampler import SynthHeadsDataset

    out = []
    for insz, tsz in ((256, 333), (512, 667)):
        try:
            ds = SynthHeadsDataset(length=10**6, split="train", input_size=insz, target_size=tsz, device=args.device)
            for i in range(3):
                ds[i]
            dev = torch.device(args.device)
            n = 12
            sec = timed(lambda it=iter(range(3, 3 + n)): ds[next(it)], n, dev)
            out.append({"input": insz, "target": tsz, "samples_per_s": 1 / sec, "ms_per_sample": sec * 1e3})
        except Exception as e:
            traceback.print_exc()
            out.append({"input": insz, "target": tsz, "error": f"{type(e).__name__}: {e}"[:300]})
        print(json.dumps(out[-1]), flush=True)
    return out


def small_loop(args) -> dict:
    """The real loop (Trainer.fit: SynthHeads generated on the GPU, bf16, Adam) of the small preset."""
    cfg = TrainConfig(model_preset="small", out_dir=str(Path(args.out) / "train_gpu_small"), batch_size=args.small_batch,
                      lr=3e-4, warmup_steps=100, log_every=10, ckpt_every=0, image_every=0, lpips_start=10**9)
    tr = Trainer(cfg, device=args.device, progress=False, tensorboard=False)
    tr.fit(max_steps=5, save_final=False)
    dev = torch.device(args.device)
    sync(dev)
    t = time.perf_counter()
    n = args.small_steps
    tr.fit(max_steps=5 + n, save_final=False)
    sync(dev)
    sec = (time.perf_counter() - t) / n
    r = {"preset": "small", "batch": args.small_batch, "input": cfg.model_config().image_size, "it_per_s": 1 / sec,
         "samples_per_s": args.small_batch / sec, "steps_in_8_min": int(8 * 60 / sec),
         "loss_first": tr.history[0]["loss"], "loss_last": tr.history[-1]["loss"], "params_M": tr.net.num_parameters() / 1e6}
    tr.close()
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--target-size", type=int, default=667)
    p.add_argument("--feature-size", type=int, default=64, help="Sapiens feature map side (1024 input / 16)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--precision", default="auto")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=os.environ.get("OUT", "out"))
    p.add_argument("--no-data", action="store_true", help="skip the SynthHeads generation rate")
    p.add_argument("--no-small", action="store_true", help="skip the small-preset loop on SynthHeads")
    p.add_argument("--small-batch", type=int, default=4)
    p.add_argument("--small-steps", type=int, default=30)
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    info = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "preset": args.preset, "batch": args.batch,
            "input": f"4 x {args.input_size}²", "supervision": f"8 x {args.target_size}²", "goal_it_per_s": 5.0, "modes": []}
    for mode in args.modes.split(","):
        try:
            r = run_mode(args, mode)
        except Exception as e:
            traceback.print_exc()
            r = {"mode": mode, "error": f"{type(e).__name__}: {e}"[:500]}
        info["modes"].append(r)
        print(json.dumps(r), flush=True)
    print(f"\ntraining throughput, {args.preset} preset, batch {args.batch}, {info['input']} in, {info['supervision']} supervised, {info['device']}")
    print(f"{'mode':8s} {'it/s':>7s} {'step ms':>8s} {'net f+b ms':>11s} {'render f+b ms':>14s} {'peak GiB':>9s} {'#gauss':>8s}")
    for r in info["modes"]:
        if "error" in r:
            print(f"{r['mode']:8s} error: {r['error'][:100]}")
            continue
        f = lambda k: f"{r[k]:.1f}" if isinstance(r.get(k), float) else "-"  # noqa: E731
        print(f"{r['mode']:8s} {r['it_per_s']:7.2f} {r['step_ms']:8.1f} {f('network_fwd_bwd_ms'):>11s} "
              f"{f('render_fwd_bwd_ms'):>14s} {f('peak_mem_GiB'):>9s} {r['gaussians']:8d}")
    if not args.no_data:
        info["synthheads_generation"] = data_rate(args)
    if not args.no_small:
        try:
            info["small_loop"] = small_loop(args)
        except Exception as e:
            traceback.print_exc()
            info["small_loop"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        print("small preset, full loop on SynthHeads:", json.dumps(info["small_loop"]), flush=True)
    out = Path(args.out) / "train_gpu.json"
    out.write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
