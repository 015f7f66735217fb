"""Train the text-to-portrait model (and the attribute classifier that judges it) on SynthHeads portraits.

    python -m avat3r.text2img.train --out runs/t2i --identities 1500 --per-identity 4 --seconds 120 --device cuda

Steps: render the data set (``data.build_portraits``), train the classifier (a held-out tenth reports its accuracy),
train the diffusion model (DDPM noise-prediction loss, captions redrawn every step, 15 % dropped for classifier-free
guidance, EMA weights), save both with ``save_pretrained`` (safetensors, shards <= 15 MB) and a sample grid.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .classifier import AttributeClassifier
from .data import GROUP_NAMES, attributes_from_labels, build_portraits
from .vocab import caption

CAPTION_DROP = 0.15
SHARD = "15MB"


def _flip(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror half the batch ([B, 3, H, W]); facing left <-> facing right swap in the view labels."""
    f = torch.rand(len(images), generator=gen) < 0.5
    images = torch.where(f.to(images.device)[:, None, None, None], images.flip(-1), images)
    v = GROUP_NAMES.index("view")
    lab = labels.clone()
    lab[f, v] = torch.where(lab[f, v] > 0, 3 - lab[f, v], lab[f, v])
    return images, lab


def train_classifier(images: np.ndarray, labels: np.ndarray, device, seconds: float = 20.0, batch: int = 256,
                     log=print) -> tuple[AttributeClassifier, dict]:
    """-> (classifier, accuracy per group on a held-out tenth of the identities' images)."""
    dev = torch.device(device)
    n = len(images)
    n_val = max(1, n // 10)
    x = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(labels).to(dev)
    xt, yt, xv, yv = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    clf = AttributeClassifier().to(dev)
    opt = torch.optim.AdamW(clf.parameters(), 2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(0, len(xt), (batch,), generator=gen).to(dev)
        xb, yb = _flip(xt[idx], yt[idx].cpu(), gen)
        xb = xb + 0.03 * torch.randn_like(xb)  # generated portraits are a little noisy
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            loss = clf.loss(xb, yb.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if log is not None and step % 200 == 0:
            log(f"classifier step {step} loss {loss.item():.3f}")
    clf.eval()
    pred = torch.cat([clf.predict(xv[i:i + 512]) for i in range(0, len(xv), 512)])
    acc = {}
    for i, g in enumerate(GROUP_NAMES):
        m = yv[:, i] >= 0
        acc[g] = float((pred[m, i] == yv[m, i]).float().mean()) if m.any() else float("nan")
    return clf, {"steps": step, "held_out_images": int(n_val), "accuracy": acc}


def make_pipeline(preset: str = "small"):
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel

    from .model import PromptEncoder, unet_config
    from .pipeline import PortraitDiffusionPipeline
    from .vocab import caption_words

    enc = PromptEncoder(words=caption_words())
    unet = UNet2DConditionModel(**unet_config(preset, cross_dim=enc.config.dim))
    train_sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                                clip_sample=False)
    # thresholding: the cosine schedule's alpha_bar(999) is ~2e-9, so x0 = (x - sigma eps) / alpha multiplies eps errors
    # by ~2e4 at the first steps and DPM-Solver++ (which steps on x0) returns noise; clipping x0 to [-1, 1] (dynamic
    # thresholding, Imagen) bounds them. Seen: the first run's samples were pure noise without it.
    # leading spacing (first step t = 941, not 999): at t = 999 the x0 estimate amplifies the eps error's mean by ~2e4,
    # thresholding clips each colour channel to +-1 and the multistep solver carries that corner colour on: every
    # sample of one seed came out green, or magenta, whatever the prompt (seen in session 5's grids); from t = 941
    # the amplification is ~13x and the tint much weaker (grid in docs/TEXT2IMG.md)
    sampler = DPMSolverMultistepScheduler.from_config(train_sched.config, algorithm_type="dpmsolver++", solver_order=2,
                                                      use_karras_sigmas=False, thresholding=True, sample_max_value=1.0,
                                                      timestep_spacing="leading", steps_offset=1)
    return PortraitDiffusionPipeline(enc, unet, sampler), train_sched


def train_diffusion(images: np.ndarray, labels: np.ndarray, device, seconds: float = 60.0, batch: int = 128,
                    lr: float = 3e-4, preset: str = "small", log=print, seed: int = 0, init=None):
    """-> (pipeline with EMA weights, stats). ``init``: a saved pipeline folder to continue from (e.g. the shipped
    weights/text2img; its text encoder, UNet and their EMA start there, the optimiser starts fresh with a warm-up)."""
    dev = torch.device(device)
    pipe, sched = make_pipeline(preset)
    steps_before = 0
    if init is not None:
        from .hub import load_portrait_pipeline

        pipe = load_portrait_pipeline(init)
        prev = Path(init) / "training.json"
        if prev.is_file():
            t = json.loads(prev.read_text())
            steps_before = t.get("steps_total", t["steps"])
    pipe.to(dev)
    enc, unet = pipe.text_encoder, pipe.unet
    params = list(enc.parameters()) + list(unet.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr, weight_decay=0.01)
    x_all = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1
    y_all = torch.from_numpy(labels)
    acp = sched.alphas_cumprod.to(dev)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0, step, losses = time.perf_counter(), 0, []
    enc.train(), unet.train()
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        x0, lab = _flip(x_all[idx.to(dev)], y_all[idx], gen)
        prompts = ["" if rng.random() < CAPTION_DROP else caption(attributes_from_labels(row), rng) for row in lab.numpy()]
        ids, _ = enc.tokenize(prompts, dev)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), device=dev)
        noise = torch.randn_like(x0)
        a = acp[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        warm = min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr * warm
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            hid = enc(ids)
            pred = unet(xt, t, encoder_hidden_states=hid, encoder_attention_mask=enc.mask(ids)).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
        losses.append(loss.item() if step % 25 == 0 else losses[-1] if losses else loss.item())
        step += 1
        if log is not None and step % 250 == 0:
            log(f"diffusion step {step} loss {np.mean(losses[-250:]):.4f} ({(time.perf_counter() - t0) / step * 1e3:.0f} ms/step)")
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    enc.eval(), unet.eval()
    return pipe, {"steps": step, "steps_total": steps_before + step, "init": str(init) if init else None,
                  "batch": batch, "seconds": round(time.perf_counter() - t0, 1), "lr": lr,
                  "final_loss": float(np.mean(losses[-200:])), "images": int(len(images)), "preset": preset,
                  "parameters_unet": sum(p.numel() for p in unet.parameters()),
                  "parameters_text_encoder": sum(p.numel() for p in enc.parameters())}


def save_pipeline(pipe, path) -> None:
    """save_pretrained with the UNet's weights in float16 (half the size; loading casts them back to float32)."""
    pipe.unet.half()
    try:
        pipe.save_pretrained(path, safe_serialization=True, max_shard_size=SHARD)
    finally:
        pipe.unet.float()


def sample_grid(pipe, prompts: list[str], seed: int = 0, steps: int = 20, guidance: float = 3.0, cols: int = 4) -> np.ndarray:
    """[rows*64, cols*64, 3] uint8: each prompt sampled ``cols`` times (seeds seed..seed+cols-1)."""
    rows = []
    for p in prompts:
        imgs = pipe([p] * cols, seed=seed, steps=steps, guidance=guidance).images
        rows.append(np.concatenate(list(imgs), 1))
    return (np.concatenate(rows, 0) * 255 + 0.5).astype(np.uint8)


GRID_PROMPTS = ["long blond hair, smiling", "bald, beard, glasses", "short black hair, dark skin, open mouth",
                "voluminous red hair, light skin", "hat, sunglasses", "short brown hair, moustache, surprised",
                "long blue hair, headband", "grey hair, eyes closed, facing left"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avat3r.text2img.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--identities", type=int, default=1500)
    ap.add_argument("--first-seed", type=int, default=0, help="first train identity seed")
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--render-in-workers", action="store_true", help="render on the CPU in the worker processes")
    ap.add_argument("--data-seconds", type=float, default=None, help="stop building the data set after this long")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=120.0, help="diffusion training time budget")
    ap.add_argument("--classifier-seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data", default=None, help="reuse a portraits .npz (written to --out otherwise)")
    ap.add_argument("--init", default=None, help="continue from a saved pipeline folder (e.g. weights/text2img)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.data:
        z = np.load(a.data)
        data = {"images": z["images"], "labels": z["labels"]}
    else:
        data = build_portraits(range(a.first_seed, a.first_seed + a.identities), a.per_identity, device=a.device,
                               workers=a.workers, render_in_workers=a.render_in_workers, max_seconds=a.data_seconds)
        np.savez(out / "portraits.npz", images=data["images"], labels=data["labels"])
    t_data = time.perf_counter() - t0
    print(f"data: {len(data['images'])} portraits in {t_data:.1f} s", flush=True)
    clf, cstats = train_classifier(data["images"], data["labels"], a.device, a.classifier_seconds)
    print("classifier held-out accuracy:", json.dumps({k: round(v, 3) for k, v in cstats["accuracy"].items()}), flush=True)
    clf.save_pretrained(out / "classifier", safe_serialization=True)
    pipe, stats = train_diffusion(data["images"], data["labels"], a.device, a.seconds, a.batch, a.lr, a.preset,
                                  init=a.init)
    from ..io.images import save_image

    grid = sample_grid(pipe, GRID_PROMPTS)
    save_pipeline(pipe, out / "pipeline")
    save_image(out / "samples.png", grid)
    stats.update(data_seconds=round(t_data, 1), classifier=cstats, grid_prompts=GRID_PROMPTS,
                 identities=[a.first_seed, a.first_seed + a.identities], per_identity=a.per_identity,
                 device=torch.cuda.get_device_name() if torch.device(a.device).type == "cuda" else "cpu")
    (out / "training.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps({k: v for k, v in stats.items() if k != "classifier"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
