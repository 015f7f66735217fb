"""Train a GGHead generator on SynthHeads renders (GGHead's objective, Sec. 3.3 of the GGHead paper).

    python -m avat3r.generate.train --preset small --minutes 5 --out runs/gghead [--resume runs/gghead/ckpt]
    python -m avat3r.generate.train build-pool --out /tmp/pool --count 96     # SynthHeads heads, in chunks

Objective: non-saturating GAN loss; R1 on real images (gamma 1, lazy every 16 steps); GGHead's regularisers on the
raw position (0.1) and raw scale (0.05) channels; generator pose conditioning with camera swapping (p 0.5);
camera-conditioned discriminator on RGB + mask; Adam (beta1 0, beta2 0.99); G_ema. Real images: random views of a
pool of SynthHeads identities (neutral expression, black background), rendered on the fly.
A checkpoint (``ckpt/``: safetensors + JSON, no pickles) lets a later run resume.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import Cameras, intrinsics_from_fov, look_at, spherical_to_cartesian
from ..gaussians import Gaussians
from .config import GGHeadConfig, preset
from .discriminator import Discriminator
from .hub import save_generator
from .model import GGHeadGenerator, camera_labels, render_offset

__all__ = ["TrainConfig", "train", "sample_cameras", "build_pool", "HeadPool", "contact_sheet", "main"]

_FIELDS = ("means", "quats", "scales", "opacities", "colors")


@dataclass
class TrainConfig:
    preset: str = "small"
    batch: int = 32
    lr_g: float = 0.0025
    lr_d: float = 0.002
    r1_gamma: float = 1.0
    r1_interval: int = 16
    gpc_prob: float = 0.5
    lambda_raw_position: float = 0.1
    lambda_raw_scale: float = 0.05
    ema_kimg: float = 2.0          # G_ema half-life in thousands of images
    ema_rampup: float = 0.05
    azimuth: float = 90.0          # views drawn with |azimuth| <= this, degrees
    elevation: tuple = (-20.0, 30.0)
    radius: tuple = (0.9, 1.1)
    fov_deg: float = 20.0
    d_channel_base: int = 8192     # discriminator width: min(base / res, max) channels per resolution
    d_channel_max: int = 256
    seed: int = 0


# ---- data -----------------------------------------------------------------------------------------------
def sample_cameras(n: int, size: int, gen: torch.Generator, tc: TrainConfig) -> Cameras:
    """n random views around the head (azimuth, elevation, distance uniform in TrainConfig's ranges)."""
    u = torch.rand(n, 3, generator=gen)
    az = (u[:, 0] * 2 - 1) * tc.azimuth
    el = tc.elevation[0] + u[:, 1] * (tc.elevation[1] - tc.elevation[0])
    r = tc.radius[0] + u[:, 2] * (tc.radius[1] - tc.radius[0])
    eyes = spherical_to_cartesian(az, el, r)
    K = intrinsics_from_fov(tc.fov_deg, size).expand(n, 3, 3)
    return Cameras(K, look_at(eyes), size, size)


def build_pool(out_dir, count: int, start_seed: int = 0, chunk: int = 8, device="cpu", prefix: str = "") -> None:
    """Build SynthHeads identities (rest expression) and write them as safetensors chunks pool_XXX.safetensors."""
    from safetensors.torch import save_file

    from ..data.synthheads import build_head, sample_identity

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf: dict[str, torch.Tensor] = {}
    for k in range(count):
        g = build_head(sample_identity(start_seed + k), device=device)
        for f in _FIELDS:
            buf[f"{k % chunk}.{f}"] = getattr(g, f).detach().half().cpu().contiguous()
        if (k + 1) % chunk == 0 or k == count - 1:
            name = out / f"pool_{prefix}{k // chunk:03d}.safetensors"
            save_file(buf, str(name) + ".tmp")
            Path(str(name) + ".tmp").rename(name)
            print(f"pool: {k + 1}/{count} heads", flush=True)
            buf = {}


class HeadPool:
    """SynthHeads heads read from a pool directory; ``refresh()`` picks up chunks written since."""

    def __init__(self, root, device):
        self.root, self.device = Path(root), device
        self.heads: list[Gaussians] = []
        self._seen: set[str] = set()

    def refresh(self) -> int:
        from safetensors.torch import load_file

        for p in sorted(self.root.glob("pool_*.safetensors")):
            if p.name in self._seen:
                continue
            t = load_file(str(p))
            ids = sorted({k.split(".")[0] for k in t}, key=int)
            for i in ids:
                self.heads.append(Gaussians(**{f: t[f"{i}.{f}"].float().to(self.device) for f in _FIELDS}))
            self._seen.add(p.name)
        return len(self.heads)

    def render(self, idx: list[int], cams: Cameras, background) -> tuple[torch.Tensor, torch.Tensor]:
        B = len(idx)
        offs = torch.zeros(B, 3, device=self.device)
        offs[:, 1] = 100.0 * torch.arange(B, device=self.device)
        return render_offset([self.heads[i] for i in idx], cams.to(self.device), offs, background)


def _to_d(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """rgb [B, H, W, 3], alpha [B, H, W, 1] in [0, 1] -> discriminator input [B, 4, H, W] in [-1, 1]."""
    return torch.cat([rgb, alpha], -1).permute(0, 3, 1, 2) * 2 - 1


# ---- checkpoints (safetensors + JSON) ---------------------------------------------------------------------
def _save_opt(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()
               if isinstance(v, torch.Tensor)}
    return tensors, {"param_groups": sd["param_groups"]}


def _load_opt(opt: torch.optim.Optimizer, tensors: dict, meta: dict, device) -> None:
    state: dict = {}
    for k, v in tensors.items():
        i, name = k.split(".", 1)
        state.setdefault(int(i), {})[name] = v.to(device) if name != "step" else v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(ck: Path, G, D, G_ema, opt_g, opt_d, progress: dict, gcfg: GGHeadConfig, tc: TrainConfig) -> None:
    from safetensors.torch import save_file

    ck.mkdir(parents=True, exist_ok=True)
    for name, m in (("G", G), ("D", D), ("G_ema", G_ema)):
        save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}, str(ck / f"{name}.safetensors"))
    og, mg = _save_opt(opt_g)
    od, md = _save_opt(opt_d)
    save_file(og, str(ck / "opt_g.safetensors"))
    save_file(od, str(ck / "opt_d.safetensors"))
    meta = {"progress": progress, "generator": gcfg.to_dict(), "train": dataclasses.asdict(tc), "opt_g": mg, "opt_d": md}
    (ck / "state.json").write_text(json.dumps(meta, indent=1))


# ---- training ------------------------------------------------------------------------------------------
def train(out_dir, pool_dir, minutes: float, tc: TrainConfig | None = None, resume=None, device=None,
          log_every: int = 20) -> dict:
    """Train for ``minutes`` wall-clock minutes; writes ``out_dir/ckpt``, ``log.jsonl``; returns the progress dict."""
    from safetensors.torch import load_file

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tc = tc or TrainConfig()
    meta = None
    if resume is not None:
        meta = json.loads((Path(resume) / "state.json").read_text())
        tc = TrainConfig(**{**meta["train"], "elevation": tuple(meta["train"]["elevation"]), "radius": tuple(meta["train"]["radius"])})
        gcfg = GGHeadConfig.from_dict(meta["generator"])
    else:
        gcfg = preset(tc.preset)
    torch.manual_seed(tc.seed)
    G = GGHeadGenerator(gcfg).to(dev).train()
    D = Discriminator(gcfg.c_dim, gcfg.image_resolution, channel_base=tc.d_channel_base,
                      channel_max=tc.d_channel_max).to(dev).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    ratio = tc.r1_interval / (tc.r1_interval + 1)  # EG3D's lazy-regularisation correction of D's Adam
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
    progress = {"step": 0, "nimg": 0, "seconds": 0.0}
    if resume is not None:
        r = Path(resume)
        for name, m in (("G", G), ("D", D), ("G_ema", G_ema)):
            m.load_state_dict(load_file(str(r / f"{name}.safetensors")))
        _load_opt(opt_g, load_file(str(r / "opt_g.safetensors")), meta["opt_g"], dev)
        _load_opt(opt_d, load_file(str(r / "opt_d.safetensors")), meta["opt_d"], dev)
        progress = dict(meta["progress"])
    pool = HeadPool(pool_dir, dev)
    t_wait = time.time()
    while pool.refresh() == 0:
        if time.time() - t_wait > 180:
            raise RuntimeError(f"no SynthHeads pool chunks appeared in {pool_dir}")
        time.sleep(1.0)
    gen = torch.Generator().manual_seed(tc.seed + progress["step"])
    B, R = tc.batch, gcfg.image_resolution
    bg = gcfg.background
    logf = open(out / "log.jsonl", "a")  # noqa: SIM115 - appended to through the whole run, closed at its end
    t0 = time.time()
    budget = minutes * 60
    step0 = progress["step"]
    last = {"t": t0, "nimg": progress["nimg"]}
    while progress["step"] == step0 or time.time() - t0 < budget:  # at least one step
        step = progress["step"]
        if step % 50 == 0:
            pool.refresh()
        idx = torch.randint(len(pool.heads), (B,), generator=gen).tolist()
        cams = sample_cameras(B, R, gen, tc)
        c = camera_labels(cams, gcfg.world_scale).to(dev)
        with torch.no_grad():
            real = _to_d(*pool.render(idx, cams, bg))
        # -- G: non-saturating loss + raw position / scale regularisers, pose-conditioning swap
        z = torch.randn(B, gcfg.z_dim, device=dev)
        swap = torch.rand(B, 1, device=dev) < tc.gpc_prob
        c_gen = torch.where(swap, c.roll(1, 0), c)
        o = G(z, c_gen, noise_mode="random")
        fake = _to_d(*G.render_batch(o, cams))
        loss_adv = F.softplus(-D(fake, c)).mean()
        reg_pos = o["raw_position"].norm(dim=-1).mean()
        reg_scale = o["raw_scale"].norm(dim=-1).mean()
        loss_g = loss_adv + tc.lambda_raw_position * reg_pos + tc.lambda_raw_scale * reg_scale
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # -- D: fake -> 0, real -> 1, lazy R1
        with torch.no_grad():
            z = torch.randn(B, gcfg.z_dim, device=dev)
            o = G(z, torch.where(torch.rand(B, 1, device=dev) < tc.gpc_prob, c.roll(1, 0), c), noise_mode="random", update_emas=True)
            fake = _to_d(*G.render_batch(o, cams))
        do_r1 = tc.r1_gamma > 0 and step % tc.r1_interval == 0
        real_in = real.detach().requires_grad_(do_r1)
        logits_real = D(real_in, c)
        loss_d = F.softplus(D(fake, c)).mean() + F.softplus(-logits_real).mean()
        r1 = torch.zeros((), device=dev)
        if do_r1:
            (g,) = torch.autograd.grad(logits_real.sum(), real_in, create_graph=True)
            r1 = g.square().sum(dim=[1, 2, 3]).mean()
            loss_d = loss_d + r1 * (tc.r1_gamma / 2) * tc.r1_interval
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # -- G_ema
        progress["nimg"] += B
        ema_nimg = tc.ema_kimg * 1000
        if tc.ema_rampup:
            ema_nimg = min(ema_nimg, progress["nimg"] * tc.ema_rampup)
        beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.copy_(p.detach().lerp(pe, beta))
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        progress["step"] += 1
        if progress["step"] % log_every == 0 or progress["step"] == step0 + 1:
            now = time.time()
            rec = {"step": progress["step"], "kimg": progress["nimg"] / 1000, "t": round(progress["seconds"] + now - t0, 1),
                   "loss_g": loss_adv.item(), "loss_d": loss_d.item(), "r1": r1.item(), "reg_pos": reg_pos.item(),
                   "reg_scale": reg_scale.item(), "img_s": (progress["nimg"] - last["nimg"]) / max(now - last["t"], 1e-6),
                   "pool": len(pool.heads)}
            last = {"t": now, "nimg": progress["nimg"]}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
    progress["seconds"] += time.time() - t0
    progress["img_s_mean"] = (progress["nimg"] - (meta["progress"]["nimg"] if meta else 0)) / max(time.time() - t0, 1e-6)
    save_checkpoint(out / "ckpt", G, D, G_ema, opt_g, opt_d, progress, gcfg, tc)
    save_generator(G_ema.cpu(), out / "G_ema", extra={"progress": progress, "train": dataclasses.asdict(tc)})
    logf.close()
    return progress


# ---- looking at samples -----------------------------------------------------------------------------------
def view_cameras(size: int, azimuths=(-60.0, -20.0, 20.0, 60.0), elevation: float = 5.0, radius: float = 1.0,
                 fov_deg: float = 20.0) -> Cameras:
    eyes = spherical_to_cartesian(torch.tensor(azimuths), torch.full((len(azimuths),), elevation), torch.full((len(azimuths),), radius))
    return Cameras(intrinsics_from_fov(fov_deg, size).expand(len(azimuths), 3, 3), look_at(eyes), size, size)


@torch.no_grad()
def contact_sheet(G: GGHeadGenerator, seeds, path, truncation: float = 0.7, size: int = 128) -> np.ndarray:
    """Rows = seeds, columns = 4 views (azimuth -60, -20, 20, 60): a PNG written to path; returns the array."""
    from PIL import Image

    cams = view_cameras(size)
    rows = []
    for s in seeds:
        out = G.sample(int(s), truncation)
        rgb, _ = G.render(out, cams, index=0)
        rows.append(torch.cat(list(rgb.cpu()), 1))
    img = (torch.cat(rows, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


@torch.no_grad()
def interpolation_strip(G: GGHeadGenerator, seed_a: int, seed_b: int, path, steps: int = 8, truncation: float = 0.7,
                        size: int = 128) -> np.ndarray:
    """Linear interpolation in W between two seeds, frontal-ish view (azimuth 20): one PNG row."""
    from PIL import Image

    dev = G.template_points.device
    c = G.canonical_label(dev)
    ws = []
    for s in (seed_a, seed_b):
        z = torch.randn(1, G.config.z_dim, generator=torch.Generator().manual_seed(int(s))).to(dev)
        ws.append(G.mapping(z, c, truncation_psi=truncation))
    cam = view_cameras(size, azimuths=(20.0,))
    frames = []
    for t in np.linspace(0, 1, steps):
        w = torch.lerp(ws[0], ws[1], float(t))
        maps = G.uv_maps(w)
        out = {"maps": maps, **G.attributes(maps)}
        rgb, _ = G.render(out, cam, index=0)
        frames.append(rgb[0].cpu())
    img = (torch.cat(frames, 1).clamp(0, 1).numpy() * 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m avat3r.generate.train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    bp = sub.add_parser("build-pool", help="build SynthHeads identities into a pool directory")
    bp.add_argument("--out", required=True)
    bp.add_argument("--count", type=int, default=96)
    bp.add_argument("--start-seed", type=int, default=0)
    bp.add_argument("--device", default=None)
    bp.add_argument("--prefix", default="", help="chunk file prefix (several builders can share a directory)")
    tp = sub.add_parser("train", help="train (the default command)")
    for p in (ap, tp):
        p.add_argument("--out", default="runs/gghead")
        p.add_argument("--pool", default=None, help="pool directory (default: OUT/pool, built if empty)")
        p.add_argument("--minutes", type=float, default=5.0)
        p.add_argument("--preset", default="small")
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--resume", default=None, help="a ckpt directory written by an earlier run")
        p.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    if a.cmd == "build-pool":
        build_pool(a.out, a.count, a.start_seed, device=a.device or ("cuda" if torch.cuda.is_available() else "cpu"),
                   prefix=a.prefix)
        return
    pool = a.pool or str(Path(a.out) / "pool")
    if not list(Path(pool).glob("pool_*.safetensors")):
        build_pool(pool, 8, device=a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prog = train(a.out, pool, a.minutes, TrainConfig(preset=a.preset, batch=a.batch), resume=a.resume, device=a.device)
    print(json.dumps({"done": prog}), flush=True)


if __name__ == "__main__":
    main()
