"""Can the GGHead representation hold a SynthHeads head? Fit one identity directly: the per-Gaussian raw attributes
of a preset (no network), through GGHead's activations (GGHeadGenerator.attributes on a 1-texel-wide 'map') and the
raw-scale regulariser, to random views of the head; prints the L1 and writes the fit beside the real head
(4 contact-sheet views). CPU, one core: ~0.5 s a step at 96^2 for the small preset (docs/GGHEAD.md, session 6).

    python bench/gghead_fit.py --identity 7 --steps 150 --out /tmp/fit.png [--scale-offset -5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv=None) -> int:
    from PIL import Image

    from avat3r.data.synthheads import build_head, sample_identity
    from avat3r.generate import GGHeadGenerator, preset
    from avat3r.generate.train import TrainConfig, _to_d, sample_cameras, view_cameras
    from avat3r.render import render

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--identity", type=int, default=7)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--scale-offset", type=float, default=None, help="override the preset's scale_offset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="gghead_fit.png")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = preset(a.preset, **({} if a.scale_offset is None else {"scale_offset": a.scale_offset}))
    G = GGHeadGenerator(cfg).eval().requires_grad_(False)
    head = build_head(sample_identity(a.identity))
    gen = torch.Generator().manual_seed(0)
    tc = TrainConfig()
    cams = sample_cameras(a.views, a.size, gen, tc)
    bg = torch.tensor(cfg.background, dtype=torch.float32)
    with torch.no_grad():
        r = render(head, cams, background=bg)
        target = _to_d(r.color, r.alpha)
    n = G.template_points.shape[-2]
    # raw maps of width 1 at the template's own UV sites: attributes() then samples exactly these values
    raw = torch.zeros(1, cfg.n_uv_channels, n, 1, requires_grad=True)
    G.template_uv = G.template_uv.clone()
    G.template_uv[..., 0] = 0.0                                        # x: the single column
    G.template_uv[..., 1] = ((torch.arange(n) + 0.5) / n * 2 - 1).reshape(1, n, 1)  # y: texel i
    opt = torch.optim.Adam([raw], lr=a.lr)
    t0 = time.time()
    for it in range(a.steps):
        o = G.attributes(raw)
        idx = torch.randint(a.views, (3,), generator=gen).tolist()
        loss = sum((_to_d(*G.render(o, cams[j:j + 1], index=0)) - target[j:j + 1]).abs().mean() for j in idx) / 3
        reg = o["raw_scale"].norm(dim=-1).mean()
        opt.zero_grad()
        (loss + tc.lambda_raw_scale * reg).backward()
        opt.step()
        if it % 25 == 0 or it == a.steps - 1:
            mm = float(o["scale"].exp().mean() * cfg.world_scale * 1000)
            print(f"step {it} L1 {float(loss):.4f} raw-scale norm {float(reg):.3f} mean scale {mm:.2f} mm "
                  f"{time.time() - t0:.0f} s", flush=True)
    with torch.no_grad():
        vc = view_cameras(128)
        fit, _ = G.render(G.attributes(raw), vc, index=0)
        real = render(head, vc, background=bg).color
        img = torch.cat([torch.cat(list(fit), 1), torch.cat(list(real), 1)], 0)
    Image.fromarray((img.clamp(0, 1).numpy() * 255).astype(np.uint8)).save(a.out)
    print(f"wrote {a.out} (top: the fit, bottom: the head)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
