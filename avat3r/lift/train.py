"""Train the lift encoder (image -> w+) on the generator's own samples and on SynthHeads renders.

    python -m avat3r.lift.train --generator weights/gghead --out runs/lift --seconds 300 [--device cuda]

Each step (GOAE's supervision where the latent is known, sec. 3 of GOAE):
- generator samples: z ~ N(0, I), truncation psi ~ U(0.5, 1) -> true ws; render a random view (|azimuth| <= 60 deg);
  the encoder sees that image + alpha mask + the view's angles; loss = MSE on normalised ws + L1 on the re-render
  of the predicted ws from the same view and from a second random view (novel-view consistency) + L1 on alpha;
- SynthHeads renders (training identities, a share ``synth_frac`` of the batch): no latent exists, image loss only
  (same view), so the encoder also meets heads from outside the generator's range (as a photo is).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import encoder_preset
from .encoder import LiftEncoder, pose_features, w_statistics
from .views import random_views

__all__ = ["TrainConfig", "train_encoder", "main"]


@dataclass
class TrainConfig:
    batch: int = 8
    image_size: int = 64          # render side for the losses (the encoder resizes to its own input size)
    lr: float = 1e-3
    synth_frac: float = 0.25      # share of SynthHeads renders in a batch (0 = generator samples only)
    synth_identities: int = 32    # SynthHeads training identities kept in memory
    lambda_w: float = 1.0
    lambda_img: float = 1.0
    lambda_novel: float = 0.5
    lambda_alpha: float = 0.5
    truncation: tuple = (0.5, 1.0)
    seed: int = 0


def _render(G, ws: torch.Tensor, cams, background=(0.0, 0.0, 0.0)):
    """ws [B, num_ws, w_dim] rendered sample i into camera i -> (rgb [B, H, W, 3], alpha [B, H, W, 1])."""
    maps = G.uv_maps(ws)
    out = {"ws": ws, "maps": maps, **G.attributes(maps)}
    return G.render_batch(out, cams, background=background)


def _synth_pool(n: int, device) -> list:
    from ..data.identity import split_seeds
    from ..data.synthheads import build_head

    seeds = list(split_seeds("train"))[:n]
    return [build_head(int(s), device=device) for s in seeds]


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()


def train_encoder(G, enc: LiftEncoder | None = None, *, seconds: float = 60.0, steps: int | None = None,
                  tc: TrainConfig | None = None, preset: str = "small", device=None, log=None, progress=None) -> tuple[LiftEncoder, list[dict]]:
    """Train (or continue training) an encoder for generator G for ``seconds`` (or ``steps``) -> (encoder, log rows).

    G stays frozen; gradients flow through its synthesis network and the renderer into the encoder."""
    from ..generate.model import render_offset

    tc = tc or TrainConfig()
    dev = torch.device(device) if device is not None else G.template_points.device
    G = G.to(dev).eval().requires_grad_(False)
    if enc is None:
        enc = LiftEncoder(encoder_preset(preset, G))
        enc.set_w_stats(*w_statistics(G))
    enc = enc.to(dev).train()
    opt = torch.optim.Adam(enc.parameters(), lr=tc.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(tc.seed)
    n_synth = int(round(tc.batch * tc.synth_frac)) if tc.synth_frac > 0 else 0
    n_gen = tc.batch - n_synth
    pool = _synth_pool(tc.synth_identities, dev) if n_synth else []
    S = tc.image_size
    rows: list[dict] = []
    t0, step = time.time(), 0
    while True:
        el = time.time() - t0
        if (steps is not None and step >= steps) or (steps is None and el >= seconds):
            break
        # generator samples: the true latent is known
        z = torch.randn(n_gen, G.config.z_dim, generator=gen).to(dev)
        psi = tc.truncation[0] + torch.rand(n_gen, 1, 1, generator=gen).to(dev) * (tc.truncation[1] - tc.truncation[0])
        with torch.no_grad():
            w = G.mapping(z, G.canonical_label(dev).expand(n_gen, -1))
            ws_true = enc.w_avg + psi * (w - enc.w_avg)
        cams, az, el_ = random_views(n_gen, S, gen)
        cams = cams.to(dev)
        with torch.no_grad():
            rgb, alpha = _render(G, ws_true, cams)
        ws = enc(_nchw(rgb), _nchw(alpha), pose_features(az, el_).to(dev))
        loss_w = F.mse_loss(enc.normalise(ws), enc.normalise(ws_true))
        prgb, palpha = _render(G, ws, cams)
        loss_img = (prgb - rgb).abs().mean()
        loss_a = (palpha - alpha).abs().mean()
        novel, _, _ = random_views(n_gen, S, gen)
        novel = novel.to(dev)
        with torch.no_grad():
            nrgb, _ = _render(G, ws_true, novel)
        nprgb, _ = _render(G, ws, novel)
        loss_novel = (nprgb - nrgb).abs().mean()
        loss = tc.lambda_w * loss_w + tc.lambda_img * loss_img + tc.lambda_alpha * loss_a + tc.lambda_novel * loss_novel
        loss_s = torch.zeros((), device=dev)
        if n_synth:
            idx = torch.randint(len(pool), (n_synth,), generator=gen).tolist()
            scams, saz, sel = random_views(n_synth, S, gen)
            scams = scams.to(dev)
            offs = torch.zeros(n_synth, 3, device=dev)
            offs[:, 1] = 100.0 * torch.arange(n_synth, device=dev)
            with torch.no_grad():
                srgb, salpha = render_offset([pool[i] for i in idx], scams, offs, (0.0, 0.0, 0.0))
            sws = enc(_nchw(srgb), _nchw(salpha), pose_features(saz, sel).to(dev))
            sp, spa = _render(G, sws, scams)
            loss_s = (sp - srgb).abs().mean() + tc.lambda_alpha * (spa - salpha).abs().mean()
            loss = loss + tc.lambda_img * loss_s
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        step += 1
        vals = {k: float(v.detach()) for k, v in (("loss", loss), ("w", loss_w), ("img", loss_img), ("novel", loss_novel),
                                                  ("alpha", loss_a), ("synth", loss_s))}
        row = {"step": step, "t": round(time.time() - t0, 2), **vals}
        rows.append(row)
        if log is not None:
            log(row)
        if progress is not None:
            frac = step / steps if steps else (time.time() - t0) / max(seconds, 1e-6)
            progress(min(frac, 1.0), f"encoder step {step}: loss {row['loss']:.3f}")
    return enc.eval(), rows


def main(argv=None) -> None:
    from ..generate.hub import load_generator
    from .hub import save_encoder

    p = argparse.ArgumentParser(prog="python -m avat3r.lift.train", description=__doc__.split("\n")[0])
    p.add_argument("--generator", default=None, help="GGHead weights (default weights/gghead or $AVAT3R_GGHEAD_WEIGHTS)")
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--preset", default="small")
    p.add_argument("--device", default=None)
    p.add_argument("--batch", type=int, default=TrainConfig.batch)
    p.add_argument("--image-size", type=int, default=TrainConfig.image_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--synth-frac", type=float, default=TrainConfig.synth_frac)
    p.add_argument("--synth-identities", type=int, default=TrainConfig.synth_identities)
    a = p.parse_args(argv)
    dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    G = load_generator(a.generator, device=dev, cache=False)
    tc = TrainConfig(batch=a.batch, image_size=a.image_size, lr=a.lr, synth_frac=a.synth_frac,
                     synth_identities=a.synth_identities)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.jsonl", "w")

    def log(row):
        logf.write(json.dumps(row) + "\n")
        if row["step"] % 20 == 1:
            logf.flush()
            print(json.dumps(row), flush=True)

    enc, rows = train_encoder(G, seconds=a.seconds, steps=a.steps, tc=tc, preset=a.preset, device=dev, log=log)
    logf.close()
    last = rows[-20:]
    extra = {"train": asdict(tc), "steps": len(rows), "seconds": rows[-1]["t"] if rows else 0.0, "device": str(dev),
             "final_loss": float(np.mean([r["loss"] for r in last])) if last else None,
             "final_w": float(np.mean([r["w"] for r in last])) if last else None}
    save_encoder(enc, out, extra=extra)
    print(json.dumps(extra), flush=True)


if __name__ == "__main__":
    main()
