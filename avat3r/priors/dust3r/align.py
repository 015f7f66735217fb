"""Global alignment of pairwise DUSt3R pointmaps: with known cameras (eq. 2, I^pos = DUSt3R(I, pi)) and pose-free.

Known cameras (poses and intrinsics fixed). Unknowns: one depth map d_v per view and one similarity
T_e = (s_e, R_e, t_e) per edge e = (i, j) that maps the pair's prediction (in camera i's frame, arbitrary scale)
into the world. The energy is DUSt3R's global-alignment loss with ``log`` confidence weights:

    E = sum_e sum_{k in {i, j}} sum_p  log C_k^e(p) * || T_e X_k^e(p) - (c_k + d_k(p) r_k(p)) ||

with c_k the camera centre and r_k(p) the world ray of pixel p scaled to unit camera depth. Instead of Adam on
all unknowns (the original), this minimises E by block-coordinate descent: for fixed depths each T_e is a
weighted Umeyama fit (closed form), for fixed T_e each depth is a weighted least-squares projection onto its
ray (closed form), and the L2 (not squared) distance is handled by iteratively re-weighted least squares. It
starts from T_e = (s_e, R_cam_i, c_i) with s_e fitted so that view j's points lie on camera j's rays, then
refines each pair alone by Gauss-Newton on point-to-ray distances (7 unknowns per pair, on a pixel subset; this
absorbs the pair's rotation error relative to the known cameras), then runs the alternation (~10 iterations).
The world scale comes from the known camera baselines.

Pose-free (cameras unknown; the paper's stated limitation, offered to the front end): focal lengths from each
view's own pointmap (principal point at the centre), a maximum spanning tree over pairs (score = mean conf
product) chains the pairwise predictions into one frame, each camera pose is the Umeyama fit of its own-frame
pointmap to its chained world pointmap, then the known-camera alignment above refines the depth maps. The
resulting world is camera 0's frame with camera 0's median depth set to ``depth0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...cameras import Cameras
from .inference import PairPredictions

__all__ = ["AlignConfig", "AlignResult", "align_known_cameras", "estimate_cameras", "umeyama"]


@dataclass
class AlignConfig:
    init_steps: int = 8         # Gauss-Newton steps fitting each pair to its cameras' rays (per pair, before fusion)
    init_points: int = 8192     # pixels per pair used by that fit (strided subsample)
    iterations: int = 10        # alternating updates (each: similarities, then depths)
    robust: bool = True         # IRLS on the L2 distance (DUSt3R's loss); False = squared distances
    irls_eps: float = 1e-3      # IRLS floor, relative to the mean scene depth
    min_depth: float = 1e-4     # depths are clamped to stay in front of the cameras (relative to mean depth)


@dataclass
class AlignResult:
    """depth [V, h, w] (z in camera frame), positions [V, h, w, 3] world, conf [V, h, w] (max DUSt3R conf over
    the pairs the view is in), pair_scale [E], losses: energy per iteration (conf-weighted mean distance)."""

    depth: torch.Tensor
    positions: torch.Tensor
    conf: torch.Tensor
    pair_scale: torch.Tensor
    losses: list[float] = field(default_factory=list)


def umeyama(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor, with_scale: bool = True):
    """Batched weighted similarity fit dst ~ s R src + t. src, dst [B, N, 3]; w [B, N] -> s [B], R [B,3,3], t [B,3]."""
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    mu_s = (w[..., None] * src).sum(1)
    mu_d = (w[..., None] * dst).sum(1)
    a, b = src - mu_s[:, None], dst - mu_d[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", w, b, a)  # [B, 3, 3] = sum w (dst)(src)^T
    U, S, Vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.ones_like(S)
    D[:, 2] = torch.where(sign == 0, torch.ones_like(sign), sign)
    R = U @ torch.diag_embed(D) @ Vh
    var = (w * (a * a).sum(-1)).sum(-1)
    s = (S * D).sum(-1) / var.clamp(min=1e-12) if with_scale else torch.ones_like(var)
    t = mu_d - s[:, None] * torch.einsum("bij,bj->bi", R, mu_s)
    return s, R, t


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[..., 0])
    return torch.stack([torch.stack([z, -v[..., 2], v[..., 1]], -1), torch.stack([v[..., 2], z, -v[..., 0]], -1),
                        torch.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _fit_pairs_to_rays(X, w, c, u, s, R, t, steps: int, robust: bool, eps: float):
    """Per-pair Gauss-Newton on point-to-ray distances: find (s, R, t) so that s R X + t lies on the known rays.
    X, c, u [E, P, 3] (u unit); w [E, P]. Left perturbation Y -> (1 + a) (I + [o]x) Y + b, 7 unknowns per pair."""
    for _ in range(steps):
        Y = s[:, None, None] * torch.einsum("eij,epj->epi", R, X) + t[:, None]
        D = Y - c
        res = D - u * (u * D).sum(-1, keepdim=True)                       # A (Y - c), A = I - u u^T
        om = w / res.norm(dim=-1).clamp(min=eps) if robust else w
        J = torch.cat([Y[..., None], -_skew(Y), torch.eye(3, device=X.device).expand(*Y.shape[:2], 3, 3)], -1)  # [E,P,3,7]
        AJ = J - u[..., None] * torch.einsum("epi,epij->epj", u, J)[..., None, :]
        H = torch.einsum("ep,epki,epkj->eij", om, AJ, AJ)
        g = torch.einsum("ep,epki,epk->ei", om, AJ, res)
        H = H + 1e-6 * torch.diagonal(H, dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(7, device=X.device)
        d = -torch.linalg.solve(H, g[..., None])[..., 0]
        a, o, b = d[:, 0], d[:, 1:4], d[:, 4:]
        th = o.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        Kx = _skew(o / th)
        dR = torch.eye(3, device=X.device) + th.sin()[..., None] * Kx + (1 - th.cos())[..., None] * Kx @ Kx
        s = s * (1 + a).clamp(min=0.5, max=2.0)
        R = dR @ R
        t = (1 + a)[:, None] * torch.einsum("eij,ej->ei", dR, t) + b
    return s, R, t


def _rays(cameras: Cameras, h: int, w: int) -> torch.Tensor:
    """World ray directions scaled to unit camera depth: [V, h*w, 3] (pixel centres at +0.5)."""
    dev = cameras.device
    v, u = torch.meshgrid(torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3).float()
    d_cam = torch.einsum("vij,nj->vni", torch.linalg.inv(cameras.K), pix)
    return torch.einsum("vij,vnj->vni", cameras.cam_to_world[:, :3, :3], d_cam)


def align_known_cameras(pred: PairPredictions, cameras: Cameras, config: AlignConfig | None = None) -> AlignResult:
    """Pairwise predictions at the prepared resolution + cameras of that resolution -> aligned depth/positions."""
    cfg = config or AlignConfig()
    dev = pred.pts_i.device
    cameras = cameras.to(dev)
    E, h, w, _ = pred.pts_i.shape
    V, N = len(cameras), h * w
    ei = torch.tensor([e[0] for e in pred.edges], device=dev)
    ej = torch.tensor([e[1] for e in pred.edges], device=dev)
    views = torch.cat([ei, ej])                                              # [2E]: whose pixels each half holds
    X = torch.cat([pred.pts_i.reshape(E, N, 3), pred.pts_j.reshape(E, N, 3)], 1)  # [E, 2N, 3]
    Wc = torch.cat([pred.conf_i.reshape(E, N), pred.conf_j.reshape(E, N)], 1).clamp(min=1.0).log()  # [E, 2N]
    rays = _rays(cameras, h, w)                                              # [V, N, 3]
    c2w = cameras.cam_to_world
    centers, Rc2w = c2w[:, :3, 3], c2w[:, :3, :3]

    # ---- init: T_e = (s_e, R_cam_i, c_i); s_e puts view j's predicted points on camera j's rays
    R_w2c_i = Rc2w[ei].transpose(1, 2)
    o = torch.einsum("eij,ej->ei", R_w2c_i, centers[ej] - centers[ei])       # c_j in frame i
    u = torch.nn.functional.normalize(torch.einsum("eij,enj->eni", R_w2c_i, rays[ej]), dim=-1)
    Xj = pred.pts_j.reshape(E, N, 3)
    wj = Wc[:, N:]
    ux, uo = (u * Xj).sum(-1), (u * o[:, None]).sum(-1)
    num = (wj * ((Xj * o[:, None]).sum(-1) - ux * uo)).sum(-1)
    den = (wj * ((Xj * Xj).sum(-1) - ux * ux)).sum(-1)
    s = torch.where(den > 1e-12, num / den.clamp(min=1e-12), torch.ones_like(num)).clamp(min=1e-6)
    R, t = Rc2w[ei].clone(), centers[ei].clone()
    if cfg.init_steps > 0:  # refine each pair on a strided subset of its pixels (absorbs per-pair rotation errors)
        stride = max(1, (2 * N) // cfg.init_points)
        sub = torch.arange(0, 2 * N, stride, device=dev)
        c_all = torch.cat([centers[ei][:, None].expand(E, N, 3), centers[ej][:, None].expand(E, N, 3)], 1)[:, sub]
        u_all = torch.nn.functional.normalize(torch.cat([rays[ei], rays[ej]], 1)[:, sub], dim=-1)
        eps = cfg.irls_eps * (centers.norm(dim=-1).mean().clamp(min=1e-6))
        s, R, t = _fit_pairs_to_rays(X[:, sub], Wc[:, sub], c_all, u_all, s, R, t, cfg.init_steps, cfg.robust, eps)

    def depths_from(Y, omega, prev):
        Yv = Y.reshape(E, 2, N, 3).transpose(0, 1).reshape(2 * E, N, 3)
        om = omega.reshape(E, 2, N).transpose(0, 1).reshape(2 * E, N)
        r = rays[views]
        numer = torch.zeros(V, N, device=dev).index_add_(0, views, om * ((Yv - centers[views][:, None]) * r).sum(-1))
        denom = torch.zeros(V, N, device=dev).index_add_(0, views, om * (r * r).sum(-1))
        d = numer / denom.clamp(min=1e-12)
        return torch.where(denom > 1e-12, d, prev)

    def transform(s, R, t):
        return s[:, None, None] * torch.einsum("eij,enj->eni", R, X) + t[:, None]

    def targets(d):
        P = centers[:, None] + d[..., None] * rays                          # [V, N, 3]
        return torch.cat([P[ei], P[ej]], 1)                                  # [E, 2N, 3]

    Y = transform(s, R, t)
    d = depths_from(Y, Wc, torch.ones(V, N, device=dev))
    scale = d.abs().mean().clamp(min=1e-8)
    d = d.clamp(min=cfg.min_depth * scale)
    losses = []
    for _ in range(cfg.iterations):
        dist = (Y - targets(d)).norm(dim=-1)
        losses.append(float((Wc * dist).sum() / Wc.sum().clamp(min=1e-12)))
        omega = Wc / dist.clamp(min=cfg.irls_eps * scale) if cfg.robust else Wc
        s, R, t = umeyama(X, targets(d), omega)
        Y = transform(s, R, t)
        dist = (Y - targets(d)).norm(dim=-1)
        omega = Wc / dist.clamp(min=cfg.irls_eps * scale) if cfg.robust else Wc
        d = depths_from(Y, omega, d).clamp(min=cfg.min_depth * scale)
    dist = (Y - targets(d)).norm(dim=-1)
    losses.append(float((Wc * dist).sum() / Wc.sum().clamp(min=1e-12)))

    allc = torch.cat([pred.conf_i.reshape(E, N), pred.conf_j.reshape(E, N)])
    conf = torch.ones(V, N, device=dev).scatter_reduce(0, views[:, None].expand(-1, N), allc, "amax", include_self=False)
    P = centers[:, None] + d[..., None] * rays
    return AlignResult(d.reshape(V, h, w), P.reshape(V, h, w, 3), conf.reshape(V, h, w), s, losses)


def _focal_from_pointmap(X: torch.Tensor, wts: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Least-squares focal (pixels) of pointmaps X [B, h, w, 3] in their own camera frame, pp at the centre."""
    dev = X.device
    v, u = torch.meshgrid(torch.arange(h, device=dev) + 0.5 - h / 2, torch.arange(w, device=dev) + 0.5 - w / 2, indexing="ij")
    z = X[..., 2].clamp(min=1e-8)
    a, b = X[..., 0] / z, X[..., 1] / z
    ok = (X[..., 2] > 0).float() * wts
    return (ok * (u * a + v * b)).sum((1, 2)) / (ok * (a * a + b * b)).sum((1, 2)).clamp(min=1e-12)


def estimate_cameras(pred: PairPredictions, n_views: int, depth0: float = 1.0) -> Cameras:
    """Pose-free: cameras [n_views] at the prediction resolution from pairwise predictions alone.
    World = camera 0's frame, scaled so that view 0's confidence-weighted median depth is ``depth0``."""
    E, h, w, _ = pred.pts_i.shape
    dev = pred.pts_i.device
    edges = pred.edges
    own = {}  # view -> index of its best edge where it is the first view (own-frame pointmap)
    for k, (i, j) in enumerate(edges):
        if i not in own or pred.conf_i[k].mean() > pred.conf_i[own[i]].mean():
            own[i] = k
    missing = [v for v in range(n_views) if v not in own]
    if missing:
        raise ValueError(f"pose-free alignment needs every view to be the first of some pair; views {missing} are not "
                         "(use the 'complete' or 'star' scene graph)")
    logw_i, logw_j = pred.conf_i.clamp(min=1).log(), pred.conf_j.clamp(min=1).log()
    # focal per view: mean over the edges where the view is first, weighted by confidence
    f = torch.zeros(n_views, device=dev)
    cnt = torch.zeros(n_views, device=dev)
    fe = _focal_from_pointmap(pred.pts_i, logw_i, h, w)
    for k, (i, _) in enumerate(edges):
        f[i] += fe[k]
        cnt[i] += 1
    f = f / cnt
    # maximum spanning tree over pairs, chaining predictions into the frame of the best edge's first view
    score = (pred.conf_i.mean((1, 2)) * pred.conf_j.mean((1, 2))).tolist()
    order = sorted(range(E), key=lambda k: -score[k])
    k0 = order[0]
    world = {edges[k0][0]: pred.pts_i[k0].reshape(-1, 3), edges[k0][1]: pred.pts_j[k0].reshape(-1, 3)}
    while len(world) < n_views:
        for k in order:
            i, j = edges[k]
            if (i in world) != (j in world):
                placed, other = (i, j) if i in world else (j, i)
                src = (pred.pts_i if placed == i else pred.pts_j)[k].reshape(1, -1, 3)
                wt = (logw_i if placed == i else logw_j)[k].reshape(1, -1)
                s, R, t = umeyama(src, world[placed][None], wt)
                oth = (pred.pts_j if placed == i else pred.pts_i)[k].reshape(-1, 3)
                world[other] = s[0] * oth @ R[0].T + t[0]
                break
        else:
            raise ValueError("pose-free alignment: the scene graph does not connect all views")
    # camera poses: own-frame pointmap -> chained world pointmap
    c2w = torch.zeros(n_views, 4, 4, device=dev)
    for v in range(n_views):
        k = own[v]
        s, R, t = umeyama(pred.pts_i[k].reshape(1, -1, 3), world[v][None], logw_i[k].reshape(1, -1))
        c2w[v, :3, :3], c2w[v, :3, 3], c2w[v, 3, 3] = R[0], t[0], 1
    # world := camera 0's frame; scale: median depth of view 0 = depth0
    ref = torch.linalg.inv(c2w[0])
    c2w = ref[None] @ c2w
    z0 = (world[0] @ ref[:3, :3].T + ref[:3, 3])[:, 2]
    med = z0[z0 > 0].median() if (z0 > 0).any() else z0.abs().median()
    c2w[:, :3, 3] *= depth0 / med.clamp(min=1e-8)
    K = torch.zeros(n_views, 3, 3, device=dev)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, w / 2, h / 2, 1
    w2c = torch.linalg.inv(c2w)
    w2c[:, 3] = torch.tensor([0.0, 0, 0, 1], device=dev)
    return Cameras(K.cpu(), w2c.cpu(), w, h)
