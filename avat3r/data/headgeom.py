"""SynthHeads geometry: a procedural head built from surface-sampled 3D Gaussians, and its expression rig.

Every part of the head is a parametric surface sampled on a regular (u, v) grid; each grid sample becomes a flat
Gaussian whose in-plane axes follow the *deformed* grid (finite differences), so stretching under an expression
never opens holes. The skin is a star-shaped surface around the origin: its radius along each direction is a
smooth maximum of ray-exit distances of ellipsoids (cranium, jaw, cheeks, nose, lips, ...) and a neck cylinder,
with the skin around each eye pulled onto an eyelid sphere. Fine grids ("patches") cover the eyes and the mouth.

Expressions (``avat3r.data.expressions``) act through
  * linear displacement fields (smooth radial-basis weights around facial landmarks), precomputed per identity,
  * a jaw rotation about a hinge axis with a smooth weight field that is sharp only along the lip seam, so the lips
    part and reveal a dark mouth cavity, teeth and tongue,
  * eyelid openings (opacity of the lid skin) and gaze (iris colours on the eyeballs).

Everything is built in a template frame (the head of ``avat3r.head_template`` anchors) and then scaled by the
identity's size/shape factors; the head-centric world is metres (see ``avat3r.cameras``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..gaussians import Gaussians, rotmat_to_quat
from .expressions import EXPRESSION_DIM, EXPRESSION_NAMES
from .identity import Identity

_E = {n: i for i, n in enumerate(EXPRESSION_NAMES)}
_LIN = [n for n in EXPRESSION_NAMES if n not in ("jaw_open", "blink_left", "blink_right", "gaze_x", "gaze_y")]
_SEAM_Y = -0.066          # lip seam height (template), = ANCHORS["mouth_center"].y
_HINGE = (-0.03, -0.01)   # jaw hinge (y, z), template metres
_LIGHT1 = F.normalize(torch.tensor([0.3, 0.55, 0.8]), dim=0)
_LIGHT2 = F.normalize(torch.tensor([-0.5, 0.3, -0.8]), dim=0)


from ..head_template import _smax_poly  # noqa: E402  (one smooth maximum; the average skin uses it too)


# ---- small math helpers ------------------------------------------------------------------------------
def _t(x, dev):
    return torch.as_tensor(x, dtype=torch.float32, device=dev)


def _ell_exit(d: torch.Tensor, c, a) -> torch.Tensor:
    """Distance along unit rays d [..., 3] from the origin to the exit of ellipsoid (c, a); misses extend smoothly (smaller)."""
    c, a = _t(c, d.device), _t(a, d.device)
    q, m = d / a, c / a
    A = (q * q).sum(-1)
    B = (q * m).sum(-1)
    C = (m * m).sum() - 1
    disc = B * B - A * C
    return (B + torch.sign(disc) * disc.abs().sqrt()) / A


def _sphere_exit(d, c, r):
    return _ell_exit(d, c, (r, r, r))


def _smax(ts: list[torch.Tensor], k: float = 200.0) -> torch.Tensor:
    return torch.logsumexp(torch.stack(ts) * k, 0) / k


def _blur_grid(r: torch.Tensor, passes: int = 1) -> torch.Tensor:
    """Binomial blur of a (theta, phi) grid [h, w]: periodic in phi, clamped in theta."""
    k = torch.tensor([1.0, 4, 6, 4, 1], device=r.device) / 16
    for _ in range(passes):
        r = sum(k[i] * r.roll(i - 2, 1) for i in range(5))
        pad = torch.cat([r[:1], r[:1], r, r[-1:], r[-1:]], 0)
        r = sum(k[i] * pad[i: i + r.shape[0]] for i in range(5))
    return r


def _rbf(p: torch.Tensor, c, s) -> torch.Tensor:
    """Anisotropic Gaussian weight exp(-|(p - c) / s|^2 / 2); p [..., 3] -> [...]."""
    c, s = _t(c, p.device), _t(s, p.device)
    return torch.exp(-0.5 * (((p - c) / s) ** 2).sum(-1))


def _sstep(e0, e1, x):
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _hash01(ix, iy, iz, seed: int):
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (seed * 2654435761 % 2147483647)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).float() / float(0x1000000)


def value_noise(p: torch.Tensor, freq: float, seed: int) -> torch.Tensor:
    """Smooth 3D value noise in [0, 1] at points p [..., 3] (lattice spacing 1 / freq metres)."""
    q = p * freq
    i0 = torch.floor(q)
    f = q - i0
    f = f * f * (3 - 2 * f)
    i0 = i0.long()
    out = torch.zeros(p.shape[:-1], device=p.device)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (f[..., 0] if dx else 1 - f[..., 0]) * (f[..., 1] if dy else 1 - f[..., 1]) * (f[..., 2] if dz else 1 - f[..., 2])
                out = out + w * _hash01(i0[..., 0] + dx, i0[..., 1] + dy, i0[..., 2] + dz, seed)
    return out


def fbm(p, freq, seed, octaves=3):
    out, amp, tot = 0.0, 1.0, 0.0
    for o in range(octaves):
        out = out + amp * value_noise(p, freq * 2**o, seed + 17 * o)
        tot += amp
        amp *= 0.5
    return out / tot


def _sphere_dirs(nt, nphi, dev, t0=0.02, t1=math.pi - 0.02, dense_eq=0.4, dense_front=0.45):
    """A (theta, phi) grid of unit directions [nt, nphi, 3]; theta from +y, phi from +z towards +x.
    Denser near the equator and the front (the face)."""
    s = (torch.arange(nt, device=dev, dtype=torch.float32) + 0.5) / nt
    s = s + dense_eq * torch.sin(2 * math.pi * s) / (2 * math.pi)
    th = t0 + (t1 - t0) * s
    u = (torch.arange(nphi, device=dev, dtype=torch.float32) + 0.5) / nphi * 2 - 1
    ph = math.pi * (u * (1 - dense_front) + dense_front * u**3)
    th, ph = torch.meshgrid(th, ph, indexing="ij")
    return torch.stack([th.sin() * ph.sin(), th.cos(), th.sin() * ph.cos()], -1)


def _tangent_basis(n):
    n = F.normalize(_t(n, "cpu"), dim=0)
    eu = F.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), n), dim=0)
    ev = torch.linalg.cross(n, eu)
    return n, eu, ev


def _patch_dirs(center_dir, u_range, v_range, spacing, r0, dev):
    """Gnomonic grid of directions around center_dir; returns (dirs [h, w, 3], u [h, w], v [h, w]) in metres at r0."""
    n, eu, ev = _tangent_basis(center_dir)
    nu = int(round((u_range[1] - u_range[0]) / spacing)) + 1
    nv = int(round((v_range[1] - v_range[0]) / spacing)) + 1
    v = torch.linspace(v_range[1], v_range[0], nv, device=dev)  # rows top -> bottom
    u = torch.linspace(u_range[0], u_range[1], nu, device=dev)
    v, u = torch.meshgrid(v, u, indexing="ij")
    d = n.to(dev) + (u[..., None] * eu.to(dev) + v[..., None] * ev.to(dev)) / r0
    return F.normalize(d, dim=-1), u, v


def _gnomonic(d, center_dir, r0):
    """Directions d [..., 3] -> tangent-plane coords (u, v) in metres at r0 around center_dir (inf behind)."""
    n, eu, ev = (x.to(d.device) for x in _tangent_basis(center_dir))
    c = (d * n).sum(-1)
    cs = c.clamp(min=1e-3)
    u = (d * eu).sum(-1) / cs * r0
    v = (d * ev).sum(-1) / cs * r0
    far = torch.full_like(u, 1e3)
    return torch.where(c > 0.05, u, far), torch.where(c > 0.05, v, far)


# ---- parts -------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One grid-sampled surface. Template-frame rest positions; per-expression state is derived in pose()."""

    name: str
    pos: torch.Tensor                 # [h, w, 3] rest, template frame
    albedo: torch.Tensor              # [h, w, 3]
    opacity: torch.Tensor             # [h, w]
    keep: torch.Tensor                # [M] flat indices kept
    normal0: torch.Tensor             # [h, w, 3] outward rest normal (orientation reference)
    periodic: bool = False
    deform: bool = False
    jaw_w: torch.Tensor | None = None  # [h*w]
    basis: torch.Tensor | None = None  # [L, h*w, 3] linear displacement fields
    aniso: tuple = (0.6, 0.6)         # in-plane scale = aniso * grid spacing
    thick: float = 0.25               # normal scale = thick * in-plane scale
    shade: bool = True
    lid: tuple | None = None          # (side, u [h*w], v [h*w], W, h_up, h_lo, tilt) eyelid opening
    eye: tuple | None = None          # (side, normals [h*w, 3]) eyeball for gaze colouring


def _grid_normals(P, periodic, ref):
    """Outward unit normals [..., h, w, 3] from finite differences, oriented like ref (any [.., 3] pointing out)."""
    th = torch.cat([P[..., 1:2, :, :] - P[..., :1, :, :], P[..., 2:, :, :] - P[..., :-2, :, :], P[..., -1:, :, :] - P[..., -2:-1, :, :]], -3)
    if periodic:
        tw = P.roll(-1, -2) - P.roll(1, -2)
    else:
        tw = torch.cat([P[..., :, 1:2, :] - P[..., :, :1, :], P[..., :, 2:, :] - P[..., :, :-2, :], P[..., :, -1:, :] - P[..., :, -2:-1, :]], -2)
    n = torch.linalg.cross(th, tw, dim=-1)
    bad = n.norm(dim=-1, keepdim=True) < 1e-12
    n = torch.where(bad, ref.expand_as(n), n)
    n = F.normalize(n, dim=-1)
    sign = torch.sign((n * ref).sum(-1, keepdim=True))
    return n * torch.where(sign == 0, torch.ones_like(sign), sign), th, tw


def _spacing(P, dim, periodic):
    """One-sided grid spacing along dim (-3 rows or -2 cols): the smaller of the two neighbours (seams stay tight)."""
    if periodic:
        f = (P.roll(-1, dim) - P).norm(dim=-1)
        b = (P - P.roll(1, dim)).norm(dim=-1)
        return torch.minimum(f, b)
    d = (P.narrow(dim, 1, P.shape[dim] - 1) - P.narrow(dim, 0, P.shape[dim] - 1)).norm(dim=-1)
    ax = dim + 1 if dim < 0 else dim  # norm removed the last axis
    f = torch.cat([d, d.narrow(ax, d.shape[ax] - 1, 1)], ax)
    b = torch.cat([d.narrow(ax, 0, 1), d], ax)
    return torch.minimum(f, b)


def _make_part(name, pos, albedo, opacity=None, keep=None, ref_center=(0, 0, 0), ref_normals=None, **kw) -> Part:
    h, w = pos.shape[:2]
    if opacity is None:
        opacity = torch.ones(h, w, device=pos.device)
    if keep is None:
        keep = torch.arange(h * w, device=pos.device)
    elif keep.dtype == torch.bool:
        keep = torch.nonzero(keep.reshape(-1)).reshape(-1)
    ref = ref_normals if ref_normals is not None else pos - _t(ref_center, pos.device)
    n0, _, _ = _grid_normals(pos, kw.get("periodic", False), F.normalize(ref, dim=-1))
    return Part(name, pos, albedo, opacity, keep, n0, **kw)


# ---- the identity's shape ----------------------------------------------------------------------------
class _Shape:
    """Radial skin and hair functions of one identity (template frame)."""

    def __init__(self, I: Identity):
        self.I = I
        es = I.eye_size
        self.eye_c = [np.array([s * 0.0315, 0.0, 0.0685]) for s in (1, -1)]  # +x (left) first
        self.r_eye = 0.012 * es
        self.r_lid = self.r_eye + 0.0012
        self.mouth_w = 0.025 * I.mouth_width
        self.prims = self._primitives()

    def _primitives(self):
        """Ellipsoids (centres [K, 3], semi-axes [K, 3]) whose smooth union is the skin."""
        I = self.I
        C, A, K = [], [], []
        add = lambda c, a, k: (C.append(c), A.append(a), K.append(k))  # noqa: E731  k: blend radius (m)
        add((0, 0.012, -0.006 - 0.004 * (I.forehead - 1)), (0.075, 0.103, 0.100), 0)          # cranium
        add((0, -0.04 * I.jaw_length, 0.004), (0.066 * I.jaw_width, 0.075 * I.jaw_length, 0.083 * I.cheeks**0.3), 0.03)  # face + jaw mass
        add((0, 0.04, 0.035), (0.057, 0.05, 0.055 * I.forehead), 0.02)                       # forehead
        add((0, 0.021, 0.072), (0.05, 0.011, 0.016 * I.brow_ridge), 0.012)                    # brow ridge
        for s in (1, -1):
            add((s * 0.042, -0.012, 0.044), (0.021 * I.cheekbones, 0.015, 0.024 * I.cheekbones), 0.015)  # cheekbones
        add((0, -0.072 * I.jaw_length, 0.03), (0.05 * I.jaw_width, 0.04 * I.jaw_length, 0.05), 0.03)  # mandible body
        add((0, -0.097 * I.jaw_length, 0.061 + I.chin_forward), (0.022 * I.chin_size, 0.018 * I.chin_size, 0.018 * I.chin_size), 0.02)
        add((0, -0.052, 0.057), (0.034, 0.028, 0.031), 0.02)                                  # maxilla / muzzle
        add((0, -0.004 - 0.008 * (I.nose_length - 1), 0.079), (0.0075 * I.nose_bridge, 0.026 * I.nose_length, 0.0125 * I.nose_projection), 0.01)
        rt = 0.0093 * I.nose_tip
        add((0, -0.033 * I.nose_length, 0.0965 + 0.012 * (I.nose_projection - 1)), (1.05 * rt * I.nose_width, rt, rt), 0.01)  # nose tip
        for s in (1, -1):
            add((s * 0.0125 * I.nose_width, -0.037 * I.nose_length, 0.087 + 0.004 * (I.nose_projection - 1)),
                (0.0072 * I.nose_width, 0.0062, 0.0075), 0.008)                                     # nose alae
        add((0, -0.0605, 0.079), (0.0245 * I.mouth_width, 0.0062 * I.lip_upper, 0.011 * I.lip_upper**0.5), 0.006)  # upper lip
        add((0, -0.0715, 0.077), (0.022 * I.mouth_width, 0.0066 * I.lip_lower, 0.0115 * I.lip_lower**0.5), 0.006)  # lower lip
        self.blend = K
        return np.array(C, np.float32), np.array(A, np.float32)

    def skin_radius(self, d: torch.Tensor, with_lids=True) -> torch.Tensor:
        """Radius of the skin along unit directions d [..., 3] (template metres) -> [...]."""
        I = self.I
        Cn, An = self.prims
        c, a = _t(Cn, d.device), _t(An, d.device)
        q = d[None] / a.reshape(-1, *([1] * (d.ndim - 1)), 3)          # [K, ..., 3]
        m = (c / a).reshape(-1, *([1] * (d.ndim - 1)), 3)
        Aq = (q * q).sum(-1)
        Bq = (q * m).sum(-1)
        Cq = (m * m).sum(-1) - 1
        disc = Bq * Bq - Aq * Cq
        # disc / sqrt(|disc| + eps) instead of sign(disc) sqrt|disc|: no infinite slope at the rim seen from the
        # origin (that cusp shows up as ridges inside the smooth union)
        abar = a.mean(-1).reshape(-1, *([1] * (d.ndim - 1)))
        sq = disc / (disc.abs() + (0.3 * abar * Aq) ** 2).sqrt()
        # rays that miss must fall off fast: for thin ellipsoids the plain extension can exceed the real surface
        sq = torch.where(disc < 0, 6.0 * sq, sq)
        ts = list(((Bq + sq) / Aq).unbind(0))
        # neck: vertical elliptic cylinder, cut by a plane far below
        ax, az, cz = 0.046 * I.neck_width, 0.05 * I.neck_width, -0.02
        A = (d[..., 0] / ax) ** 2 + (d[..., 2] / az) ** 2
        B = d[..., 2] * cz / az**2
        C = (cz / az) ** 2 - 1
        tc = (B + (B * B - A * C).clamp(min=0).sqrt()) / A.clamp(min=1e-8)
        tb = torch.where(d[..., 1] < -1e-3, -0.30 / d[..., 1].clamp(max=-1e-3), torch.full_like(tc, 1e3))
        ts.append(torch.where(d[..., 1] < -0.02, torch.minimum(tc, tb), tc.clamp(max=0.03)))
        r = ts[0]
        for t, k in zip(ts[1:], self.blend[1:] + [0.03]):
            r = _smax_poly(r, t, k)
        if with_lids:
            for c in self.eye_c:
                cd = c / np.linalg.norm(c)
                u, v = _gnomonic(d, cd, 0.08)
                q = (u / 0.017) ** 2 + ((v + 0.001) / 0.012) ** 2
                w = torch.exp(-q * q)
                c2 = np.array(c) - np.array([0.0, 0.0, 0.017 - self.r_lid])  # gentler sphere, same front as the lids
                r = torch.lerp(r, _sphere_exit(d, c2, 0.017), w)
        return r

    # hairline height (template y) as a function of azimuth phi (0 = front)
    def hairline_y(self, phi):
        I = self.I
        y = 0.00875 + 0.0625 * torch.cos(phi) - 0.01125 * torch.cos(2 * phi) + I.hairline * (0.5 + 0.5 * torch.cos(phi))
        if I.bangs:
            y = y - 0.03 * _sstep(0.7, 0.2, phi.abs())
        return y


# ---- building the rest head --------------------------------------------------------------------------
def _skin_albedo(I: Identity, p: torch.Tensor, sh: _Shape) -> torch.Tensor:
    """Skin colour at template points p [..., 3]: tone, blotches, pores, freckles, blush, lips, brows, beard."""
    dev = p.device
    base = _t(I.skin, dev)
    n1 = fbm(p, 30.0, I.seed, 3) - 0.5
    n2 = value_noise(p, 900.0, I.seed + 5) - 0.5
    col = base * (1 + 2 * I.skin_noise * n1[..., None] + 0.05 * n2[..., None])
    red = torch.tensor([1.0, 0.55, 0.5], device=dev)
    blush = I.blush * (_rbf(p, (0.045, -0.03, 0.07), (0.016, 0.014, 0.03)) + _rbf(p, (-0.045, -0.03, 0.07), (0.016, 0.014, 0.03))
                       + 0.7 * _rbf(p, (0, -0.03, 0.1), (0.01, 0.012, 0.02)))
    col = col * (1 - 0.25 * blush[..., None] * (1 - red))
    if I.freckles > 0:
        fr = (value_noise(p, 500.0, I.seed + 9) > 0.78).float() * _rbf(p, (0, -0.015, 0.09), (0.05, 0.03, 0.05))
        col = col * (1 - 0.3 * I.freckles * fr[..., None])
    # lips: vermilion zone around the seam inside the mouth width
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    mw = sh.mouth_w
    shape = (1 - (x / (mw * 1.02)) ** 2).clamp(min=0) ** 0.5
    up = 0.0075 * sh.I.lip_upper * shape * (1 - 0.25 * torch.exp(-(x / 0.004) ** 2))  # cupid's bow dip
    lo = 0.009 * sh.I.lip_lower * shape
    dy = y - (_SEAM_Y + 0.0015 * (x / mw) ** 2)
    lip = _sstep(-0.0006, 0.0006, up - dy) * _sstep(-0.0006, 0.0006, dy + lo) * (z > 0.06).float()
    col = torch.lerp(col, _t(I.lip_color, dev) * (0.9 + 0.2 * n1[..., None]), lip[..., None])
    # eyebrows: a stroke above each eye following an arch
    bc = _t(I.brow_color, dev)
    for s in (1, -1):
        xs = s * x
        t = ((xs - 0.008) / 0.047).clamp(0, 1)
        yb = 0.019 + 0.005 * I.brow_arch * torch.sin(math.pi * t**0.8) - 0.002 * t
        th = 0.0028 * I.brow_thickness * (1.2 - 0.7 * t)
        inside = _sstep(0.004, 0.009, xs) * _sstep(0.058, 0.05, xs) * (z > 0.04).float()
        strand = 0.6 + 0.4 * value_noise(p * torch.tensor([1.0, 0.25, 1.0], device=dev), 700.0, I.seed + 3)
        m = _sstep(th, th * 0.4, (y - yb).abs()) * inside * strand
        col = torch.lerp(col, bc, m[..., None].clamp(0, 1) * 0.9)
    # beard / stubble / moustache
    if I.beard != "none":
        hc = _t(I.hair_color, dev)
        below = _sstep(-0.02, -0.045, y) * _sstep(-0.005, 0.025, z) * _sstep(-0.145, -0.12, y)
        moust = _rbf(p, (0, -0.053, 0.088), (0.022, 0.004, 0.02))
        m = {"stubble": 0.35 * below, "beard": 0.95 * below + 0.9 * moust, "moustache": 0.95 * moust}[I.beard]
        m = m * (1 - lip) * (0.6 + 0.4 * value_noise(p, 800.0, I.seed + 4))
        col = torch.lerp(col, hc * (0.8 + 0.4 * n2[..., None]), m[..., None].clamp(0, 1))
    # nostrils and mouth corners: dark
    for s in (1, -1):
        col = col * (1 - 0.75 * _rbf(p, (s * 0.0075 * I.nose_width, -0.044 * I.nose_length, 0.094), (0.0035, 0.002, 0.004)))[..., None]
    return col.clamp(0, 1)


def _lin_basis(p: torch.Tensor, I: Identity, sh: _Shape, tongue=False) -> torch.Tensor:
    """Linear displacement fields [L, P, 3] for the linear expression dims (_LIN order), template metres."""
    dev = p.device
    P = p.shape[0]
    D = {n: torch.zeros(P, 3, device=dev) for n in _LIN}
    x, y = p[:, 0], p[:, 1]
    mw = sh.mouth_w
    lower = torch.sigmoid((_SEAM_Y - y) / 0.0005)

    def v3(a, b, c):
        return torch.stack([a, b, c], -1) if isinstance(a, torch.Tensor) else _t([a, b, c], dev)

    for s in (1, -1):
        corner = _rbf(p, (s * mw, -0.064, 0.082), (0.013, 0.011, 0.02))[:, None]
        D["smile"] += corner * _t([s * 0.006, 0.007, -0.004], dev)
        D["smile"] += _rbf(p, (s * 0.042, -0.032, 0.065), (0.016, 0.014, 0.03))[:, None] * _t([0, 0.004, 0.002], dev)
        D["frown"] += corner * _t([s * 0.001, -0.0065, -0.001], dev)
        D["lip_stretch"] += corner * _t([s * 0.0075, -0.002, -0.004], dev)
        D["cheek_puff"] += _rbf(p, (s * 0.045, -0.055, 0.05), (0.018, 0.02, 0.025))[:, None] * _t([s * 0.009, 0, 0.004], dev)
        ec = sh.eye_c[0 if s > 0 else 1]
        D["eye_wide"] += _rbf(p, ec + (0, 0.011, 0.01), (0.017, 0.008, 0.02))[:, None] * _t([0, 0.0025, 0], dev)
        D["squint"] += _rbf(p, ec + (0, -0.012, 0.01), (0.016, 0.007, 0.02))[:, None] * _t([0, 0.0025, 0.001], dev)
        D["squint"] += _rbf(p, (s * 0.04, -0.028, 0.065), (0.016, 0.012, 0.03))[:, None] * _t([0, 0.002, 0.001], dev)
        D["brow_raise"] += _rbf(p, (s * 0.03, 0.03, 0.08), (0.028, 0.017, 0.04))[:, None] * _t([0, 0.0075, 0], dev)
        D["brow_furrow"] += _rbf(p, (s * 0.015, 0.021, 0.085), (0.013, 0.009, 0.03))[:, None] * _t([-s * 0.004, -0.004, 0.001], dev)
        D["brow_inner_up"] += _rbf(p, (s * 0.013, 0.021, 0.085), (0.013, 0.011, 0.03))[:, None] * _t([0, 0.0065, 0], dev)
        D["nose_wrinkle"] += _rbf(p, (s * 0.013, -0.025, 0.088), (0.011, 0.014, 0.02))[:, None] * _t([0, 0.004, 0], dev)
    lips = _rbf(p, (0, -0.066, 0.085), (0.022 * mw / 0.025, 0.011, 0.02))[:, None]
    D["pucker"] += lips * torch.stack([-0.45 * x, torch.zeros_like(x), torch.full_like(x, 0.009)], -1)
    D["cheek_puff"] += lips * _t([0, 0, 0.002], dev)
    mouth = _rbf(p, (0, -0.07, 0.08), (0.03, 0.025, 0.04))[:, None]
    D["mouth_left"] += mouth * _t([0.009, 0, 0], dev)
    D["mouth_right"] += mouth * _t([-0.009, 0, 0], dev)
    ulr = ((1 - lower) * _rbf(p, (0, -0.061, 0.086), (0.02 * mw / 0.025, 0.007, 0.02)))[:, None]
    D["upper_lip_raise"] += ulr * _t([0, 0.0055, 0.0015], dev)
    D["nose_wrinkle"] += ulr * _t([0, 0.002, 0], dev)
    if tongue:  # tongue slides out and stretches: the tip moves most
        f = ((p[:, 2] - 0.035) / 0.045).clamp(0, 1) ** 0.8
        D["tongue_out"] = f[:, None] * _t([0, -0.006, 0.034], dev) + (f[:, None] * torch.stack([-0.2 * x, 0 * x, 0 * x], -1))
    return torch.stack([D[n] for n in _LIN])


def _jaw_weight(p: torch.Tensor, sh: _Shape, sharp=1e-6) -> torch.Tensor:
    """How much each template point follows the jaw [P]: sharp across the lip seam, smooth elsewhere."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ys = _SEAM_Y + 0.0015 * (x / sh.mouth_w) ** 2
    s = sharp + 0.6 * (x.abs() - sh.mouth_w).clamp(min=0)
    lower = torch.sigmoid((ys - y) / s)
    return lower * torch.sigmoid((z - 0.005) / 0.012) * torch.sigmoid((y + 0.135) / 0.01) * torch.sigmoid((-0.018 - y) / 0.005)


class HeadRig:
    """The rest head of one identity plus its expression rig. ``pose(z [E, C]) -> list of E Gaussians``."""

    def __init__(self, identity: Identity, device="cpu"):
        self.identity = I = identity
        self.device = dev = torch.device(device)
        self.shape = sh = _Shape(I)
        self.S = _t([I.scale * I.width, I.scale * I.height, I.scale * I.depth], dev)
        self.parts: list[Part] = []
        self._build_skin(I, sh, dev)
        self._build_eyes(I, sh, dev)
        self._build_mouth(I, sh, dev)
        self._build_ears(I, sh, dev)
        self._build_hair(I, sh, dev)
        self._build_accessories(I, sh, dev)
        if I.torso:
            self._build_torso(I, sh, dev)
        for prt in self.parts:
            if prt.deform:
                flat = prt.pos.reshape(-1, 3)
                prt.basis = _lin_basis(flat, I, sh, tongue=prt.name == "tongue")
                if prt.jaw_w is None:
                    prt.jaw_w = _jaw_weight(flat, sh)
        self._finalize()

    @property
    def num_gaussians(self) -> int:
        return sum(len(p.keep) for p in self.parts)

    # ---- skin ----
    def _build_skin(self, I, sh, dev):
        d = _sphere_dirs(120, 180, dev)
        rs = _blur_grid(sh.skin_radius(d), passes=2)  # soften creases of the union away from the fine patches
        self._skin_grid = (d, rs)  # shared with the hair
        pos = d * rs[..., None]
        # fine patches for the eyes and the mouth; the coarse skin drops what they cover
        keep = torch.ones(d.shape[:2], dtype=torch.bool, device=dev)
        patches = []
        for side, c in zip((1, -1), sh.eye_c):
            cd = c / np.linalg.norm(c)
            U, V0, V1 = 0.026, -0.017, 0.028
            pd, u, v = _patch_dirs(cd, (-U, U), (V0, V1), 0.0008, 0.08, dev)
            pu, pv = _gnomonic(d, cd, 0.08)
            keep &= ((pu / U) ** 2 + ((pv - (V0 + V1) / 2) / ((V1 - V0) / 2)) ** 2) > 0.8
            ell = ((u / U) ** 2 + ((v - (V0 + V1) / 2) / ((V1 - V0) / 2)) ** 2) <= 1.0
            patches.append(("eye_patch_l" if side > 0 else "eye_patch_r", pd, ell, (side, u * side, v)))
        mc = np.array([0.0, -0.068, 0.09])
        U, V0, V1 = 0.045, -0.05, 0.03
        pd, u, v = _patch_dirs(mc / np.linalg.norm(mc), (-U, U), (V0, V1), 0.00095, 0.1, dev)
        pu, pv = _gnomonic(d, mc / np.linalg.norm(mc), 0.1)
        keep &= ((pu / U) ** 2 + ((pv - (V0 + V1) / 2) / ((V1 - V0) / 2)) ** 2) > 0.8
        ell = ((u / U) ** 2 + ((v - (V0 + V1) / 2) / ((V1 - V0) / 2)) ** 2) <= 1.0
        patches.append(("mouth_patch", pd, ell, None))
        self.parts.append(_make_part("skin", pos, _skin_albedo(I, pos, sh), keep=keep, periodic=True, deform=True))
        for name, pd, ell, lid in patches:
            pp = pd * sh.skin_radius(pd)[..., None]
            lidinfo = None
            if lid is not None:
                side, u, v = lid
                lidinfo = (side, u.reshape(-1), v.reshape(-1), 0.0122 * I.eye_size, 0.0058 * I.eye_open * I.eye_size,
                           0.0045 * I.eye_open * I.eye_size, I.eye_tilt)
            self.parts.append(_make_part(name, pp, _skin_albedo(I, pp, sh), keep=ell, deform=True, lid=lidinfo))

    # ---- eyes ----
    def _build_eyes(self, I, sh, dev):
        na, nb = 22, 48
        a = torch.linspace(0.02, 1.9, na, device=dev)
        b = torch.linspace(0, 2 * math.pi, nb + 1, device=dev)[:-1]
        a, b = torch.meshgrid(a, b, indexing="ij")
        n = torch.stack([a.sin() * b.cos(), a.sin() * b.sin(), a.cos()], -1)  # forward = +z
        for side, c in zip((1, -1), sh.eye_c):
            pos = _t(c, dev) + sh.r_eye * n
            self.parts.append(_make_part("eyeball_l" if side > 0 else "eyeball_r", pos, torch.ones_like(pos),
                                         ref_normals=n, periodic=True, eye=(side, n.reshape(-1, 3)), thick=0.3))

    # ---- mouth interior: cavity, teeth, tongue ----
    def _build_mouth(self, I, sh, dev):
        mw = I.mouth_width
        # cavity: an ellipsoid shell behind the lips (dark), stretching smoothly with the jaw
        a = torch.linspace(0.05, math.pi - 0.05, 18, device=dev)
        b = torch.linspace(0, 2 * math.pi, 37, device=dev)[:-1]
        a, b = torch.meshgrid(a, b, indexing="ij")
        n = torch.stack([a.sin() * b.sin(), a.cos(), a.sin() * b.cos()], -1)
        cav = _t([0, -0.067, 0.057], dev) + n * _t([0.024 * mw, 0.016, 0.021], dev)
        col = torch.lerp(_t([0.22, 0.04, 0.05], dev), _t([0.05, 0.01, 0.01], dev), (0.5 - 0.5 * n[..., 2:3]))
        prt = _make_part("cavity", cav, col, ref_normals=-n, periodic=True, deform=True, shade=False)
        prt.jaw_w = _jaw_weight(cav.reshape(-1, 3), sh, sharp=0.005)
        self.parts.append(prt)
        # teeth: two arcs; gums above/below
        for upper in (True, False):
            ang = torch.linspace(-1.25, 1.25, 44, device=dev)
            hgt = torch.linspace(0, 1, 7, device=dev)
            hgt, ang = torch.meshgrid(hgt, ang, indexing="ij")
            rx, rz = 0.021 * mw, 0.019
            zf = 0.079 if upper else 0.0765
            x = rx * torch.sin(ang)
            z = zf - rz + rz * torch.cos(ang)
            y = (-0.0655 + 0.011 * hgt) if upper else (-0.067 - 0.010 * hgt)
            pos = torch.stack([x, y, z], -1)
            gap = (torch.cos(ang * 9.5 / 1.25 * math.pi / 2) ** 2) ** 8  # dark lines between teeth
            white = _t([0.93, 0.9, 0.82], dev) * (1 - 0.35 * gap[..., None])
            gum = _t([0.75, 0.35, 0.38], dev).expand_as(white)
            col = torch.where((hgt > 0.62)[..., None], gum, white)
            col = col * (1 - 0.5 * (ang.abs() / 1.25) ** 2)[..., None]  # back teeth in shadow
            refn = torch.stack([torch.sin(ang), 0 * ang, torch.cos(ang)], -1)
            prt = _make_part("teeth_upper" if upper else "teeth_lower", pos, col, ref_normals=refn, deform=True, shade=False)
            prt.jaw_w = torch.zeros(pos.shape[0] * pos.shape[1], device=dev) if upper else torch.ones(pos.shape[0] * pos.shape[1], device=dev)
            if upper:
                prt.basis = None
            self.parts.append(prt)
        # tongue: the top of a flattened ellipsoid resting on the jaw
        a = torch.linspace(0.05, math.pi / 2, 10, device=dev)
        b = torch.linspace(0, 2 * math.pi, 33, device=dev)[:-1]
        a, b = torch.meshgrid(a, b, indexing="ij")
        n = torch.stack([a.sin() * b.sin(), a.cos(), a.sin() * b.cos()], -1)
        pos = _t([0, -0.0745, 0.054], dev) + n * _t([0.0185 * mw, 0.0065, 0.023], dev)
        col = _t([0.78, 0.36, 0.38], dev) * (0.85 + 0.3 * value_noise(pos, 800.0, I.seed + 11)[..., None])
        col = col * (1 - 0.3 * torch.exp(-(pos[..., 0] / 0.002) ** 2))[..., None]  # median groove
        prt = _make_part("tongue", pos, col, ref_normals=n, periodic=True, deform=True, shade=True)
        prt.jaw_w = torch.ones(pos.shape[0] * pos.shape[1], device=dev)
        self.parts.append(prt)

    # ---- ears ----
    def _build_ears(self, I, sh, dev):
        nr, na = 14, 44
        rho = torch.linspace(0.0, 1.0, nr, device=dev)
        al = torch.linspace(0, 2 * math.pi, na + 1, device=dev)[:-1]
        rho, al = torch.meshgrid(rho, al, indexing="ij")
        H, W = 0.062 * I.ear_size, 0.033 * I.ear_size
        for side in (1, -1):
            beta = I.ear_angle
            e_b = _t([side * math.sin(beta), 0, -math.cos(beta)], dev)  # backwards, away from the head
            e_n = _t([side * math.cos(beta), 0, math.sin(beta)], dev)   # outward face of the ear
            e_u = _t([0, 1, 0], dev)
            A = _t([side * 0.070, -0.012, -0.004], dev)
            lobe = 1 + 0.12 * torch.sin(al) .clamp(max=0) * -1  # longer at the bottom
            bb = 0.5 * W * (1 + rho * torch.cos(al))
            uu = 0.008 + 0.5 * H * rho * torch.sin(al) * (1 - 0.15 * (torch.sin(al) < 0).float()) * lobe
            h = -0.005 * (1 - rho**2) * _sstep(0.2, 0.6, bb / W) + 0.0035 * _sstep(0.75, 1.0, rho)
            pos = A + bb[..., None] * e_b + uu[..., None] * e_u + h[..., None] * e_n
            albedo = _t(I.skin, dev) * _t([1.0, 0.9, 0.88], dev)
            ao = 1 - 0.35 * (1 - rho) * _sstep(0.2, 0.6, bb / W)
            col = (albedo * ao[..., None]).expand_as(pos).clone()
            self.parts.append(_make_part("ear_l" if side > 0 else "ear_r", pos, col, ref_normals=e_n.expand_as(pos),
                                         periodic=True, thick=0.5))

    # ---- hair ----
    def _hair_cover(self, p_skin, d):
        """Soft coverage [..] of hair over the skin point p_skin along direction d (rest template)."""
        I, sh = self.identity, self.shape
        st = I.hair_style
        if st == "bald":
            return torch.zeros(p_skin.shape[:-1], device=p_skin.device)
        phi = torch.atan2(d[..., 0], d[..., 2])
        y = p_skin[..., 1]
        yh = sh.hairline_y(phi)
        jag = 0.003 * (value_noise(p_skin, 250.0, I.seed + 21) - 0.5)
        cov = _sstep(-0.002, 0.003, y - yh + jag)
        ear = torch.minimum(_rbf(p_skin, (0.072, 0.0, -0.005), (0.012, 0.022, 0.014)), _t(1.0, p_skin.device)) + \
            _rbf(p_skin, (-0.072, 0.0, -0.005), (0.012, 0.022, 0.014))
        if st in ("long", "bob", "voluminous"):
            side = _sstep(1.05, 1.3, phi.abs())  # sides and back, never in front of the face
            L = I.hair_length + 0.01 * (value_noise(p_skin * _t([1, 0, 1], p_skin.device), 150.0, I.seed + 22) - 0.5)
            cov = torch.maximum(cov, side * _sstep(-L - 0.003, -L + 0.003, y))
        else:
            cov = cov * (1 - ear.clamp(max=1))
        if st == "receding":
            top = _rbf(p_skin, (0, 0.11, 0.02), (0.045, 0.05, 0.06))
            cov = cov * (1 - top.clamp(max=1) * 1.2).clamp(min=0)
        return cov

    def _hair_radius(self, d, r_skin):
        I = self.identity
        T = I.hair_volume * (0.8 + 0.4 * d[..., 1].clamp(min=0)) + 0.0008
        if I.hair_style == "voluminous":
            T = T * (0.85 + 0.5 * fbm(d, 9.0, I.seed + 23, 2))
        if I.hair_texture > 0:  # widened SynthHeads: clumps and an uneven outline
            T = T * (1 + 1.2 * I.hair_texture * (fbm(d, 14.0, I.seed + 26, 2) - 0.5)).clamp(min=0.2)
        r = r_skin + T
        if I.hair_style in ("long", "bob", "voluminous"):
            vol = I.hair_volume
            ax, az, cz = 0.084 + vol, 0.098 + vol, -0.018
            A = (d[..., 0] / ax) ** 2 + (d[..., 2] / az) ** 2
            B = d[..., 2] * cz / az**2
            C = (cz / az) ** 2 - 1
            tc = (B + (B * B - A * C).clamp(min=0).sqrt()) / A.clamp(min=1e-8)
            w = _sstep(0.3, -0.05, d[..., 1])
            tc = torch.minimum(tc, _t(0.6, d.device)) * w
            r = _smax([r, tc], 250.0)
        return r

    def _build_hair(self, I, sh, dev):
        if I.hair_style == "bald":
            return
        d, rs = self._skin_grid
        cov = self._hair_cover(d * rs[..., None], d)
        if I.hat:
            cov = cov * (1 - self._hat_cover(d)).clamp(min=0)
        r = self._hair_radius(d, rs)
        pos = d * r[..., None]
        hc = _t(I.hair_color, dev)
        phi = torch.atan2(d[..., 0], d[..., 2])
        strands = value_noise(torch.stack([phi * 8, d[..., 1] * 0.6, 0 * phi], -1), 16.0, I.seed + 24)
        shine = 1 + 0.35 * torch.exp(-((d[..., 1] - 0.75) / 0.12) ** 2)
        col = hc * (0.55 + 0.6 * strands[..., None]) * shine[..., None]
        col = torch.where(hc.sum() < 0.2, col + 0.04 * strands[..., None], col)  # black hair still shows strands
        if I.hair_texture > 0:  # widened: finer strands, clumps in shadow, grey and sun-lit streaks
            fine = value_noise(torch.stack([phi * 40, d[..., 1] * 3, 0 * phi], -1), 6.0, I.seed + 27)
            clump = fbm(d, 12.0, I.seed + 28, 2)
            col = col * (1 + I.hair_texture * (0.7 * (fine[..., None] - 0.5) - 0.5 * (clump[..., None] - 0.5)))
        self.parts.append(_make_part("hair", pos, col.clamp(0, 1), opacity=cov.clamp(0, 1), keep=cov > 0.02,
                                     periodic=True, aniso=(1.0, 0.5), thick=0.35))
        if I.hair_style in ("long", "bob", "voluminous"):  # a darker inner layer gives the curtain thickness
            inner = d * (rs + 0.55 * (r - rs))[..., None]
            cov2 = cov * _sstep(0.02, -0.02, d[..., 1] + 0.1)
            self.parts.append(_make_part("hair_inner", inner, (col * 0.45).clamp(0, 1), opacity=cov2.clamp(0, 1),
                                         keep=cov2 > 0.02, periodic=True, aniso=(1.0, 0.5), thick=0.35))
        if I.hair_style in ("bun", "ponytail"):
            a = torch.linspace(0.03, math.pi - 0.03, 26, device=dev)
            b = torch.linspace(0, 2 * math.pi, 41, device=dev)[:-1]
            a, b = torch.meshgrid(a, b, indexing="ij")
            n = torch.stack([a.sin() * b.sin(), a.cos(), a.sin() * b.cos()], -1)
            if I.hair_style == "bun":
                c, ax = _t([0, 0.085, -0.092], dev), _t([0.032, 0.030, 0.030], dev)
            else:
                c, ax = _t([0, -0.04, -0.118], dev), _t([0.022, 0.075 + 0.3 * I.hair_length, 0.022], dev)
            pos = c + n * ax
            st = value_noise(torch.stack([b * 3, a, 0 * a], -1), 6.0, I.seed + 25)
            col = (hc * (0.55 + 0.6 * st[..., None])).clamp(0, 1)
            self.parts.append(_make_part("hair_" + I.hair_style, pos, col, ref_normals=n, periodic=True,
                                         aniso=(1.0, 0.5), thick=0.35))

    # ---- torso (widened SynthHeads): neck base, shoulders and clothing at the bottom of the crop ----
    def _build_torso(self, I, sh, dev):
        """Shoulders and upper chest below the neck, dressed: a surface of horizontal ellipses flaring from the
        neck into the shoulders (template metres), clothing below a neckline, skin above it."""
        nv, nu = 36, 128
        y = torch.linspace(-0.14, -0.42, nv, device=dev)
        phi = torch.linspace(-math.pi, math.pi, nu + 1, device=dev)[:-1]
        y, phi = torch.meshgrid(y, phi, indexing="ij")
        sw = 0.19 * I.shoulder_width
        flare = _sstep(-0.17, -0.27, y)                       # neck -> shoulder line (trapezius slope)
        a = 0.05 * I.neck_width + (sw - 0.05 * I.neck_width) * flare ** 0.7
        b = 0.052 * I.neck_width + (0.105 - 0.052 * I.neck_width) * flare
        cz = -0.02 - 0.015 * flare
        pos = torch.stack([a * torch.sin(phi), y, cz + b * torch.cos(phi)], -1)
        # neckline: crew / v / open collar, lower at the front
        front = 0.5 + 0.5 * torch.cos(phi)
        vee = I.neckline * (1 - (phi.abs() / 0.6).clamp(max=1)) * front
        line = -0.19 - 0.02 * front - vee
        cloth = _sstep(line + 0.004, line - 0.004, y)
        c0 = _t(I.shirt_color, dev)
        if I.shirt_pattern == "stripes":
            c1 = c0 * 0.45 + 0.55 * _t([0.95, 0.95, 0.92], dev)
            c0 = torch.lerp(c0.expand_as(pos), c1.expand_as(pos), (torch.sin(y * 260) > 0.3).float()[..., None])
        elif I.shirt_pattern == "check":
            chk = ((torch.sin(phi * 24) > 0) ^ (torch.sin(y * 160) > 0)).float()
            c0 = c0 * (0.75 + 0.35 * chk[..., None])
        weave = 0.9 + 0.2 * value_noise(pos, 400.0, I.seed + 29)
        skin = _t(I.skin, dev) * (0.97 + 0.06 * value_noise(pos, 120.0, I.seed + 30))[..., None]
        col = torch.lerp(skin.expand_as(pos), (c0 * weave[..., None]).expand_as(pos), cloth[..., None])
        self.parts.append(_make_part("torso", pos, col.clamp(0, 1), ref_center=(0, -0.25, -0.03), periodic=True,
                                     thick=0.4))

    # ---- accessories ----
    def _hat_cover(self, d):
        phi = torch.atan2(d[..., 0], d[..., 2])
        el = torch.asin(d[..., 1].clamp(-1, 1))
        line = 0.55 - 0.2 * (0.5 - 0.5 * torch.cos(phi))  # lower at the back
        return _sstep(line - 0.02, line + 0.02, el)

    def _outer_radius(self, d):
        sh = self.shape
        rs = sh.skin_radius(d, with_lids=False)
        if self.identity.hair_style == "bald":
            return rs
        cov = self._hair_cover(d * rs[..., None], d)
        return torch.lerp(rs, self._hair_radius(d, rs), cov)

    def _build_accessories(self, I, sh, dev):
        if I.hat:
            d = _sphere_dirs(40, 128, dev, t0=0.02, t1=1.3, dense_front=0.0, dense_eq=0.0)
            cov = self._hat_cover(d)
            rs = self.shape.skin_radius(d, with_lids=False)
            r = rs + max(I.hair_volume, 0.004) * 0.8 + 0.008 + 0.004 * (1 - cov)
            pos = d * r[..., None]
            phi = torch.atan2(d[..., 0], d[..., 2])
            ribs = 0.8 + 0.2 * torch.cos(phi * 60) ** 2
            el = torch.asin(d[..., 1])
            cuff = _sstep(0.75, 0.68, el - 0.2 * (0.5 + 0.5 * torch.cos(phi)))
            col = _t(I.hat_color, dev) * (ribs * (1 - 0.25 * cuff))[..., None]
            self.parts.append(_make_part("hat", pos, col.clamp(0, 1), opacity=cov, keep=cov > 0.02, periodic=True, thick=0.4))
        if I.headband and not I.hat:
            phi = torch.linspace(-math.pi, math.pi, 181, device=dev)[:-1]
            t = torch.linspace(-1, 1, 8, device=dev)
            t, phi = torch.meshgrid(t, phi, indexing="ij")
            el = 0.62 - 0.45 * (0.5 - 0.5 * torch.cos(phi)) + 0.09 * t
            d = torch.stack([el.cos() * phi.sin(), el.sin(), el.cos() * phi.cos()], -1)
            pos = d * (self._outer_radius(d) + 0.0025)[..., None]
            col = _t(I.headband_color, dev) * (0.85 + 0.15 * (1 - t.abs()))[..., None]
            self.parts.append(_make_part("headband", pos, col.expand_as(pos).clone(), periodic=True, thick=0.4))
        if I.glasses != "none":
            self._build_glasses(I, sh, dev)

    def _build_glasses(self, I, sh, dev):
        fc = _t(I.glasses_color, dev)
        zf = 0.094 + 0.004 * (I.nose_projection - 1)
        ring_t = torch.linspace(0, 2 * math.pi, 97, device=dev)[:-1]
        tube = torch.linspace(0, 2 * math.pi, 7, device=dev)[:-1]
        for side, c in zip((1, -1), sh.eye_c):
            cx = side * 0.033
            # rim: a rounded rectangle (superellipse) tube
            ct, st_ = torch.cos(ring_t), torch.sin(ring_t)
            ex = 0.0215 * ct.sign() * ct.abs() ** 0.6
            ey = 0.0155 * st_.sign() * st_.abs() ** 0.6
            cen = torch.stack([cx + ex, 0.002 + ey, zf - 0.006 * (ex * side / 0.0215).clamp(min=0) ** 2], -1)
            T, Tu = torch.meshgrid(ring_t, tube, indexing="ij")
            rad = F.normalize(torch.stack([ex, ey, 0 * ex], -1), dim=-1)
            off = 0.0012 * (torch.cos(Tu)[..., None] * rad[:, None] + torch.sin(Tu)[..., None] * _t([0, 0, 1], dev))
            pos = cen[:, None] + off
            self.parts.append(_make_part(f"glasses_rim{side}", pos, fc.expand_as(pos).clone(), ref_normals=off,
                                         periodic=True, thick=0.6))
            # lens
            # lens: a regular grid clipped to the rim's superellipse (no pile-up of samples at its centre)
            gy, gx = torch.meshgrid(torch.linspace(-0.0155, 0.0155, 14, device=dev), torch.linspace(-0.0215, 0.0215, 19, device=dev),
                                    indexing="ij")
            inside = (gx.abs() / 0.0215) ** (1 / 0.6) + (gy.abs() / 0.0155) ** (1 / 0.6) <= 0.97
            lp = torch.stack([cx + gx, 0.002 + gy, zf - 0.006 * (gx * side / 0.0215).clamp(min=0) ** 2], -1)
            sun = I.glasses == "sun"
            lc = _t([0.05, 0.05, 0.07] if sun else [0.55, 0.65, 0.75], dev).expand_as(lp).clone()
            op = torch.full(lp.shape[:2], 0.85 if sun else 0.08, device=dev)
            self.parts.append(_make_part(f"glasses_lens{side}", lp, lc, opacity=op, keep=inside,
                                         ref_normals=_t([0, 0, 1.0], dev).expand_as(lp), shade=False, thick=0.3))
            # temple arm from the rim's outer edge back to the ear, kept just outside the skin
            a = torch.linspace(0, 1, 40, device=dev)
            p0 = torch.tensor([cx + side * 0.0215, 0.006, zf - 0.006], device=dev)
            p1 = torch.tensor([side * 0.074, 0.004, -0.012], device=dev)
            line = p0 + a[:, None] * (p1 - p0)
            dd = F.normalize(line, dim=-1)
            line = dd * torch.maximum(line.norm(dim=-1), sh.skin_radius(dd, with_lids=False) + 0.003)[:, None]
            T3, Tu3 = torch.meshgrid(a, tube, indexing="ij")
            off = 0.0011 * (torch.cos(Tu3)[..., None] * _t([side, 0, 0], dev) + torch.sin(Tu3)[..., None] * _t([0, 1.0, 0], dev))
            pos = line[:, None] + off
            self.parts.append(_make_part(f"glasses_arm{side}", pos, fc.expand_as(pos).clone(), ref_normals=off,
                                         periodic=True, thick=0.6))
        # bridge
        a = torch.linspace(-1, 1, 16, device=dev)
        T4, Tu4 = torch.meshgrid(a, tube, indexing="ij")
        cen = torch.stack([0.0115 * a, 0.008 + 0.003 * (1 - a**2), torch.full_like(a, zf + 0.001)], -1)
        off = 0.0011 * (torch.cos(Tu4)[..., None] * _t([0, 1.0, 0], dev) + torch.sin(Tu4)[..., None] * _t([0, 0, 1.0], dev))
        pos = cen[:, None] + off
        self.parts.append(_make_part("glasses_bridge", pos, fc.expand_as(pos).clone(), ref_normals=off, periodic=True, thick=0.6))

    # ---- posing ----
    def _finalize(self):
        """Split parts into static Gaussians (computed once) and the active windows that expressions move."""
        self._static: list[dict] = []
        self._dynamic: list[Part] = []
        zero = torch.zeros(1, EXPRESSION_DIM, device=self.device)
        for prt in self.parts:
            if prt.eye is not None:
                self._dynamic.append(prt)
                continue
            if not prt.deform and prt.lid is None:
                self._static.append(self._gaussians(prt, zero))
                continue
            h, w = prt.pos.shape[:2]
            mag = prt.jaw_w.clone()
            if prt.basis is not None:
                mag = mag + prt.basis.abs().amax(dim=(0, 2)) * 100  # 0.1 mm of motion ~ 1 % jaw weight
            act = (mag > 1e-2).reshape(h, w)
            if prt.lid is not None or act.all():
                self._dynamic.append(prt)
                continue
            if not act.any():
                self._static.append(self._gaussians(prt, zero))
                continue
            rows = torch.nonzero(act.any(1)).reshape(-1)
            cols = torch.nonzero(act.any(0)).reshape(-1)
            r0, r1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, h)
            c0, c1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, w)
            win = torch.zeros(h, w, dtype=torch.bool, device=self.device)
            win[r0:r1, c0:c1] = True
            inwin = win.reshape(-1)[prt.keep]
            rest = self._gaussians(prt, zero)
            self._static.append({k: v[:, ~inwin] for k, v in rest.items()})
            flat = torch.arange(h * w, device=self.device).reshape(h, w)[r0:r1, c0:c1].reshape(-1)
            remap = torch.full((h * w,), -1, dtype=torch.long, device=self.device)
            remap[flat] = torch.arange(len(flat), device=self.device)
            full_w = (c0 == 0 and c1 == w)
            sub = Part(prt.name + "_active", prt.pos[r0:r1, c0:c1], prt.albedo[r0:r1, c0:c1], prt.opacity[r0:r1, c0:c1],
                       remap[prt.keep[inwin]], prt.normal0[r0:r1, c0:c1], periodic=prt.periodic and full_w, deform=True,
                       jaw_w=prt.jaw_w[flat], basis=None if prt.basis is None else prt.basis[:, flat], aniso=prt.aniso,
                       thick=prt.thick, shade=prt.shade)
            self._dynamic.append(sub)

    def _gaussians(self, prt: Part, z: torch.Tensor) -> dict:
        """Gaussian attributes [E, M, .] of one part under expressions z [E, C]."""
        E = z.shape[0]
        h, w = prt.pos.shape[:2]
        k = prt.keep
        p = prt.pos.reshape(1, -1, 3).expand(E, -1, -1)
        if prt.deform:
            if prt.basis is not None:
                p = p + torch.einsum("el,lpk->epk", z[:, self._lin_idx], prt.basis)
            jaw = torch.maximum(z[:, _E["jaw_open"]], 0.55 * z[:, _E["tongue_out"]])[:, None]
            ang = 0.32 * jaw
            ca, sa = torch.cos(ang), torch.sin(ang)
            shift = 0.004 * (z[:, _E["mouth_left"]] - z[:, _E["mouth_right"]])[:, None]
            ry, rz = p[..., 1] - _HINGE[0], p[..., 2] - _HINGE[1]
            rot = torch.stack([p[..., 0] + shift, _HINGE[0] + ry * ca - rz * sa - 0.002 * jaw,
                               _HINGE[1] + ry * sa + rz * ca + 0.009 * jaw], -1)
            p = p + prt.jaw_w[None, :, None] * (rot - p)
        P = (p * self.S).reshape(E, h, w, 3)
        n, th, _ = _grid_normals(P, prt.periodic, prt.normal0 * self.S.reciprocal())
        su = _spacing(P, -3, False).reshape(E, -1)[:, k]
        sv = _spacing(P, -2, prt.periodic).reshape(E, -1)[:, k]
        su, sv = torch.maximum(su, 0.35 * sv), torch.maximum(sv, 0.35 * su)
        n = n.reshape(E, -1, 3)[:, k]
        th = th.reshape(E, -1, 3)[:, k]
        e1 = F.normalize(th - (th * n).sum(-1, keepdim=True) * n, dim=-1)
        e2 = torch.linalg.cross(n, e1, dim=-1)
        R = torch.stack([e1, e2, n], -1)
        sc = torch.stack([prt.aniso[0] * su, prt.aniso[1] * sv, prt.thick * 0.6 * torch.minimum(su, sv)], -1).clamp(min=1e-4)
        col = prt.albedo.reshape(1, h * w, 3)[:, k].expand(E, -1, -1)
        op = prt.opacity.reshape(1, h * w)[:, k].expand(E, -1)
        if prt.lid is not None:
            op, col = self._eyelids(prt, z, op, col, k)
        if prt.eye is not None:
            col = self._eye_colors(prt, z)[:, k]
        if prt.shade:
            l1, l2 = _LIGHT1.to(n), _LIGHT2.to(n)
            shade = 0.5 + 0.42 * (n @ l1).clamp(min=0) + 0.18 * (n @ l2).clamp(min=0) - 0.12 * (-n[..., 1]).clamp(min=0)
            col = col * shade[..., None]
        return {"means": P.reshape(E, -1, 3)[:, k], "quats": rotmat_to_quat(R), "scales": sc,
                "opacities": op.clamp(0, 1) * 0.98, "colors": col.clamp(0, 1)}

    @property
    def _lin_idx(self):
        return [_E[n] for n in _LIN]

    def pose(self, expressions) -> list[Gaussians]:
        """expressions [E, C] (or [C]) -> E Gaussians in the head-centric world (metres)."""
        z = expressions if isinstance(expressions, torch.Tensor) else torch.as_tensor(np.asarray(expressions, np.float32))
        z = z.to(device=self.device, dtype=torch.float32)
        if z.ndim == 1:
            z = z[None]
        if z.shape[-1] != EXPRESSION_DIM:
            from ..errors import InputError
            raise InputError(f"SynthHeads expressions must have {EXPRESSION_DIM} values ({EXPRESSION_NAMES}), got {z.shape[-1]}")
        E = z.shape[0]
        items = [self._gaussians(prt, z) for prt in self._dynamic]
        keys = ("means", "quats", "scales", "opacities", "colors")
        cat = {key: torch.cat([it[key] for it in items] + [s[key].expand(E, *s[key].shape[1:]) for s in self._static], 1) for key in keys}
        return [Gaussians(*(cat[key][e] for key in keys)) for e in range(E)]

    def _eyelids(self, prt, z, op, col, k):
        side, u, v, W, hu, hl, tilt = prt.lid
        u, v = u[k], v[k]
        b = z[:, _E["blink_left" if side > 0 else "blink_right"]][:, None]
        wide, sq, sm = (z[:, _E[n]][:, None] for n in ("eye_wide", "squint", "smile"))
        shape = (1 - (u / W) ** 2).clamp(min=0) ** 0.6
        vt = v - tilt * u * 0.3
        v_hi = hu * shape * (1 + 0.55 * wide - 0.3 * sq)
        v_lo = -hl * shape * (1 - 0.6 * sq - 0.25 * sm).clamp(min=0.1)
        v_cl = -0.35 * hl * shape
        v_hi = torch.lerp(v_hi, v_cl, b)
        v_lo = torch.lerp(v_lo, v_cl, b)
        s = 0.00025
        hole = (torch.sigmoid((vt - v_lo) / s) + torch.sigmoid((v_hi - vt) / s) - 1).clamp(min=0)
        lash = torch.exp(-(((vt - v_hi) - 0.0005) / 0.0006) ** 2) * (shape > 0.05).float()
        col = col * (1 - 0.8 * lash)[..., None]
        return op * (1 - hole), col

    def _eye_colors(self, prt, z):
        side, n = prt.eye
        I = self.identity
        gx, gy = z[:, _E["gaze_x"]] * 0.45, z[:, _E["gaze_y"]] * 0.35
        g = torch.stack([torch.sin(gx) * torch.cos(gy), torch.sin(gy), torch.cos(gx) * torch.cos(gy)], -1)
        g = F.normalize(g + _t([-side * 0.03, 0, 0], g.device), dim=-1)
        ang = torch.acos((n[None] @ g[..., None])[..., 0].clamp(-1, 1))  # [E, P]
        dev = n.device
        sclera = _t([0.93, 0.9, 0.87], dev) * (1 - 0.25 * _sstep(0.9, 1.8, ang))[..., None]
        streak = value_noise(n * 40.0, 1.0, I.seed + 31)  # radial-ish iris texture
        iris = _t(I.iris, dev) * (0.7 + 0.6 * streak)[None, :, None] * (1 - 0.5 * _sstep(0.4, 0.54, ang))[..., None]
        pupil = _t([0.02, 0.02, 0.02], dev)
        rp = 0.19 * I.pupil
        col = torch.where((ang < 0.55)[..., None], iris, sclera)
        col = torch.lerp(col, pupil.expand_as(col), _sstep(rp + 0.02, rp - 0.02, ang)[..., None])
        hl = torch.exp(-(((n - F.normalize(_t([0.25, 0.35, 1.0], dev), dim=0)) ** 2).sum(-1)) / 0.004)
        return (col + 0.8 * hl[None, :, None]).clamp(0, 1)
