"""Pure-PyTorch, differentiable Gaussian-splatting rasterizer (the CPU path; also runs on CUDA tensors).

It reproduces gsplat 1.5.3's pinhole rasterization (front-to-back alpha compositing, 3DGS eq. 3:
C = Σ_i c_i α_i Π_{j<i} (1 - α_j)) with whole-tensor operations, no tiles and no per-Gaussian loop:

1. project (``projection.project_gaussians``) and sort the camera's visible Gaussians by depth;
2. walk the depth-sorted Gaussians in a few chunks, front to back. In a chunk, enumerate (Gaussian, pixel)
   pairs only where alpha >= 1/255 can hold: the pixel rows of each opacity-aware ellipse and, per row, the
   ellipse's analytic x-span (a splat costs what it covers). Gaussians and rows whose pixels have all
   stopped (transmittance exhausted by nearer chunks) are culled first with summed-area tables;
3. alpha per pair = min(0.999, o exp(-sigma)), pairs with alpha < 1/255 dropped;
4. a stable radix sort by pixel (pairs are generated in (image row, depth) order, so this groups each
   pixel's pairs front to back), then the exclusive transmittance as a segmented prefix sum of
   log(1 - alpha) in float64 plus the pixel's log-transmittance from earlier chunks. A pair whose inclusive
   transmittance would be <= 1e-4 stops its pixel (gsplat's exclusive early stop); stopped pixels hold
   log T = -inf;
5. composite: Σ w (rgb, z, 1) per pixel as one CSR sparse x dense product per chunk.

Gradients: steps 2-4 only decide which pairs are blended (the set is piecewise constant, as gsplat's tile
lists are). When gradients are needed, the kept pairs are blended again by ``_Blend``, an autograd Function
whose backward is the 3DGS compositing gradient (as in gsplat's backward kernel), vectorised over pairs.
Cost: O(G) projection and radix depth sort plus O(P) for the P enumerated pairs (≈ visible G x footprint
area, less what occlusion culling removes); memory O(P / chunks), O(K) kept pairs for autograd.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .projection import ALPHA_MAX, T_MIN, Projected, project_gaussians

__all__ = ["rasterize_torch"]

N_CHUNKS = 12  # depth chunks per camera: more = finer occlusion culling, more per-chunk overhead
CHUNK_MIN_PAIRS = 1 << 16  # ... but never chunks smaller than this many (estimated) pairs
CHUNK_MAX_PAIRS = 1 << 22  # ... nor larger (bounds peak memory: ~60 bytes per pair)
_LOG255 = math.log(255.0)  # alpha >= 1/255  <=>  sigma - log(o) <= log(255)
_LOG_TMIN = math.log(T_MIN)
_PAD = 1e-4  # analytic spans are widened by this many pixels so rounding never loses a pixel


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """counts [n] >= 0 -> (owner [M], local [M]) with M = sum(counts): item k of owner i has local k."""
    total = int(counts.sum())
    owner = torch.repeat_interleave(counts, output_size=total)
    starts = counts.cumsum(0) - counts
    local = torch.arange(total, device=counts.device) - torch.index_select(starts, 0, owner)
    return owner, local


def _stable_argsort(keys: torch.Tensor, n_keys: int) -> torch.Tensor:
    """Stable argsort of integer keys in [0, n_keys) -> int64 permutation.

    Radix sorts: numpy's stable sort of uint16 keys on CPU when they fit in 16 bits, else PyTorch's stable
    sort of int32 keys (also a radix sort on CPU; about 10x faster than sorting floats or int64).
    """
    if keys.device.type == "cpu" and n_keys <= 1 << 16:
        return torch.from_numpy(np.argsort(keys.numpy().astype(np.uint16), kind="stable"))
    return torch.sort(keys.to(torch.int32), stable=True).indices


def _sel(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] along dim 0 (index_select is several times faster than advanced indexing on CPU)."""
    return torch.index_select(t, 0, idx)


def _row_table(mx, my, a, b, c, logop, L, y0, nrow, H: int, W: int):
    """One entry per (Gaussian, pixel row) its ellipse sigma <= L touches, x-span solved per row.

    Returns (gid [R] into the given Gaussians, rowpix [R] = y W + x0, ncol [R], d0, A, B, C [R]) with
    sigma - log(o) = (A d + B) d + C at column offset j, d = d0 - j (d = mean_x - pixel centre x).
    """
    gid, k = _expand(nrow)
    y = _sel(y0, gid) + k
    dy = _sel(my, gid) - (y + 0.5)
    ag, bg, cg = _sel(a, gid), _sel(b, gid), _sel(c, gid)
    # 0.5 a dx² + b dy dx + 0.5 c dy² <= L  ->  dx in (-b dy ± sqrt(2 a L - dy² (a c - b²))) / a
    sq = torch.sqrt((2.0 * ag * _sel(L, gid) - dy * dy * (ag * cg - bg * bg)).clamp_(min=0.0)).div_(ag)
    mxg = _sel(mx, gid)
    xc = mxg + bg * dy / ag - 0.5
    x0 = torch.ceil(xc - sq - _PAD).clamp_(min=0)
    x1 = torch.floor(xc + sq + _PAD).clamp_(max=W - 1)
    ncol = (x1 - x0 + 1).clamp_(min=0).long()
    keep = torch.nonzero(ncol > 0).squeeze(1)
    gid, y, x0, dy, ag, bg, cg, mxg = (_sel(t, keep) for t in (gid, y, x0, dy, ag, bg, cg, mxg))
    C = 0.5 * cg * dy * dy - _sel(logop, gid)
    return gid, (y * W + x0).long(), _sel(ncol, keep), mxg - (x0 + 0.5), 0.5 * ag, bg * dy, C


def _weighted_sum(counts: torch.Tensor, cols: torch.Tensor, w: torch.Tensor, feats: torch.Tensor, pix: torch.Tensor):
    """Σ over each pixel's pairs of w * feats[col] -> [n_pix, F]; pairs sorted by pixel, ``counts`` per pixel.

    On CPU a CSR sparse x dense product (several times faster than gather + index_add); elsewhere index_add.
    """
    if w.device.type != "cpu":
        return torch.zeros(len(counts), feats.shape[1], dtype=feats.dtype, device=w.device).index_add_(
            0, pix, _sel(feats, cols).mul_(w[:, None])
        )
    crow = torch.zeros(len(counts) + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():  # CSR support is labelled beta; invariants hold by construction
        warnings.simplefilter("ignore")
        mat = torch.sparse_csr_tensor(crow, cols, w, size=(len(counts), feats.shape[0]), check_invariants=False)
        return mat @ feats


@torch.no_grad()
def _blend_pass(m2d, con, cov2d, op, feats, H: int, W: int, collect: bool):
    """Front-to-back blend of depth-sorted 2D Gaussians [G] in chunks, culling stopped pixels.

    feats [G, 5] = (rgb, z, 1). Returns (acc [H*W, 5] = Σ w feats, kept ids [K] or None, kept pixels [K] or
    None); with ``collect`` the kept pairs (exactly those gsplat blends) are returned in (chunk, pixel,
    depth) order.
    """
    dev, dtype = m2d.device, feats.dtype
    n_pix = H * W
    mx, my = m2d[:, 0].contiguous(), m2d[:, 1].contiguous()
    a, b, c = (t.contiguous() for t in con.unbind(-1))
    logop = torch.log(op)
    L = (logop + _LOG255).clamp(min=0.0)  # alpha >= 1/255 inside sigma <= L (gsplat's opacity-aware bound)
    rx, ry = torch.sqrt(2.0 * L * cov2d[:, 0]), torch.sqrt(2.0 * L * cov2d[:, 2])
    gx0 = torch.ceil(mx - rx - 0.5 - _PAD).clamp_(min=0, max=W).long()  # clamps keep table lookups in range
    gx1 = torch.floor(mx + rx - 0.5 + _PAD).clamp_(min=-1, max=W - 1).long()
    gy0 = torch.ceil(my - ry - 0.5 - _PAD).clamp_(min=0, max=H)
    gy1 = torch.floor(my + ry - 0.5 + _PAD).clamp_(min=-1, max=H - 1)
    nrow = (gy1 - gy0 + 1).clamp_(min=0).long()
    area = nrow * (gx1 - gx0 + 1).clamp(min=0)
    ends = area.cumsum(0)
    total = int(ends[-1]) if len(ends) else 0
    chunk = min(CHUNK_MAX_PAIRS, max(CHUNK_MIN_PAIRS, total // N_CHUNKS + 1))
    gy0l = gy0.long()
    pix_ids = torch.arange(n_pix, device=dev)

    logT = torch.zeros(n_pix, dtype=torch.float64, device=dev)  # per-pixel log T; -inf once stopped
    acc = torch.zeros(n_pix, 5, dtype=dtype, device=dev)
    kept_g, kept_p = [], []
    any_stopped = False
    start = 0
    while start < len(area):
        base_n = int(ends[start - 1]) if start > 0 else 0
        stop = max(start + 1, int(torch.searchsorted(ends, base_n + chunk, right=True)))
        gsl = torch.arange(start, stop, device=dev)
        start = stop
        if any_stopped:
            live = (logT > -math.inf).view(H, W)
            live_i = live.to(torch.int32)
            sat = torch.zeros(H + 1, W + 1, dtype=torch.int32, device=dev)  # summed-area table of live pixels
            sat[1:, 1:] = live_i.cumsum(0, dtype=torch.int32).cumsum(1, dtype=torch.int32)
            sat = sat.view(-1)
            y0s, x0s = _sel(gy0l, gsl) * (W + 1), _sel(gx0, gsl)
            y1s, x1s = y0s + _sel(nrow, gsl) * (W + 1), _sel(gx1, gsl) + 1
            n_live = _sel(sat, y1s + x1s) - _sel(sat, y0s + x1s) - _sel(sat, y1s + x0s) + _sel(sat, y0s + x0s)
            gsl = _sel(gsl, torch.nonzero(n_live > 0).squeeze(1))  # Gaussians with a live pixel in their box
            if len(gsl) == 0:
                continue
        rows_g, rowpix, ncol, d0, A, B, C = _row_table(
            *(_sel(t, gsl) for t in (mx, my, a, b, c, logop, L, gy0, nrow)), H, W
        )
        if len(rowpix) == 0:
            continue
        ry_ = torch.div(rowpix, W, rounding_mode="floor")
        if any_stopped:  # drop rows whose whole span has stopped (prefix sums of live pixels per image row)
            rowsum = torch.zeros(H, W + 1, dtype=torch.int32, device=dev)
            rowsum[:, 1:] = live_i.cumsum(1, dtype=torch.int32)
            rowsum = rowsum.view(-1)
            r0 = rowpix + ry_  # index into the [H, W + 1] table
            alive = torch.nonzero(_sel(rowsum, r0 + ncol) > _sel(rowsum, r0)).squeeze(1)
            if len(alive) == 0:
                continue
            ry_ = _sel(ry_, alive)
            rows_g, rowpix, ncol, d0, A, B, C = (_sel(t, alive) for t in (rows_g, rowpix, ncol, d0, A, B, C))
        # Rows by image row (stable: depth order kept), so the pixel sort below only moves pairs locally.
        ro = _stable_argsort(ry_, H)
        rows_g, rowpix, ncol, d0, A, B, C = (_sel(t, ro) for t in (rows_g, rowpix, ncol, d0, A, B, C))
        rid, j = _expand(ncol)
        d = _sel(d0, rid) - j
        s = torch.addcmul(_sel(B, rid), _sel(A, rid), d).mul_(d).add_(_sel(C, rid))  # sigma - log(o)
        pix = _sel(rowpix, rid) + j
        ok = s <= _LOG255  # alpha >= 1/255
        if any_stopped:
            ok &= _sel(live.view(-1), pix)
        if not bool(ok.all()):
            idx = torch.nonzero(ok).squeeze(1)
            if len(idx) == 0:
                continue
            pix, rid, s = _sel(pix, idx), _sel(rid, idx), _sel(s, idx)
        perm = _stable_argsort(pix, n_pix)  # group by pixel, depth order kept inside each pixel
        counts = torch.bincount(pix, minlength=n_pix)
        pix = torch.repeat_interleave(pix_ids, counts, output_size=len(perm))  # = pix[perm]
        rid, s = _sel(rid, perm), _sel(s, perm)
        alpha = torch.exp(s.neg_()).clamp_(max=ALPHA_MAX)
        la = torch.log1p(-alpha)
        excl = torch.cumsum(la, 0, dtype=torch.float64).sub_(la)
        # Per-pixel offset so that excl + off[pix] = log T before the pair (earlier chunks included).
        first = (counts.cumsum(0) - counts).clamp_(max=len(pix) - 1)
        off = logT - _sel(excl, first)
        log_te = excl.add_(_sel(off, pix))
        log_ti = log_te + la  # log T after the pair
        inc = log_ti > _LOG_TMIN  # T after the pair must stay > 1e-4, else the pixel stops here
        all_inc = bool(inc.all())
        # New per-pixel log T: that after the pixel's last pair in this chunk; -inf where the pixel stopped.
        hit = counts > 0
        last = (first + counts - 1).clamp_(min=0)
        logT = torch.where(hit, _sel(log_ti, last), logT)
        if all_inc:
            w = alpha.mul_(torch.exp(log_te.to(dtype)))
        else:
            any_stopped = True
            logT[pix[~inc]] = -math.inf
            w = torch.where(inc, alpha * torch.exp(log_te.to(dtype)), 0.0)
        if collect:
            if not all_inc:
                keep = torch.nonzero(inc).squeeze(1)
                rid, pix = _sel(rid, keep), _sel(pix, keep)
            kept_g.append(_sel(gsl, _sel(rows_g, rid)))
            kept_p.append(pix)
        else:
            row_feats = _sel(feats, _sel(gsl, rows_g))  # [R, 5]
            acc += _weighted_sum(counts, rid, w, row_feats, pix)
    if not collect:
        return acc, None, None
    e = torch.zeros(0, dtype=torch.long, device=dev)
    return acc, (torch.cat(kept_g) if kept_g else e), (torch.cat(kept_p) if kept_p else e)


def _rasterize_one(proj: Projected, cam: int, colors: torch.Tensor, H: int, W: int, need_grad: bool) -> torch.Tensor:
    """Render camera ``cam`` -> [H*W, 5] = (Σ w rgb, Σ w z, Σ w)."""
    dev, dtype = colors.device, colors.dtype
    n_pix = H * W
    vis = torch.nonzero(proj.valid[cam]).squeeze(1)
    if len(vis) == 0:  # nothing to draw; stay on the graph so that backward() gives zero gradients
        zero = torch.zeros(n_pix, 5, device=dev, dtype=dtype)
        if not need_grad:
            return zero
        return zero + 0.0 * sum(t.sum() for t in (colors, proj.means2d, proj.conics, proj.opacities, proj.depths))
    # Front to back (ties by id). float32 depths are >= near > 0, so their bits sort like int32: radix path.
    depth = _sel(proj.depths[cam], vis).detach()
    key = depth.contiguous().view(torch.int32) if depth.dtype == torch.float32 else depth
    order = _sel(vis, torch.sort(key, stable=True).indices)
    m2d = _sel(proj.means2d[cam], order)  # [G, 2]
    con = _sel(proj.conics[cam], order)  # [G, 3]
    op = _sel(proj.opacities[cam], order)  # [G]
    one = torch.ones(len(order), 1, device=dev, dtype=dtype)
    feats = torch.cat([_sel(colors, order), _sel(proj.depths[cam], order)[:, None], one], 1)  # [G, 5] = rgb, z, 1
    cov2d = _sel(proj.cov2d[cam].detach(), order)
    if not need_grad:
        acc, _, _ = _blend_pass(m2d.detach(), con.detach(), cov2d, op.detach(), feats.detach(), H, W, False)
        return acc
    _, g, pix = _blend_pass(m2d.detach(), con.detach(), cov2d, op.detach(), feats.detach(), H, W, True)
    with torch.no_grad():  # kept pairs into (pixel, depth) order for one differentiable pass
        perm = _stable_argsort(pix, n_pix)
        g = _sel(g, perm)
        counts = torch.bincount(pix, minlength=n_pix)
        pix = torch.repeat_interleave(torch.arange(n_pix, device=dev), counts, output_size=len(perm))
    return _Blend.apply(m2d, con, op, feats, g, pix, counts, W)


class _Blend(torch.autograd.Function):
    """Blend of the kept pairs with a hand-written backward (3DGS compositing gradients, as gsplat's).

    Inputs: per-Gaussian m2d [G, 2], con [G, 3], op [G], feats [G, 5] (rgb, z, 1); pairs g, pix [K] sorted by
    (pixel, depth); counts [n_pix] pairs per pixel. Output: acc [n_pix, 5] = Σ_i w_i feats_i, w_i = α_i T_i.
    Backward, per pair i of a pixel with upstream gradient G: dL/dfeats_i = w_i G;
    dL/dα_i = T_i (feats_i · G) - (Σ_{j>i} w_j feats_j · G) / (1 - α_i); then through
    α = min(0.999, o exp(-σ)) (no gradient where clamped) and σ = ½(a dx² + c dy²) + b dx dy.
    """

    @staticmethod
    def forward(ctx, m2d, con, op, feats, g, pix, counts, W: int):
        dtype = feats.dtype
        first = counts.cumsum(0) - counts
        px = (pix % W).to(dtype) + 0.5
        py = torch.div(pix, W, rounding_mode="floor").to(dtype) + 0.5
        dx = _sel(m2d[:, 0].contiguous(), g) - px
        dy = _sel(m2d[:, 1].contiguous(), g) - py
        ca, cb, cc = (_sel(t.contiguous(), g) for t in con.unbind(-1))
        sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        e = torch.exp(-sigma)
        raw = _sel(op, g) * e
        alpha = raw.clamp(max=ALPHA_MAX)
        la = torch.log1p(-alpha)
        excl = torch.cumsum(la, 0, dtype=torch.float64).sub_(la)
        T = torch.exp((excl - _sel(excl, _sel(first, pix))).to(dtype))
        w = alpha * T
        acc = _weighted_sum(counts, g, w, feats, pix)
        ctx.save_for_backward(feats, g, pix, counts, first, dx, dy, ca, cb, cc, e, alpha, T, w, raw)
        return acc

    @staticmethod
    def backward(ctx, grad_acc):
        feats, g, pix, counts, first, dx, dy, ca, cb, cc, e, alpha, T, w, raw = ctx.saved_tensors
        G = len(feats)
        if len(g) == 0:
            z = torch.zeros(G, 11, dtype=feats.dtype, device=feats.device)
            return z[:, 0:2], z[:, 2:5], z[:, 5], z[:, 6:11], None, None, None, None
        Gp = _sel(grad_acc.contiguous(), pix)  # [K, 5]
        fG = (_sel(feats, g) * Gp).sum(1)  # feats_i · G
        wfG = w * fG
        cs = torch.cumsum(wfG, 0, dtype=torch.float64)  # inclusive prefix; suffix after i = total - cs_i
        last = (first + counts - 1).clamp(min=0, max=len(g) - 1)
        suffix = (_sel(_sel(cs, last), pix) - cs).to(feats.dtype)
        d_alpha = T * fG - suffix / (1.0 - alpha)
        d_alpha = torch.where(raw <= ALPHA_MAX, d_alpha, torch.zeros_like(d_alpha))  # clamp: no gradient
        d_sigma = -d_alpha * alpha
        per_pair = torch.stack(
            [
                d_sigma * (ca * dx + cb * dy),  # d mean_x
                d_sigma * (cb * dx + cc * dy),  # d mean_y
                d_sigma * 0.5 * dx * dx,  # d conic a
                d_sigma * dx * dy,  # d conic b
                d_sigma * 0.5 * dy * dy,  # d conic c
                d_alpha * e,  # d opacity
            ],
            1,
        )
        per_pair = torch.cat([per_pair, Gp * w[:, None]], 1)  # + d feats
        grads = torch.zeros(G, 11, dtype=feats.dtype, device=feats.device).index_add_(0, g, per_pair)
        return grads[:, 0:2], grads[:, 2:5], grads[:, 5], grads[:, 6:11], None, None, None, None


def rasterize_torch(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, 3]
    viewmats: torch.Tensor,  # [C, 4, 4]
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    background: torch.Tensor,  # [C, 3]
    *,
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e3,
    antialiased: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (color [C, H, W, 3], alpha [C, H, W, 1], expected depth [C, H, W, 1])."""
    need_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means, quats, scales, opacities, colors, viewmats)
    )
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height,
        eps2d=eps2d, near=near, far=far, antialiased=antialiased,
    )
    outs = [_rasterize_one(proj, i, colors, height, width, need_grad) for i in range(len(viewmats))]
    acc = torch.stack(outs).reshape(len(viewmats), height, width, 5)
    alpha = acc[..., 4:5]
    color = acc[..., :3] + (1.0 - alpha) * background[:, None, None, :].to(acc)
    depth = acc[..., 3:4] / alpha.clamp(min=1e-10)
    return color, alpha, depth
