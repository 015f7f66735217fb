"""Train a GGHead generator on SynthHeads renders (GGHead's objective, Sec. 3.3 of the GGHead paper).

    python -m avat3r.generate.train --preset small --minutes 5 --out runs/gghead [--resume runs/gghead/ckpt]
    python -m avat3r.generate.train build-pool --out /tmp/pool --count 96     # SynthHeads heads, in chunks

Objective: non-saturating GAN loss; R1 on real images (gamma 1, lazy every 16 steps); optionally EG3D's fading blur
of D's inputs (``--blur-sigma``, ``--blur-fade-kimg``); GGHead's regularisers on the
raw position (0.1) and raw scale (0.05) channels; generator pose conditioning with camera swapping (p 0.5);
camera-conditioned discriminator on RGB + mask; Adam (beta1 0, beta2 0.99); G_ema. Real images: a bank of random
views of a pool of SynthHeads identities (neutral expression, black background), rendered once on the GPU (fp16,
with camera labels) and sampled from; it grows as the pool builders write more identities.
Speed (see docs/GGHEAD.md): modulated convs unfused while training, one batched gsplat call per batch, bf16
autocast for the convolutions (``amp``), the discriminator step reuses the generator step's fakes, no GPU syncs
between log lines; ``--profile N`` times the stages of N steps.
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
from .discriminator import Discriminator, Encoder
from .hub import save_generator
from .model import GGHeadGenerator, camera_labels, render_offset

__all__ = ["TrainConfig", "train", "sample_cameras", "build_pool", "HeadPool", "RealBank", "contact_sheet", "save_resume_state", "main"]

_FIELDS = ("means", "quats", "scales", "opacities", "colors")


@dataclass
class TrainConfig:
    preset: str = "small"
    batch: int = 32
    lr_g: float = 0.0025
    lr_d: float = 0.002
    r1_gamma: float = 1.0          # GGHead's 1 at 512^2; --r1-gamma auto: StyleGAN2-ADA's 0.0002 R^2 / batch
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
    amp: str = "bf16"              # autocast dtype of G's and D's convolutions on CUDA: "bf16" or "off" (fp32/TF32)
    views_per_head: int = 64       # real-image bank: random views rendered per SynthHeads identity
    snapshot_s: float = 0.0        # contact sheet (and KID, when a feature net is given) every this many seconds
    blur_sigma: float = 0.0        # EG3D's blur of D's inputs (real and fake), sigma in pixels at the start of training,
    blur_fade_kimg: float = 0.0    # fading linearly to 0 over this many thousand images: keeps D from winning early
    # VAE warm start (not GGHead's; 0 = off): an encoder maps one real view to a latent whose head must re-render
    # another view of the same identity (L1 on RGB + mask, weight lambda_recon) with a KL pull to the N(0, I) prior
    # (lambda_kl, on the mean over latent dims) beside the GAN loss: the adversarial loss alone needs millions of
    # images before heads are recognisable, far more than a session's device minutes (docs/GGHEAD.md)
    lambda_recon: float = 0.0
    lambda_kl: float = 0.01
    recon_only_kimg: float = 0.0   # a first stage of this many kimg with the reconstruction alone (no GAN, D idle)
    recon_fade_kimg: float = 0.0   # then lambda_recon fades linearly to 0 over this many kimg (0: stays on)


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


class RealBank:
    """Pre-rendered real images: views_per_head random views of every pool head, rendered once (gsplat: one call
    per head) and kept on the device.

    images [M, 4, R, R] fp16 (RGB + alpha in [-1, 1], the discriminator's input), labels [M, 25], world_to_cam
    [M, 4, 4], K [M, 3, 3], identity [M] (pool index of the head)."""

    def __init__(self, size: int, background, world_scale: float, tc: "TrainConfig", device, seed: int = 0):
        self.size, self.bg, self.world_scale, self.tc, self.device = size, background, world_scale, tc, torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)
        self.n_heads = 0
        self.start = self.count = None  # per head: first bank index and number of views [n_heads], on the device
        self._parts: list[tuple] = []
        self.images = self.labels = self.w2c = self.K = self.identity = None

    def __len__(self) -> int:
        return 0 if self.images is None else self.images.shape[0]

    @torch.no_grad()
    def add(self, heads: list[Gaussians], views: int | None = None) -> int:
        """Render views (default views_per_head) random views of each head; returns the bank size."""
        from ..render import render

        if not heads:
            return len(self)
        V = views or self.tc.views_per_head
        parts = []
        for g in heads:
            cams = sample_cameras(V, self.size, self.gen, self.tc)
            r = render(g, cams.to(self.device), background=self.bg)
            img = _to_d(r.color, r.alpha).half()
            ident = torch.full((V,), self.n_heads, dtype=torch.int64)
            parts.append((img, camera_labels(cams, self.world_scale), cams.world_to_cam, cams.K, ident))
            self.n_heads += 1
        first = len(self)
        starts = torch.tensor([first + k * V for k in range(len(heads))], device=self.device)
        counts = torch.full((len(heads),), V, device=self.device)
        self.start = starts if self.start is None else torch.cat([self.start, starts])
        self.count = counts if self.count is None else torch.cat([self.count, counts])
        cat = [torch.cat([p[i] for p in parts]).to(self.device) for i in range(5)]
        if self.images is None:
            self.images, self.labels, self.w2c, self.K, self.identity = cat
        else:
            self.images, self.labels, self.w2c, self.K, self.identity = (
                torch.cat([a, b]) for a, b in zip((self.images, self.labels, self.w2c, self.K, self.identity), cat))
        return len(self)

    def cameras(self, idx: torch.Tensor) -> Cameras:
        """Cameras of bank entries idx [B] (built without validation: no GPU sync)."""
        c = object.__new__(Cameras)
        c.K, c.world_to_cam = self.K[idx], self.w2c[idx]
        c.width = c.height = torch.full((len(idx),), self.size, dtype=torch.int64)
        return c

    def sample_pairs(self, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B random entries a [B] and for each another random view b [B] of the same head (may equal a)."""
        a = torch.randint(len(self), (B,), device=self.device)
        ident = self.identity[a]
        b = self.start[ident] + (torch.rand(B, device=self.device) * self.count[ident]).long()
        return a, b

    def sample(self, B: int) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
        """B random entries -> (images [B, 4, R, R] float, labels [B, 25], cameras)."""
        idx = torch.randint(len(self), (B,), device=self.device)
        return self.images[idx].float(), self.labels[idx], self.cameras(idx)


class _Timer:
    """Stage timing for --profile (synchronises the GPU at each mark); a no-op otherwise."""

    def __init__(self, on: bool, dev: torch.device):
        self.on, self.dev, self.acc, self.t = on, dev, {}, 0.0

    def mark(self, name: str | None = None) -> None:
        if not self.on:
            return
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        now = time.perf_counter()
        if name is not None:
            self.acc[name] = self.acc.get(name, 0.0) + now - self.t
        self.t = now


def blur_sigma_at(tc: TrainConfig, nimg: int) -> float:
    """The D-input blur at nimg images seen (EG3D: blur_init_sigma fading linearly over blur_fade_kimg)."""
    if tc.blur_sigma <= 0 or tc.blur_fade_kimg <= 0:
        return 0.0
    return max(1.0 - nimg / (tc.blur_fade_kimg * 1000), 0.0) * tc.blur_sigma


def blur_images(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x [B, C, H, W] blurred with a Gaussian of sigma px (all channels, the mask too, like GGHead's blur_masks), same
    size; a depthwise FIR whose derivatives of every order stay forward convs (R1 differentiates through it)."""
    from .layers import upfirdn2d

    r = int(np.floor(sigma * 3))
    if r < 1:
        return x
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    f = torch.exp(-0.5 * (t / sigma) ** 2)
    f = torch.outer(f, f)
    return upfirdn2d(x, f / f.sum(), pad=(r, r, r, r))


def recon_weight(tc: TrainConfig, nimg: int) -> float:
    """The warm start's reconstruction weight factor at nimg images: 1 during and right after the reconstruction-only
    stage, then fading linearly to 0 over recon_fade_kimg (when set)."""
    if tc.recon_fade_kimg <= 0:
        return 1.0
    return float(min(max(1.0 - (nimg - tc.recon_only_kimg * 1000) / (tc.recon_fade_kimg * 1000), 0.0), 1.0))


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


# TrainConfig fields a resumed run takes from its checkpoint (they shape the networks); the rest are the caller's
RESUME_KEEPS = ("preset", "d_channel_base", "d_channel_max")


def _resume_file(r: Path, name: str) -> Path:
    """A resume directory's tensors for G / G_ema. A compact state (save_resume_state) has no G: G_ema is the
    shipped generator next to it (../model.safetensors) and G restarts from G_ema."""
    f = r / f"{name}.safetensors"
    if not f.is_file() and name in ("G", "G_ema"):
        f = r / "G_ema.safetensors" if (r / "G_ema.safetensors").is_file() else r.parent / "model.safetensors"
    if not f.is_file():
        raise FileNotFoundError(f"{r} holds no {name}.safetensors: not a GGHead checkpoint or resume state")
    return f


def save_resume_state(ck: Path, out_dir, nets: tuple[str, ...] = ("D", "E")) -> Path:
    """A compact state to continue training in a later session: the progress/configs (``state.json``) and the
    networks in ``nets`` in float16 (D; E, the warm start's encoder, when the run had one). No optimiser moments
    (they would triple the size; Adam's beta1 = 0 and beta2 = 0.99 rebuild them within ~100 steps) and no G (G
    restarts from G_ema, the generator next to it). The committed ``weights/gghead/resume/`` holds state.json only
    (``nets=()``): D and E (12 MB each) would push the repository past the device's carry limit; they restart."""
    from safetensors.torch import load_file, save_file

    ck, out = Path(ck), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in nets:
        if (ck / f"{name}.safetensors").is_file():
            t = load_file(str(ck / f"{name}.safetensors"))
            save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in t.items()},
                      str(out / f"{name}.safetensors"))
    meta = json.loads((ck / "state.json").read_text())
    meta = {k: meta[k] for k in ("progress", "generator", "train")}
    (out / "state.json").write_text(json.dumps(meta, indent=1))
    return out


def save_checkpoint(ck: Path, G, D, G_ema, opt_g, opt_d, progress: dict, gcfg: GGHeadConfig, tc: TrainConfig,
                    E=None) -> None:
    from safetensors.torch import save_file

    ck.mkdir(parents=True, exist_ok=True)
    for name, m in (("G", G), ("D", D), ("G_ema", G_ema), ("E", E)):
        if m is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}, str(ck / f"{name}.safetensors"))
    og, mg = _save_opt(opt_g)
    od, md = _save_opt(opt_d)
    save_file(og, str(ck / "opt_g.safetensors"))
    save_file(od, str(ck / "opt_d.safetensors"))
    meta = {"progress": progress, "generator": gcfg.to_dict(), "train": dataclasses.asdict(tc), "opt_g": mg, "opt_d": md}
    (ck / "state.json").write_text(json.dumps(meta, indent=1))


# ---- training ------------------------------------------------------------------------------------------
def train(out_dir, pool_dir, minutes: float, tc: TrainConfig | None = None, resume=None, device=None,
          log_every: int = 50, profile: int = 0, on_snapshot=None, min_heads: int = 1) -> dict:
    """Train for ``minutes`` wall-clock minutes; writes ``out_dir/ckpt``, ``log.jsonl``; returns the progress dict.

    profile > 0: run that many steps with the GPU synchronised between stages and return their mean times (ms per
    step, in ``progress["profile_ms"]``). on_snapshot(G_ema, progress, out_dir, bank): called every tc.snapshot_s
    seconds (before the first step, then at the end too) after the contact sheet ``snapshots/sheet_<kimg>.png`` is
    written; the dict it returns goes to the log."""
    from safetensors.torch import load_file

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = None
    if resume is not None:
        meta = json.loads((Path(resume) / "state.json").read_text())
        # the networks' shapes come from the checkpoint; the schedule and losses are the caller's (a continuation
        # may change objective, e.g. from the reconstruction-only stage to the GAN); changes are printed
        saved = meta["train"]
        if tc is None:  # nothing asked: continue as the checkpoint trained
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            kw = {k: v for k, v in saved.items() if k in known}
            tc = TrainConfig(**{**kw, "elevation": tuple(kw["elevation"]), "radius": tuple(kw["radius"])})
        kept = {k: saved[k] for k in RESUME_KEEPS if k in saved}
        changed = {k: [saved.get(k), v] for k, v in dataclasses.asdict(tc).items()
                   if k not in kept and k in saved and saved[k] != (list(v) if isinstance(v, tuple) else v)}
        tc = dataclasses.replace(tc, **kept)
        gcfg = GGHeadConfig.from_dict(meta["generator"])
        print(json.dumps({"resume": str(resume), "settings_changed": changed}), flush=True)
    else:
        tc = tc or TrainConfig()
        gcfg = preset(tc.preset)
    torch.manual_seed(tc.seed)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # no cudnn.benchmark: with it the first step took 24-28 s on the H200 (2026-12-01 run, a sixth of its training;
        # attributed to autotuning the many conv shapes of fused/unfused convs and R1, not re-measured without it)
    amp = dev.type == "cuda" and tc.amp == "bf16"
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    G = GGHeadGenerator(gcfg).to(dev).train()
    D = Discriminator(gcfg.c_dim, gcfg.image_resolution, channel_base=tc.d_channel_base,
                      channel_max=tc.d_channel_max).to(dev).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    use_rec = tc.lambda_recon > 0
    E = Encoder(gcfg.z_dim, gcfg.c_dim, gcfg.image_resolution, channel_base=tc.d_channel_base,
                channel_max=tc.d_channel_max).to(dev).train() if use_rec else None
    ratio = tc.r1_interval / (tc.r1_interval + 1)  # EG3D's lazy-regularisation correction of D's Adam
    # G and the warm start's encoder share one optimiser (G's settings): they minimise one loss
    opt_g = torch.optim.Adam(list(G.parameters()) + (list(E.parameters()) if use_rec else []), lr=tc.lr_g,
                             betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
    progress = {"step": 0, "nimg": 0, "seconds": 0.0}
    if resume is not None:
        r = Path(resume)
        for name, m in (("G", G), ("G_ema", G_ema)):
            m.load_state_dict(load_file(str(_resume_file(r, name))))  # fp16 files are cast to the fp32 parameters
        if (r / "D.safetensors").is_file():
            D.load_state_dict(load_file(str(r / "D.safetensors")))
        else:  # the committed state carries no D (size): a fresh D, as a fine-tune of a pretrained G starts
            print(json.dumps({"resume": str(r), "discriminator": "fresh"}), flush=True)
        if use_rec and (r / "E.safetensors").is_file():
            E.load_state_dict(load_file(str(r / "E.safetensors")))
        if (r / "opt_g.safetensors").is_file() and (not use_rec or (r / "E.safetensors").is_file()):
            _load_opt(opt_g, load_file(str(r / "opt_g.safetensors")), meta["opt_g"], dev)
            _load_opt(opt_d, load_file(str(r / "opt_d.safetensors")), meta["opt_d"], dev)
        else:  # a compact state (save_resume_state): fresh Adam, whose beta2 = 0.99 re-estimates in ~100 steps
            print(json.dumps({"resume": str(r), "optimizers": "fresh"}), flush=True)
        progress = dict(meta["progress"])
    B, R = tc.batch, gcfg.image_resolution
    pool = HeadPool(pool_dir, dev)
    bank = RealBank(R, gcfg.background, gcfg.world_scale, tc, dev, seed=tc.seed + progress["step"])
    t_wait = time.time()
    while pool.refresh() < min_heads:
        if time.time() - t_wait > 180:
            raise RuntimeError(f"fewer than {min_heads} SynthHeads heads appeared in {pool_dir} in 180 s")
        time.sleep(1.0)
    t_bank = time.time()
    bank.add(pool.heads[bank.n_heads:])
    print(json.dumps({"bank": len(bank), "heads": bank.n_heads, "bank_s": round(time.time() - t_bank, 2)}), flush=True)
    params_g, params_e = list(G.parameters()), list(G_ema.parameters())
    bufs_g, bufs_e = list(G.buffers()), list(G_ema.buffers())
    logf = open(out / "log.jsonl", "a")  # noqa: SIM115 - appended to through the whole run, closed at its end
    t0 = time.time()
    budget = minutes * 60
    step0 = progress["step"]
    last = {"t": t0, "nimg": progress["nimg"]}
    next_snap = t0 + tc.snapshot_s if tc.snapshot_s > 0 else float("inf")
    tm = _Timer(profile > 0, dev)
    acc = torch.zeros(7, device=dev)  # loss_g, loss_d, r1, reg_pos, reg_scale, recon L1, KL summed since the last log
    n_acc = 0

    def snapshot():
        rec = {"snapshot": round(progress["nimg"] / 1000, 1), "t": round(progress["seconds"] + time.time() - t0, 1)}
        (out / "snapshots").mkdir(exist_ok=True)
        contact_sheet(G_ema, range(8), out / "snapshots" / f"sheet_{progress['nimg'] // 1000:05d}kimg.png", size=R)
        if on_snapshot is not None:
            rec.update(on_snapshot(G_ema, progress, out, bank) or {})
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        print(json.dumps(rec), flush=True)

    if tc.snapshot_s > 0 and not profile:
        snapshot()
        t0 = time.time()
        last = {"t": t0, "nimg": progress["nimg"]}
        next_snap = t0 + tc.snapshot_s
    while progress["step"] == step0 or (time.time() - t0 < budget if not profile else progress["step"] - step0 < profile):
        step = progress["step"]
        if profile and step == step0 + 5:
            tm.acc.clear()  # the first steps include cuDNN autotuning
        if step % 200 == 0 and step > step0 and pool.refresh() > bank.n_heads:
            tm.mark()
            bank.add(pool.heads[bank.n_heads:])
            tm.mark("bank_grow")
        tm.mark()
        if use_rec:  # the GAN's real batch are the views b; the encoder sees other views a of the same heads
            ia, ib = bank.sample_pairs(B)
            real, c, cams = bank.images[ib].float(), bank.labels[ib], bank.cameras(ib)
            enc_in, c_enc = bank.images[ia].float(), bank.labels[ia]
        else:
            real, c, cams = bank.sample(B)
        tm.mark("sample_real")
        # -- G: non-saturating loss + raw position / scale regularisers, pose-conditioning swap
        z = torch.randn(B, gcfg.z_dim, device=dev)
        swap = torch.rand(B, 1, device=dev) < tc.gpc_prob
        c_gen = torch.where(swap, c.roll(1, 0), c)
        D.requires_grad_(False)
        ws = G.mapping(z, c_gen, update_emas=True)  # fp32: the mapping is small and w needs the precision
        loss_rec = kl = torch.zeros((), device=dev)
        pre = use_rec and progress["nimg"] < tc.recon_only_kimg * 1000  # reconstruction-only stage: no GAN
        lam_rec = tc.lambda_recon * recon_weight(tc, progress["nimg"])
        if use_rec:  # one synthesis pass over the prior's and the encoder's latents together
            with autocast():
                mu, logvar = E(enc_in, c_enc)
            z_e = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            ws_e = G.mapping(z_e, c_gen)
            ws = ws_e if pre else torch.cat([ws, ws_e])
            cams = bank.cameras(ib if pre else torch.cat([ib, ib]))
        with autocast():
            maps = G.uv_maps(ws, noise_mode="random")
        o = G.attributes(maps.float())
        tm.mark("G_forward")
        fake = _to_d(*G.render_batch(o, cams))
        if use_rec:
            fake, rec = (fake, fake) if pre else (fake[:B], fake[B:])
            loss_rec = (rec - real).abs().mean()
            kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean()
        sigma = blur_sigma_at(tc, progress["nimg"])
        if sigma > 0:
            fake = blur_images(fake, sigma)
        tm.mark("render_fwd")
        if pre:
            loss_adv = torch.zeros((), device=dev)
        else:
            with autocast():
                loss_adv = F.softplus(-D(fake, c).float()).mean()
        reg_pos = o["raw_position"].float().norm(dim=-1).mean()
        reg_scale = o["raw_scale"].float().norm(dim=-1).mean()
        loss_g = (loss_adv + tc.lambda_raw_position * reg_pos + tc.lambda_raw_scale * reg_scale
                  + lam_rec * loss_rec + tc.lambda_kl * kl * use_rec)
        tm.mark("D_on_fake_fwd")
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        tm.mark("G_backward")
        opt_g.step()
        tm.mark("G_adam")
        # -- D: fake -> 0, real -> 1, lazy R1 (the fakes of the G step, detached: one generator pass per step)
        D.requires_grad_(True)
        do_r1 = tc.r1_gamma > 0 and step % tc.r1_interval == 0 and not pre
        loss_d = r1 = torch.zeros((), device=dev)
        if not pre:
            real_in = real.detach().requires_grad_(do_r1)
            with autocast():
                logits_fake = D(fake.detach(), c).float()
                logits_real = D(blur_images(real_in, sigma) if sigma > 0 else real_in, c).float()  # R1 w.r.t. the unblurred image (EG3D)
            loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
            if do_r1:
                (g,) = torch.autograd.grad(logits_real.sum(), real_in, create_graph=True)
                r1 = g.float().square().sum(dim=[1, 2, 3]).mean()
                loss_d = loss_d + r1 * (tc.r1_gamma / 2) * tc.r1_interval
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            tm.mark("D_step_r1" if do_r1 else "D_step")
            opt_d.step()
        # -- G_ema
        progress["nimg"] += B
        ema_nimg = tc.ema_kimg * 1000
        if tc.ema_rampup:
            ema_nimg = min(ema_nimg, progress["nimg"] * tc.ema_rampup)
        beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        with torch.no_grad():
            torch._foreach_lerp_(params_e, [p.detach() for p in params_g], 1.0 - beta)
            torch._foreach_copy_(bufs_e, bufs_g)
        tm.mark("D_adam_ema")
        acc += torch.stack([loss_adv.detach(), loss_d.detach(), r1.detach() * do_r1, reg_pos.detach(), reg_scale.detach(),
                            loss_rec.detach(), kl.detach()])
        n_acc += 1
        progress["step"] += 1
        if progress["step"] % log_every == 0 or progress["step"] == step0 + 1:
            now = time.time()
            m = (acc / n_acc).tolist()
            rec = {"step": progress["step"], "kimg": progress["nimg"] / 1000, "t": round(progress["seconds"] + now - t0, 1),
                   "loss_g": m[0], "loss_d": m[1], "r1": m[2] * tc.r1_interval, "reg_pos": m[3], "reg_scale": m[4],
                   **({"recon_l1": m[5], "kl": m[6]} if use_rec else {}),
                   "img_s": round((progress["nimg"] - last["nimg"]) / max(now - last["t"], 1e-6), 1),
                   "bank": len(bank), "heads": bank.n_heads}
            acc.zero_()
            n_acc = 0
            last = {"t": now, "nimg": progress["nimg"]}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            print(json.dumps(rec), flush=True)
        if time.time() >= next_snap:
            snapshot()
            next_snap = time.time() + tc.snapshot_s
            last = {"t": time.time(), "nimg": progress["nimg"]}
    progress["seconds"] += time.time() - t0
    progress["img_s_mean"] = (progress["nimg"] - (meta["progress"]["nimg"] if meta else 0)) / max(time.time() - t0, 1e-6)
    progress["bank"], progress["heads"] = len(bank), bank.n_heads
    if profile:
        steps = progress["step"] - step0
        steps = steps - 5 if steps > 5 else steps  # timing cleared after 5 warm-up steps
        progress["profile_ms"] = {k: round(v * 1000 / steps, 2) for k, v in tm.acc.items()}
        progress["profile_ms"]["total"] = round(sum(tm.acc.values()) * 1000 / steps, 2)
    if tc.snapshot_s > 0 and not profile:
        t0 = time.time()  # progress["seconds"] already holds the run's time
        snapshot()
    save_checkpoint(out / "ckpt", G, D, G_ema, opt_g, opt_d, progress, gcfg, tc, E=E)
    save_generator(G_ema.cpu(), out / "G_ema", extra={"progress": progress, "train": dataclasses.asdict(tc)})
    G_ema.to(dev)
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
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--r1-gamma", default="1.0", help="R1 weight, or 'auto' (StyleGAN2-ADA: 0.0002 R^2 / batch)")
        p.add_argument("--amp", default="bf16", choices=["bf16", "off"])
        p.add_argument("--blur-sigma", type=float, default=0.0, help="blur D's inputs by this sigma (px) at first...")
        p.add_argument("--blur-fade-kimg", type=float, default=0.0, help="...fading to none over this many kimg (EG3D)")
        p.add_argument("--lambda-recon", type=float, default=0.0, help="VAE warm start: reconstruction weight (0 = off)")
        p.add_argument("--lambda-kl", type=float, default=0.01, help="VAE warm start: KL weight (mean over z dims)")
        p.add_argument("--recon-only-kimg", type=float, default=0.0, help="VAE warm start: kimg of reconstruction alone")
        p.add_argument("--recon-fade-kimg", type=float, default=0.0, help="VAE warm start: then fade it out over kimg")
        p.add_argument("--views-per-head", type=int, default=64)
        p.add_argument("--min-heads", type=int, default=1, help="wait until the pool holds this many heads")
        p.add_argument("--snapshot-s", type=float, default=0.0, help="contact sheet (+ KID with --heldout) every S s")
        p.add_argument("--heldout", default=None, help="pool of held-out identities: KID at every snapshot")
        p.add_argument("--profile", type=int, default=0, help="time the stages of N steps (GPU synchronised), then stop")
        p.add_argument("--resume", default=None, help="a ckpt directory written by an earlier run")
        p.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.cmd == "build-pool":
        build_pool(a.out, a.count, a.start_seed, device=dev, prefix=a.prefix)
        return
    pool = a.pool or str(Path(a.out) / "pool")
    if not list(Path(pool).glob("pool_*.safetensors")):
        build_pool(pool, 8, device=dev)
    gamma = 0.0002 * preset(a.preset).image_resolution ** 2 / a.batch if a.r1_gamma == "auto" else float(a.r1_gamma)
    tc = TrainConfig(preset=a.preset, batch=a.batch, r1_gamma=gamma, amp=a.amp, views_per_head=a.views_per_head,
                     snapshot_s=a.snapshot_s, blur_sigma=a.blur_sigma, blur_fade_kimg=a.blur_fade_kimg,
                     lambda_recon=a.lambda_recon, lambda_kl=a.lambda_kl, recon_only_kimg=a.recon_only_kimg,
                     recon_fade_kimg=a.recon_fade_kimg)
    probe = None
    if a.heldout:
        from .quality import KIDProbe

        probe = KIDProbe(a.heldout, tc, dev)
    prog = train(a.out, pool, a.minutes, tc, resume=a.resume, device=dev, profile=a.profile,
                 on_snapshot=probe, min_heads=a.min_heads)
    print(json.dumps({"done": prog}), flush=True)


if __name__ == "__main__":
    main()
