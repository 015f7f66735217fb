"""Sample quality of a GGHead generator without downloads: KID (Binkowski et al. 2018, "Demystifying MMD GANs") on
the features of a small CNN trained here to tell SynthHeads identities apart.

Inception features (FID/KID's usual network) need downloaded ImageNet weights; an identity classifier trained on
SynthHeads renders is sensitive to what a head generator must get right (face shape, skin, hair, eyes), and is
cheap (seconds on a GPU). The numbers are therefore only comparable with references computed with the same feature
network: ``bench/gghead_kid.py`` reports real-vs-real (train identities vs held-out identities) and the untrained
generator beside the trained one.

    net = train_feature_net(images [M, 3, R, R] in [0, 1], identity [M])
    kid(features(net, a), features(net, b)) -> (mean, std) over random subsets
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeatureNet", "train_feature_net", "features", "kid", "generator_images"]


class FeatureNet(nn.Module):
    """[B, 3, R, R] in [0, 1] -> features [B, 256] (resized to 64^2; 4 strided conv blocks, global average pool)."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        ch = [3, width, 2 * width, 4 * width, 8 * width]
        layers = []
        for a, b in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                       nn.Conv2d(b, b, 3, 1, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch[-1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        return self.body(x * 2 - 1).mean(dim=[2, 3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_feature_net(images: torch.Tensor, identity: torch.Tensor, steps: int = 1500, batch: int = 256,
                      lr: float = 2e-3, seed: int = 0, log=None) -> FeatureNet:
    """Identity classifier on images [M, 3, R, R] (any float dtype, [0, 1]) with labels identity [M] (int) -> eval net.

    Small colour/brightness jitter and shifts so that features do not key on exact pixel values."""
    dev = images.device
    torch.manual_seed(seed)
    ids, lab = torch.unique(identity, return_inverse=True)
    net = FeatureNet(len(ids)).to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    M = images.shape[0]
    for s in range(steps):
        i = torch.randint(M, (batch,), device=dev)
        x = images[i].float()
        x = x * (0.9 + 0.2 * torch.rand(batch, 1, 1, 1, device=dev)) + 0.05 * (torch.rand(batch, 3, 1, 1, device=dev) - 0.5)
        dx, dy = torch.randint(-4, 5, (2,)).tolist()
        x = torch.roll(x, (dy, dx), (2, 3)).clamp(0, 1)
        loss = F.cross_entropy(net(x), lab[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (s + 1) % 500 == 0:
            acc = (net(x).argmax(1) == lab[i]).float().mean()
            log(f"feature net step {s + 1}/{steps}: loss {loss.item():.3f}, batch accuracy {acc.item():.2f}")
    return net.eval().requires_grad_(False)


@torch.no_grad()
def features(net: FeatureNet, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """images [N, 3, R, R] in [0, 1] -> [N, 256] float64 (on the images' device)."""
    return torch.cat([net.features(images[i: i + batch]) for i in range(0, len(images), batch)]).double()


def kid(fa: torch.Tensor, fb: torch.Tensor, subsets: int = 50, subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance of feature sets fa [N, d], fb [M, d]: unbiased MMD^2 with the cubic polynomial
    kernel k(x, y) = (x.y / d + 1)^3, mean and std over random subsets of subset_size (both sets)."""
    g = torch.Generator().manual_seed(seed)
    n = min(subset_size, len(fa), len(fb))
    d = fa.shape[1]
    vals = []
    for _ in range(subsets):
        a = fa[torch.randperm(len(fa), generator=g)[:n].to(fa.device)]
        b = fb[torch.randperm(len(fb), generator=g)[:n].to(fb.device)]
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        m = ((kxx.sum() - kxx.diagonal().sum()) + (kyy.sum() - kyy.diagonal().sum())) / (n * (n - 1)) - 2 * kxy.mean()
        vals.append(float(m))
    t = torch.tensor(vals)
    return float(t.mean()), float(t.std())


@torch.no_grad()
def generator_images(G, cameras, n: int, truncation: float = 1.0, batch: int = 64, seed: int = 0) -> torch.Tensor:
    """n samples of G (z ~ N(0, I) from seed, conditioned on the frontal label as the app samples), sample i rendered
    into cameras[i] (n cameras) -> RGB [n, 3, R, R] in [0, 1]."""
    from ..cameras import Cameras
    from .model import _cams_on

    dev = G.template_points.device
    gen = torch.Generator().manual_seed(seed)
    cams = _cams_on(cameras, dev)
    c0 = G.canonical_label(dev)
    out = []
    for i in range(0, n, batch):
        j = slice(i, min(i + batch, n))
        B = j.stop - j.start
        z = torch.randn(B, G.config.z_dim, generator=gen).to(dev)
        o = G(z, c0.expand(B, -1), truncation_psi=truncation)
        sub = object.__new__(Cameras)
        sub.K, sub.world_to_cam, sub.width, sub.height = cams.K[j], cams.world_to_cam[j], cams.width[j], cams.height[j]
        rgb, _ = G.render_batch(o, sub)
        out.append(rgb.permute(0, 3, 1, 2).clamp(0, 1))
    return torch.cat(out)


class KIDProbe:
    """KID of G_ema's samples against held-out SynthHeads identities, for ``train(on_snapshot=...)``.

    At its first call: renders the held-out pool (``heldout_dir``, identities the generator never sees) into a bank,
    trains the feature net on the training bank's identities, and measures the references: real vs real (training
    identities vs held-out identities) and the untrained generator. Each call returns {"kid", "kid_std", ...}."""

    def __init__(self, heldout_dir, tc, device, n: int = 2000, views_per_head: int = 32, feature_steps: int = 1500):
        self.heldout_dir, self.tc, self.device = heldout_dir, tc, torch.device(device)
        self.n, self.views, self.steps = n, views_per_head, feature_steps
        self.net = None
        self.ref: dict = {}

    def prepare(self, G, bank) -> dict:
        import time

        from .model import GGHeadGenerator
        from .train import HeadPool, RealBank

        t = time.time()
        pool = HeadPool(self.heldout_dir, self.device)
        pool.refresh()
        self.held = RealBank(bank.size, bank.bg, bank.world_scale, self.tc, self.device, seed=12345)
        self.held.add(pool.heads, views=self.views)
        rgb = lambda im: ((im[:, :3].float() + 1) / 2).clamp(0, 1)  # noqa: E731  bank images are in [-1, 1]
        self.net = train_feature_net(rgb(bank.images), bank.identity, steps=self.steps,
                                     log=lambda m: print(m, flush=True))
        self.f_held = features(self.net, rgb(self.held.images))
        g = torch.Generator(device="cpu").manual_seed(0)
        idx = torch.randperm(len(bank), generator=g)[: self.n].to(bank.images.device)
        f_train = features(self.net, rgb(bank.images[idx]))
        k_rr = kid(f_train, self.f_held)
        torch.manual_seed(self.tc.seed)
        G0 = GGHeadGenerator(G.config).to(self.device).eval()
        k_g0 = kid(self._feats(G0), self.f_held)
        self.ref = {"kid_real_vs_real": k_rr[0], "kid_real_vs_real_std": k_rr[1], "kid_untrained": k_g0[0],
                    "kid_untrained_std": k_g0[1], "heldout_heads": self.held.n_heads, "heldout_images": len(self.held),
                    "feature_train_heads": bank.n_heads, "probe_setup_s": round(time.time() - t, 1)}
        return self.ref

    def _feats(self, G) -> torch.Tensor:
        g = torch.Generator(device="cpu").manual_seed(1)
        idx = torch.randint(len(self.held), (self.n,), generator=g).to(self.held.images.device)
        imgs = generator_images(G, self.held.cameras(idx), self.n)
        return features(self.net, imgs)

    def __call__(self, G, progress, out_dir, bank) -> dict:
        rec = {}
        if self.net is None:
            rec.update(self.prepare(G, bank))
        k = kid(self._feats(G), self.f_held)
        rec.update({"kid": k[0], "kid_std": k[1]})
        return rec
