"""The weight-free position prior: a visual hull carved from the input masks, rendered back per view.

Implements the ``PositionPrior`` protocol (``avat3r.priors.base``) under the name "visual_hull": from the
masks and cameras of a Capture alone (no learned weights, no ground truth) it gives the paper's position
maps I^pos (eq. 2) and a confidence map I^conf whose values above tau = 0.5 mark foreground pixels.

1. Carve a voxel grid spanning the head box of ``avat3r.head_template`` (a little enlarged): a voxel stays when
   no view (more precisely: fewer than ``carve_votes`` views) sees it outside its silhouette. Silhouettes are
   dilated by a tolerance (a fraction of the image size) and softened, so imperfect masks and cameras (real
   photos, estimated poses, different expressions per view) erode the hull gracefully instead of cutting it.
   Outside its frame a view's silhouette continues as its border (a head cut by the frame is not carved away);
   voxels behind a camera are not carved by it.
2. With few views (V <= ``proxy_views``) the hull is a cone that does not bound depth; it is intersected with a
   head proxy: the template head's skin (``avat3r.head_template.skin_radius``, SynthHeads' average head), moved
   and scaled to match the silhouettes. With more views a generously inflated proxy only trims what no view could
   carve (the back).
3. Ray-march the carved occupancy from each input camera (coarse steps, then linear refinement at the first
   crossing) -> first-hit surface point per pixel. Foreground pixels whose ray misses the hull get the depth of
   nearby hits (hole filling), else of the proxy, with lower confidence.

``OraclePrior`` ("oracle") turns ground-truth depth into position maps. It exists only for ablations and
needs ``capture.meta["depth"]``; nothing else ever passes ground-truth depth to a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import Cameras, pixel_rays
from ..capture import Capture
from ..errors import InputError
from ..head_template import HEAD_BOX_CENTER, HEAD_BOX_HALF, PROXY_AXES, PROXY_CENTER, proxy_radius
from .base import PriorOutput, hard_confidence

__all__ = ["VisualHullConfig", "VisualHullPrior", "OraclePrior", "visual_hull_maps", "visual_hull_maps_batched",
           "depth_to_positions"]


@dataclass
class VisualHullConfig:
    grid: int = 64                 # voxels along the box's longest side
    box_scale: float = 1.25        # enlarge the template head box (big hair, identity scale)
    tolerance: float = 0.01        # silhouette dilation, fraction of the image size
    softness: float = 0.006        # silhouette edge softness, fraction of the image size
    carve_votes: int = 1           # views that must see a voxel outside to carve it (raise for noisy masks)
    proxy_views: int = 2           # intersect with the head proxy when V <= this
    proxy_inflate: float = 1.0     # proxy enlargement for 2 <= V <= proxy_views
    proxy_inflate_many: float = 1.1  # ... for V > proxy_views (0 = no proxy)
    steps: int = 48                # coarse ray-marching samples per ray (then 10 fine ones)
    resolution: int | None = 128   # compute maps at most at this size, then upsample (None: full size)
    mask_threshold: float = 0.5


def _proxy_fit(masks: torch.Tensor, cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """Move/scale the proxy ellipsoid so its projections match the silhouettes' centroids and extents.
    masks [V, H, W] -> (centre [3], axes [3])."""
    dev = masks.device
    c0 = torch.as_tensor(PROXY_CENTER, dtype=torch.float32, device=dev)
    a0 = torch.as_tensor(PROXY_AXES, dtype=torch.float32, device=dev)
    V, H, W = masks.shape
    fg = masks > 0.5
    if not fg.any():
        return c0, a0
    # scale: ratio of silhouette area to the projected proxy area (approx. with the sphere of mean radius)
    uv, z = cams.project(c0[None])
    f = 0.5 * (cams.K[:, 0, 0] + cams.K[:, 1, 1])
    r_mean = float(a0.prod() ** (1 / 3))
    proj_area = torch.pi * (f * r_mean / z[:, 0]) ** 2
    area = fg.flatten(1).sum(1).float()
    ok = area > 16
    s = torch.sqrt(area[ok] / proj_area[ok]).median().clamp(0.75, 1.3) if ok.any() else torch.tensor(1.0, device=dev)
    # shift: back-project the silhouette centroid offsets at the proxy depth, average over views
    ys, xs = torch.meshgrid(torch.arange(H, device=dev) + 0.5, torch.arange(W, device=dev) + 0.5, indexing="ij")
    shifts = []
    for v in range(V):
        if not ok[v]:
            continue
        m = fg[v].float()
        cu, cv = (m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()
        du = (cu - uv[v, 0, 0]) * z[v, 0] / cams.K[v, 0, 0]
        dv = (cv - uv[v, 0, 1]) * z[v, 0] / cams.K[v, 1, 1]
        R = cams.world_to_cam[v, :3, :3]
        shifts.append(R.T @ torch.stack([du, dv, torch.zeros_like(du)]))
    shift = torch.stack(shifts).mean(0).clamp(-0.05, 0.05) if shifts else torch.zeros(3, device=dev)
    return c0 + shift, a0 * s


def _soft_silhouettes(masks: torch.Tensor, tol_px: float, soft_px: float) -> torch.Tensor:
    """Dilate by tol_px and blur by soft_px: [V, H, W] -> [V, 1, H, W] in [0, 1]."""
    m = (masks[:, None] > 0.5).float()
    k = max(1, int(round(tol_px))) * 2 + 1
    m = F.max_pool2d(m, k, stride=1, padding=k // 2)
    r = max(1, int(round(soft_px)))
    m = F.avg_pool2d(m, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return m


def _carve(masks: torch.Tensor, cams: Cameras, cfg: VisualHullConfig, proxy) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> occupancy [1, 1, D, Hg, Wg] in [0, 1], box min [3], box size [3]."""
    dev = masks.device
    V, H, W = masks.shape
    half = torch.as_tensor(HEAD_BOX_HALF, dtype=torch.float32, device=dev) * cfg.box_scale
    cen = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32, device=dev)
    vox = float(2 * half.max() / cfg.grid)
    n = [max(8, int(round(float(2 * h) / vox))) for h in half]  # x, y, z
    axes = [torch.linspace(float(cen[i] - half[i]), float(cen[i] + half[i]), n[i], device=dev) for i in range(3)]
    Z, Y, X = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    pts = torch.stack([X, Y, Z], -1).reshape(-1, 3)
    size = max(H, W)
    sil = _soft_silhouettes(masks, cfg.tolerance * size, cfg.softness * size)
    uv, z = cams.project(pts)  # [V, P, 2], [V, P]
    grid = torch.stack([uv[..., 0] / W * 2 - 1, uv[..., 1] / H * 2 - 1], -1)[:, :, None]  # [V, P, 1, 2]
    # outside the frame a silhouette continues as its border: background borders carve (head-centric crops),
    # foreground borders (a head cut by the frame) do not
    inside = F.grid_sample(sil, grid, mode="bilinear", align_corners=False, padding_mode="border")[:, 0, :, 0]
    seen = z > 1e-3
    outside = torch.where(seen, 1 - inside, torch.zeros_like(inside)).sum(0)  # soft count of carving views
    occ = (cfg.carve_votes - outside).clamp(0, 1)
    if proxy is not None:  # the template head, moved/scaled to the silhouettes and inflated by `infl`
        c, scale, infl = proxy
        rel = (pts - c) / scale
        dist = rel.norm(dim=-1)
        q = dist / (infl * proxy_radius(rel / dist.clamp(min=1e-6)[:, None]))
        occ = occ * torch.sigmoid((1.0 - q) * 40)
    occ = occ.reshape(1, 1, n[2], n[1], n[0])
    return occ, cen - half, 2 * half


def _sample_occ(occ, bmin, bsize, p):
    """Trilinear occupancy at points p [R, S, 3] -> [R, S]."""
    g = (p - bmin) / bsize * 2 - 1
    R, S = p.shape[:2]
    return F.grid_sample(occ, g.reshape(1, R, S, 1, 3), mode="bilinear", align_corners=True,
                         padding_mode="zeros").reshape(R, S)


def _first_crossing(vals, t):
    """First index where vals [R, S] exceeds 0.5, linearly refined -> (t_hit [R], hit [R], i0 [R])."""
    above = vals > 0.5
    first = torch.argmax(above.to(torch.uint8), -1)
    hit = above.any(-1)
    i1 = first.clamp(min=1)
    i0 = i1 - 1
    v0 = vals.gather(-1, i0[:, None])[:, 0]
    v1 = vals.gather(-1, i1[:, None])[:, 0]
    frac = ((0.5 - v0) / (v1 - v0).clamp(min=1e-6)).clamp(0, 1)
    t0 = t.gather(-1, i0[:, None])[:, 0]
    t1 = t.gather(-1, i1[:, None])[:, 0]
    th = torch.where(first == 0, t0, t0 + frac * (t1 - t0))
    return th, hit, t0, t1


def _march(occ, bmin, bsize, cams: Cameras, H: int, W: int, steps: int, need: torch.Tensor):
    """First crossing of occ = 0.5 along the rays of pixels where ``need`` [V, H, W]: coarse steps, then a fine
    pass inside the crossing interval. -> (t [V, H, W], hit [V, H, W], origins, directions)."""
    o, d = pixel_rays(cams, H, W)  # [V, H, W, 3]
    sel = torch.nonzero(need.reshape(-1)).reshape(-1)
    t_out = torch.zeros(need.numel(), device=o.device)
    hit_out = torch.zeros(need.numel(), dtype=torch.bool, device=o.device)
    if len(sel):
        os_, ds = o.reshape(-1, 3)[sel], d.reshape(-1, 3)[sel]
        inv = 1.0 / torch.where(ds.abs() < 1e-9, torch.full_like(ds, 1e-9), ds)
        ta, tb = (bmin - os_) * inv, (bmin + bsize - os_) * inv
        tn = torch.minimum(ta, tb).amax(-1).clamp(min=0)
        tf = torch.maximum(ta, tb).amin(-1)
        valid = tf > tn
        s = torch.linspace(0, 1, steps, device=o.device)
        t = tn[:, None] + (tf - tn).clamp(min=0)[:, None] * s
        vals = _sample_occ(occ, bmin, bsize, os_[:, None] + t[..., None] * ds[:, None])
        _, hit, t0, t1 = _first_crossing(vals, t)
        s2 = torch.linspace(0, 1, 10, device=o.device)
        tt = t0[:, None] + (t1 - t0)[:, None] * s2
        vals2 = _sample_occ(occ, bmin, bsize, os_[:, None] + tt[..., None] * ds[:, None])
        th, hit2, _, _ = _first_crossing(vals2, tt)
        th = torch.where(hit2, th, t0)
        t_out[sel] = th
        hit_out[sel] = hit & valid
    return t_out.reshape(need.shape), hit_out.reshape(need.shape), o, d


def _ellipsoid_depth(o, d, c, a):
    """Ray parameter of the first hit of ellipsoid (c, a), else of the closest approach; -> (t, hit)."""
    q = d / a
    m = (o - c) / a
    A = (q * q).sum(-1)
    B = (q * m).sum(-1)
    C = (m * m).sum(-1) - 1
    disc = B * B - A * C
    t_hit = (-B - disc.clamp(min=0).sqrt()) / A
    t_close = -B / A
    return torch.where(disc > 0, t_hit, t_close), disc > 0


def _fill(t: torch.Tensor, ok: torch.Tensor, need: torch.Tensor, iters: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill t [V, H, W] where need & ~ok by repeated normalised 3x3 averaging of known values."""
    val = torch.where(ok, t, torch.zeros_like(t))[:, None]
    w = ok.float()[:, None]
    for _ in range(iters):
        if bool(((w[:, 0] > 0) | ~need).all()):
            break
        sv = F.avg_pool2d(val, 3, 1, 1) * 9
        sw = F.avg_pool2d(w, 3, 1, 1) * 9
        newly = (w == 0) & (sw > 0)
        val = torch.where(newly, sv / sw.clamp(min=1e-6), val)
        w = torch.where(newly, torch.ones_like(w), w)
    return val[:, 0], w[:, 0] > 0


def visual_hull_maps(masks: torch.Tensor, cams: Cameras, cfg: VisualHullConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """masks [V, H, W] (float, foreground ~1) + V cameras -> (positions [V, H, W, 3] metres, confidence [V, H, W]).

    Runs on the masks' device (CPU or CUDA), vectorised over views and pixels."""
    cfg = cfg or VisualHullConfig()
    V, H, W = masks.shape
    if len(cams) != V:
        raise InputError(f"visual hull: {V} masks but {len(cams)} cameras")
    cams_cpu = cams.to("cpu")  # build derived cameras on the CPU, then move them
    cams = cams_cpu.to(masks.device)
    masks = masks.float()
    # work at a reduced resolution (the maps are smooth; the confidence keeps the full-resolution mask)
    r = cfg.resolution
    if r is not None and max(H, W) > r:
        h, w = max(8, round(H * r / max(H, W))), max(8, round(W * r / max(H, W)))
        m_lo = F.interpolate(masks[:, None], size=(h, w), mode="area")[:, 0]
        c_lo = cams_cpu.resize(w, h).to(masks.device)
    else:
        h, w, m_lo, c_lo = H, W, masks, cams
    fg = m_lo > cfg.mask_threshold
    proxy = _proxy_fit(m_lo, c_lo)
    c, a = proxy
    # few views: the proxy bounds depth; more views: a generous proxy only trims what no view could carve
    infl = 1.0 if V == 1 else (cfg.proxy_inflate if V <= cfg.proxy_views else cfg.proxy_inflate_many)
    carve_proxy = (c, a / torch.as_tensor(PROXY_AXES, dtype=torch.float32, device=a.device), infl) if infl > 0 else None
    occ, bmin, bsize = _carve(m_lo, c_lo, cfg, carve_proxy)
    t, hit, o, d = _march(occ, bmin, bsize, c_lo, h, w, cfg.steps, fg)
    ok = hit & fg
    t_f, filled = _fill(t, ok, fg)
    t_p, _ = _ellipsoid_depth(o, d, c, a)
    t_all = torch.where(ok, t, torch.where(filled, t_f, t_p))
    # background pixels: the point on the ray nearest to the head centre (finite, smooth; never kept: conf < tau)
    t_bg = -((o - c) * d).sum(-1)
    t_all = torch.where(fg, t_all, t_bg)
    pos = o + t_all[..., None] * d
    rel = torch.where(ok, torch.full_like(t, 1.0 if V > 2 else (0.7 if V == 2 else 0.5)), torch.full_like(t, 0.25))
    if (h, w) != (H, W):
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(H, W), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        rel = F.interpolate(rel[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    conf = masks.clamp(0, 1) * (0.55 + 0.45 * rel)
    conf = torch.where(masks > cfg.mask_threshold, conf.clamp(min=0.51), conf.clamp(max=0.49))
    return pos, conf


class VisualHullPrior:
    """PositionPrior "visual_hull": positions and confidence from the capture's masks and cameras only."""

    name = "visual_hull"

    def __init__(self, config: VisualHullConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or VisualHullConfig()
        self.device = torch.device(device)

    def __call__(self, capture: Capture) -> PriorOutput:
        if capture.masks is None:
            raise InputError("visual_hull prior: the capture has no masks; estimate foreground masks first (front end) "
                             "or use another prior")
        with torch.no_grad():
            pos, conf = visual_hull_maps(torch.as_tensor(capture.masks, device=self.device), capture.cameras, self.config)
        return PriorOutput(pos.float(), conf.float())


def depth_to_positions(depth: torch.Tensor, cams: Cameras) -> torch.Tensor:
    """Camera-z depth [V, H, W] -> world points [V, H, W, 3]."""
    V, H, W = depth.shape
    o, d = pixel_rays(cams.to(depth.device), H, W)
    R = cams.world_to_cam[:, :3, :3].to(depth.device)
    dz = torch.einsum("vk,vhwk->vhw", R[:, 2], d)  # camera-z of the unit ray
    return o + (depth / dz.clamp(min=1e-6))[..., None] * d


class OraclePrior:
    """PositionPrior "oracle": ground-truth depth -> positions. FOR ABLATIONS ONLY (it needs rendered depth in
    ``capture.meta["depth"]`` [V, H, W], which only SynthHeads provides)."""

    name = "oracle"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def __call__(self, capture: Capture) -> PriorOutput:
        depth = capture.meta.get("depth")
        if depth is None:
            raise InputError("oracle prior: capture.meta['depth'] is missing; the oracle needs ground-truth depth "
                             "(SynthHeads ablations only). Use the 'visual_hull' prior for real data.")
        depth = torch.as_tensor(np.asarray(depth), dtype=torch.float32, device=self.device)
        pos = depth_to_positions(depth, capture.cameras)
        m = (torch.as_tensor(np.asarray(capture.masks, np.float32), device=self.device) if capture.masks is not None
             else (depth > 0).float())
        return PriorOutput(pos, hard_confidence(m))


# ---- batched entry point (the SynthHeads data engine) -----------------------------------------------------
def _proxy_fit_batched(masks: torch.Tensor, cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """``_proxy_fit`` for S samples at once, without host synchronisation: masks [S, V, H, W], cams (S*V) ->
    (centres [S, 3], axes [S, 3])."""
    dev = masks.device
    S, V, H, W = masks.shape
    c0 = torch.as_tensor(PROXY_CENTER, dtype=torch.float32, device=dev)
    a0 = torch.as_tensor(PROXY_AXES, dtype=torch.float32, device=dev)
    fg = masks > 0.5
    any_fg = fg.flatten(1).any(1)
    uv, z = cams.project(c0[None])
    uv, z = uv[:, 0].reshape(S, V, 2), z[:, 0].reshape(S, V)
    K = cams.K.reshape(S, V, 3, 3)
    f = 0.5 * (K[..., 0, 0] + K[..., 1, 1])
    r_mean = float(a0.prod() ** (1 / 3))
    proj_area = torch.pi * (f * r_mean / z) ** 2
    area = fg.flatten(2).sum(2).float()
    ok = area > 16
    ratio = torch.where(ok, torch.sqrt(area / proj_area), torch.full_like(area, float("nan")))
    s = torch.where(ok.any(1), ratio.nanmedian(1).values.clamp(0.75, 1.3), torch.ones(S, device=dev))
    ys, xs = torch.meshgrid(torch.arange(H, device=dev) + 0.5, torch.arange(W, device=dev) + 0.5, indexing="ij")
    m = fg.float()
    msum = m.sum((2, 3))
    cu, cv = (m * xs).sum((2, 3)) / msum, (m * ys).sum((2, 3)) / msum
    du = (cu - uv[..., 0]) * z / K[..., 0, 0]
    dv = (cv - uv[..., 1]) * z / K[..., 1, 1]
    R = cams.world_to_cam[:, :3, :3].reshape(S, V, 3, 3)
    sh = (R.transpose(-1, -2) @ torch.stack([du, dv, torch.zeros_like(du)], -1)[..., None])[..., 0]  # [S, V, 3]
    sh = torch.where(ok[..., None], sh, torch.zeros_like(sh))
    n_ok = ok.sum(1, keepdim=True)
    shift = torch.where(n_ok > 0, sh.sum(1) / n_ok.clamp(min=1), torch.zeros(S, 3, device=dev)).clamp(-0.05, 0.05)
    c = torch.where(any_fg[:, None], c0 + shift, c0)
    a = torch.where(any_fg[:, None], a0 * s[:, None], a0)
    return c, a


def visual_hull_maps_batched(masks: torch.Tensor, cams: Cameras, cfg: VisualHullConfig | None = None,
                             max_samples: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``visual_hull_maps`` for S samples of V views in one pass: masks [S, V, H, W], cams (S*V, sample-major) ->
    (positions [S, V, H, W, 3], confidence [S, V, H, W]). The same maps up to the order of float sums (masked means
    and medians instead of per-view loops), with one host synchronisation (the largest foreground ray count) instead
    of one per view and step: the hole filling runs its full iteration count (extra ones only reach background).
    At most ``max_samples`` samples per pass: the ray march holds [S, rays, steps, 3] floats, and a whole engine chunk
    (8 steps x batch 16 = 128 samples) asked for 3.4 GiB at once and ran out of memory on a shared H200 (session 10)."""
    cfg = cfg or VisualHullConfig()
    S, V, H, W = masks.shape
    if len(cams) != S * V:
        raise InputError(f"visual hull: {S} x {V} masks but {len(cams)} cameras")
    if S > max_samples:  # each sample's maps depend on its own masks and cameras only
        parts = [visual_hull_maps_batched(masks[i:i + max_samples], cams[i * V:(i + max_samples) * V], cfg, max_samples)
                 for i in range(0, S, max_samples)]
        return torch.cat([p for p, _ in parts]), torch.cat([c for _, c in parts])
    dev = masks.device
    cams_cpu = cams.to("cpu")
    masks = masks.float()
    r = cfg.resolution
    if r is not None and max(H, W) > r:
        h, w = max(8, round(H * r / max(H, W))), max(8, round(W * r / max(H, W)))
        m_lo = F.interpolate(masks.reshape(S * V, 1, H, W), size=(h, w), mode="area").reshape(S, V, h, w)
        c_lo = cams_cpu.resize(w, h).to(dev)
    else:
        h, w, m_lo, c_lo = H, W, masks, cams_cpu.to(dev)
    fg = m_lo > cfg.mask_threshold
    c, a = _proxy_fit_batched(m_lo, c_lo)
    infl = 1.0 if V == 1 else (cfg.proxy_inflate if V <= cfg.proxy_views else cfg.proxy_inflate_many)
    # carve S volumes
    half = torch.as_tensor(HEAD_BOX_HALF, dtype=torch.float32, device=dev) * cfg.box_scale
    cen = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32, device=dev)
    vox = float(2 * half.max() / cfg.grid)
    n = [max(8, int(round(float(2 * hh) / vox))) for hh in half]
    axes = [torch.linspace(float(cen[i] - half[i]), float(cen[i] + half[i]), n[i], device=dev) for i in range(3)]
    Z, Y, X = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    pts = torch.stack([X, Y, Z], -1).reshape(-1, 3)
    size = max(h, w)
    sil = _soft_silhouettes(m_lo.reshape(S * V, h, w), cfg.tolerance * size, cfg.softness * size)
    uv, z = c_lo.project(pts)
    grid = torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], -1)[:, :, None]
    inside = F.grid_sample(sil, grid, mode="bilinear", align_corners=False, padding_mode="border")[:, 0, :, 0]
    outside = torch.where(z > 1e-3, 1 - inside, torch.zeros_like(inside)).reshape(S, V, -1).sum(1)
    occ = (cfg.carve_votes - outside).clamp(0, 1)                             # [S, P]
    if infl > 0:
        scale = a / torch.as_tensor(PROXY_AXES, dtype=torch.float32, device=dev)
        rel = (pts[None] - c[:, None]) / scale[:, None]
        dist = rel.norm(dim=-1)
        q = dist / (infl * proxy_radius(rel / dist.clamp(min=1e-6)[..., None]))
        occ = occ * torch.sigmoid((1.0 - q) * 40)
    occ = occ.reshape(S, 1, n[2], n[1], n[0])
    bmin, bsize = cen - half, 2 * half
    # march the foreground pixels' rays through their sample's volume: each sample's foreground rays first, as
    # many as the fullest sample has (one host sync for that count); the rest are masked out below
    o_all, d_all = pixel_rays(c_lo, h, w)                                      # [S*V, h, w, 3]
    o_all, d_all = o_all.reshape(S, -1, 3), d_all.reshape(S, -1, 3)
    need = fg.reshape(S, -1)
    rmax = max(1, int(need.sum(1).max()))
    order = torch.argsort((~need).to(torch.uint8), dim=1, stable=True)[:, :rmax]
    o = o_all.gather(1, order[..., None].expand(-1, -1, 3))
    d = d_all.gather(1, order[..., None].expand(-1, -1, 3))
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    ta, tb = (bmin - o) * inv, (bmin + bsize - o) * inv
    tn = torch.minimum(ta, tb).amax(-1).clamp(min=0)
    tf = torch.maximum(ta, tb).amin(-1)
    valid = tf > tn

    def sample_occ(p):  # [S, R, k, 3] -> [S, R, k]
        g = (p - bmin) / bsize * 2 - 1
        return F.grid_sample(occ, g[:, :, :, None], mode="bilinear", align_corners=True, padding_mode="zeros")[:, 0, :, :, 0]

    def crossing(vals, t):  # _first_crossing over [S, R, k]
        above = vals > 0.5
        first = torch.argmax(above.to(torch.uint8), -1)
        hit = above.any(-1)
        i1 = first.clamp(min=1)
        i0 = i1 - 1
        v0, v1 = vals.gather(-1, i0[..., None])[..., 0], vals.gather(-1, i1[..., None])[..., 0]
        frac = ((0.5 - v0) / (v1 - v0).clamp(min=1e-6)).clamp(0, 1)
        t0, t1 = t.gather(-1, i0[..., None])[..., 0], t.gather(-1, i1[..., None])[..., 0]
        return torch.where(first == 0, t0, t0 + frac * (t1 - t0)), hit, t0, t1

    s1 = torch.linspace(0, 1, cfg.steps, device=dev)
    t = tn[..., None] + (tf - tn).clamp(min=0)[..., None] * s1
    _, hit, t0, t1 = crossing(sample_occ(o[:, :, None] + t[..., None] * d[:, :, None]), t)
    s2 = torch.linspace(0, 1, 10, device=dev)
    tt = t0[..., None] + (t1 - t0)[..., None] * s2
    th, hit2, _, _ = crossing(sample_occ(o[:, :, None] + tt[..., None] * d[:, :, None]), tt)
    t_h = torch.zeros_like(need, dtype=th.dtype).scatter(1, order, torch.where(hit2, th, t0))
    hit = torch.zeros_like(need).scatter(1, order, hit & valid)
    t_h = torch.where(need, t_h, torch.zeros_like(t_h)).reshape(S * V, h, w)
    hit = (hit & need).reshape(S * V, h, w)
    o, d = o_all, d_all
    fgv = fg.reshape(S * V, h, w)
    ok = hit & fgv
    val = torch.where(ok, t_h, torch.zeros_like(t_h))[:, None]
    wt = ok.float()[:, None]
    for _ in range(24):  # _fill's iterations, all of them (no host check)
        sv = F.avg_pool2d(val, 3, 1, 1) * 9
        sw = F.avg_pool2d(wt, 3, 1, 1) * 9
        newly = (wt == 0) & (sw > 0)
        val = torch.where(newly, sv / sw.clamp(min=1e-6), val)
        wt = torch.where(newly, torch.ones_like(wt), wt)
    t_f, filled = val[:, 0], wt[:, 0] > 0
    o, d = o.reshape(S, V, h, w, 3), d.reshape(S, V, h, w, 3)
    cb, ab = c[:, None, None, None], a[:, None, None, None]
    t_p, _ = _ellipsoid_depth(o, d, cb, ab)
    t_h, ok, t_f, filled, fgv = (x.reshape(S, V, h, w) for x in (t_h, ok, t_f, filled, fgv))
    t_all = torch.where(ok, t_h, torch.where(filled, t_f, t_p))
    t_bg = -((o - cb) * d).sum(-1)
    t_all = torch.where(fgv, t_all, t_bg)
    pos = o + t_all[..., None] * d
    rel = torch.where(ok, torch.full_like(t_h, 1.0 if V > 2 else (0.7 if V == 2 else 0.5)), torch.full_like(t_h, 0.25))
    if (h, w) != (H, W):
        pos = F.interpolate(pos.reshape(S * V, h, w, 3).permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                            align_corners=False).permute(0, 2, 3, 1).reshape(S, V, H, W, 3)
        rel = F.interpolate(rel.reshape(S * V, 1, h, w), size=(H, W), mode="bilinear", align_corners=False).reshape(S, V, H, W)
    conf = masks.clamp(0, 1) * (0.55 + 0.45 * rel)
    conf = torch.where(masks > cfg.mask_threshold, conf.clamp(min=0.51), conf.clamp(max=0.49))
    return pos, conf
