"""Where a GGHead training step spends its time in the networks (no renderer needed): the `small` generator's
forward + backward, the discriminator's forward + backward on a real+fake batch, and one lazy-R1 step (gradient
penalty: double backward), each in fp32/TF32 and bf16 autocast, with the resampling filter (upfirdn2d) as the
default autograd Function ("function": every derivative a depthwise forward conv), a plain depthwise grouped conv
("depthwise": PyTorch runs its double backward one conv per group) or one single-channel conv over B*C images
("batched"); the first call's time (cuDNN without autotuning).

    python bench/gghead_nets.py [--batch 64] [--iters 10] [--fir function,depthwise] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def _time(fn, dev, iters: int) -> tuple[float, float]:
    """(first call s, median of iters ms) of fn()."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t) * 1000)
    return round(first, 2), round(sorted(ts)[len(ts) // 2], 2)


def run(batch: int = 64, iters: int = 10, device: str | None = None, preset_name: str = "small",
        firs=("function", "depthwise")) -> dict:
    from avat3r.generate import GGHeadGenerator, layers, preset
    from avat3r.generate.discriminator import Discriminator

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cfg = preset(preset_name)
    R = cfg.image_resolution
    G = GGHeadGenerator(cfg).to(dev).train()
    D = Discriminator(cfg.c_dim, R).to(dev).train()
    z = torch.randn(batch, cfg.z_dim, device=dev)
    c = G.canonical_label(dev).expand(batch, -1).contiguous()
    img = torch.randn(2 * batch, 4, R, R, device=dev)
    c2 = torch.cat([c, c])
    res = {"device": str(dev), "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None, "batch": batch}
    for fir, amp in [(f, a) for f in firs for a in ("off", "bf16")]:
        layers._FIR = getattr(layers, f"_fir_{fir}")
        ac = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp == "bf16")  # noqa: E731

        def g_step():
            ws = G.mapping(z, c)
            with ac():
                maps = G.uv_maps(ws, noise_mode="random")
            o = G.attributes(maps.float())
            (o["position"].square().mean() + o["color"].square().mean()).backward()

        def d_step():
            with ac():
                loss = F.softplus(D(img, c2).float()).mean()
            loss.backward()

        def r1_step():
            x = img[batch:].detach().requires_grad_(True)
            with ac():
                logits = D(x, c).float()
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            (g.float().square().sum(dim=[1, 2, 3]).mean() + F.softplus(-logits).mean()).backward()

        for name, fn in (("G_fwd_bwd", g_step), ("D_fwd_bwd_2B", d_step), ("D_R1_step", r1_step)):
            first, ms = _time(fn, dev, iters)
            res[f"{name}_{amp}_{fir}"] = {"first_s": first, "median_ms": ms}
            print(json.dumps({f"{name}_{amp}_{fir}": res[f"{name}_{amp}_{fir}"]}), flush=True)
    layers._FIR = layers._fir_function
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default=None)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--fir", default="function,depthwise", help="filter forms to compare: function, depthwise, batched")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    res = run(a.batch, a.iters, a.device, a.preset, tuple(a.fir.split(",")))
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
