"""Batched SynthHeads posing: many identities x many expressions in one pass of tensor ops.

``HeadRig.pose`` poses one identity: ~60 small ops per moving part, launch-bound on a GPU. Here the movable parts
of up to ``capacity`` rigs are stacked once into a ``PoseBank`` on the device (all parts side by side as bands of
one flat point array, each part on its full grid with the rig's active window top-left), so that posing N rows
(row = one identity slot + one expression) costs the same ~300 launches whatever N and the number of identities.

It computes what ``HeadRig.pose`` computes, op for op: the grid finite differences take neighbours by index maps
that reproduce the one-sided differences at each rig's own window border (and the periodic seams), the linear expression fields of all slots
are accumulated row by row in a fixed order, and the kept Gaussians are gathered per row. Results equal the per-rig path up to the
order of the sums of the linear fields (and vectorised transcendental functions on a CPU): ~1e-7 relative;
a row's result never depends on the other rows posed with it.

Output: padded Gaussians [N, G, ...] with ``valid`` [N, G]; a row's valid entries, in order, are exactly the
Gaussians of ``rig.pose(z)`` for that row (padding has zero opacity, so renderers skip it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..gaussians import Gaussians, rotmat_to_quat
from .expressions import EXPRESSION_DIM
from .headgeom import _E, _HINGE, _LIGHT1, _LIGHT2, _LIN, HeadRig, _sstep, value_noise

__all__ = ["rig_pose_data", "PoseBank", "KEYS", "row_gaussians"]

KEYS = ("means", "quats", "scales", "opacities", "colors")
_LIN_IDX = [_E[n] for n in _LIN]


def _to_device(x: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Host tensor -> device without waiting for the device's queue (pinned staging on CUDA)."""
    return x.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else x.to(dev)


def _neighbours(h: int, w: int, Hc: int, Wc: int, periodic: bool):
    """Flat canvas indices [Hc * Wc] of each point's row / column neighbours inside its h x w window (one-sided at
    the window's borders: the point itself stands in for the missing neighbour, so P[next] - P[prev] is exactly
    HeadRig's forward / central / backward difference), and the border flags of the spacing rule."""
    r = torch.arange(Hc)[:, None].expand(Hc, Wc)
    c = torch.arange(Wc)[None].expand(Hc, Wc)
    inside = (r < h) & (c < w)
    rn = torch.where(r < h - 1, r + 1, r)
    rp = torch.where(r > 0, r - 1, r)
    if periodic:
        cn, cp = (c + 1) % w, (c - 1) % w
    else:
        cn, cp = torch.where(c < w - 1, c + 1, c), torch.where(c > 0, c - 1, c)
    flat = lambda rr, cc: torch.where(inside, rr * Wc + cc, r * Wc + c).reshape(-1)  # noqa: E731  outside: itself
    first_r, last_r = (r == 0), (r == h - 1)
    first_c = (c == 0) & (not periodic)
    last_c = (c == w - 1) & (not periodic)
    return (flat(rn, c), flat(rp, c), flat(r, cn), flat(r, cp),
            first_r.reshape(-1), last_r.reshape(-1), first_c.reshape(-1), last_c.reshape(-1))


def _canvas(x: torch.Tensor, Hc: int, Wc: int) -> torch.Tensor:
    """[h, w, C] or [h, w] -> [Hc * Wc, C] or [Hc * Wc], the window top-left, zeros elsewhere."""
    two = x.ndim == 2
    y = x[..., None] if two else x
    h, w = y.shape[:2]
    out = torch.zeros(Hc, Wc, y.shape[-1], dtype=y.dtype)
    out[:h, :w] = y.detach().cpu()
    out = out.reshape(Hc * Wc, -1)
    return out[:, 0] if two else out


def _movable(rig: HeadRig) -> list:
    """The parts an expression can change (deforming, eyelids, eyes), in build order: the bank's layout (the same
    for every identity; a part can still be static for one identity, then its band holds nothing)."""
    return [p for p in rig.parts if p.deform or p.lid is not None or p.eye is not None]


def rig_pose_data(rig: HeadRig) -> dict:
    """Everything ``PoseBank`` needs from one rig, as flat per-point arrays over the bank's layout (one band per
    movable part, its full grid) plus the kept points' attributes in output order (CPU tensors, picklable)."""
    I = rig.identity
    dyn = {(p.name[:-len("_active")] if p.name.endswith("_active") else p.name): p for p in rig._dynamic}
    layout, off = [], 0
    for full in _movable(rig):
        Hc, Wc = full.pos.shape[:2]
        layout.append((full.name, int(Hc), int(Wc), off))
        off += Hc * Wc
    NP = off
    z3 = lambda: torch.zeros(NP, 3)  # noqa: E731
    pos, ref, jaw_w = z3(), z3(), torch.zeros(NP)
    L = len(_LIN)
    basis = torch.zeros(L, NP, 3)
    idx = torch.arange(NP)
    rn, rp, cn, cp = idx.clone(), idx.clone(), idx.clone(), idx.clone()
    fr, lr, fc, lc = (torch.zeros(NP, dtype=torch.bool) for _ in range(4))
    kept = {k: [] for k in ("kk", "albedo", "opacity", "a0", "a1", "th", "shade", "lid", "left", "eye", "u", "v",
                            "lidp", "n", "streak", "iris", "eyep")}
    for name, Hc, Wc, o in layout:
        prt = dyn.get(name)
        if prt is None:
            continue
        h, w = prt.pos.shape[:2]
        sl = slice(o, o + Hc * Wc)
        pos[sl] = _canvas(prt.pos, Hc, Wc)
        ref[sl] = _canvas(prt.normal0 * rig.S.reciprocal(), Hc, Wc)
        if prt.deform:
            jaw_w[sl] = _canvas(prt.jaw_w.reshape(h, w), Hc, Wc)
            if prt.basis is not None:
                for i in range(L):
                    basis[i, sl] = _canvas(prt.basis[i].reshape(h, w, 3), Hc, Wc)
        nb = _neighbours(h, w, Hc, Wc, bool(prt.periodic))
        for dst, src in zip((rn, rp, cn, cp), nb[:4]):
            dst[sl] = src + o
        for dst, src in zip((fr, lr, fc, lc), nb[4:]):
            dst[sl] = src
        k = prt.keep.cpu()
        M = len(k)
        kk = (k // w) * Wc + (k % w)
        kept["kk"].append(kk + o)
        kept["albedo"].append(prt.albedo.reshape(-1, 3)[k].cpu())
        kept["opacity"].append(prt.opacity.reshape(-1)[k].cpu())
        kept["a0"].append(torch.full((M,), prt.aniso[0]))
        kept["a1"].append(torch.full((M,), prt.aniso[1]))
        kept["th"].append(torch.full((M,), prt.thick * 0.6))           # HeadRig: (thick * 0.6) in double
        kept["shade"].append(torch.full((M,), bool(prt.shade)))
        lid = prt.lid
        kept["lid"].append(torch.full((M,), lid is not None))
        eye = prt.eye
        side = (lid[0] if lid is not None else eye[0] if eye is not None else 1)
        kept["left"].append(torch.full((M,), side > 0))
        if lid is not None:
            _, u, v, W, hu, hl, tilt = lid
            kept["u"].append(u[k].cpu())
            kept["v"].append(v[k].cpu())
            kept["lidp"].append(torch.tensor([W, hu, hl, tilt, -0.35 * hl], dtype=torch.float32).expand(M, 5))
        else:
            kept["u"].append(torch.zeros(M))
            kept["v"].append(torch.zeros(M))
            kept["lidp"].append(torch.ones(M, 5))
        kept["eye"].append(torch.full((M,), eye is not None))
        if eye is not None:
            n = eye[1].cpu()
            rp_ = 0.19 * I.pupil
            kept["n"].append(n[k])
            kept["streak"].append(value_noise(n * 40.0, 1.0, I.seed + 31)[k])
            kept["iris"].append(torch.tensor(I.iris, dtype=torch.float32).expand(M, 3))
            # the pupil's smoothstep edges as HeadRig computes them (python doubles, then float32)
            kept["eyep"].append(torch.tensor([rp_ + 0.02, (rp_ - 0.02) - (rp_ + 0.02)], dtype=torch.float32).expand(M, 2))
        else:
            kept["n"].append(torch.zeros(M, 3))
            kept["streak"].append(torch.zeros(M))
            kept["iris"].append(torch.zeros(M, 3))
            kept["eyep"].append(torch.ones(M, 2))
    kept = {k: torch.cat(v) if v else torch.zeros(0) for k, v in kept.items()}
    static = {key: torch.cat([s[key][0] for s in rig._static]).detach().cpu() for key in KEYS}
    return {"identity": int(I.seed), "S": rig.S.detach().cpu().clone(), "layout": layout,
            "points": {"pos": pos, "ref": ref, "jaw_w": jaw_w, "basis": basis, "rn": rn, "rp": rp, "cn": cn, "cp": cp,
                       "fr": fr, "lr": lr, "fc": fc, "lc": lc},
            "kept": kept, "static": static}


class PoseBank:
    """The movable parts and the static Gaussians of up to ``capacity`` rigs on one device, one slot each.

    ``put(slot, rig_pose_data(rig))`` loads a rig; ``pose(slots, z)`` poses row r = (slots[r], z[r]) for all
    rows at once -> (padded Gaussian tensors {key: [N, G, ...]}, valid [N, G]). All movable parts of all rows
    are posed in one pass of ~300 tensor ops (the layout's bands side by side; neighbours by index)."""

    def __init__(self, capacity: int, device="cpu"):
        self.cap = int(capacity)
        self.device = torch.device(device)
        self.layout = None
        self.pts: dict[str, torch.Tensor] = {}
        self.kept: dict[str, torch.Tensor] = {}
        self.static: dict[str, torch.Tensor] = {}
        self.S = torch.ones(self.cap, 3, device=self.device)
        self.count = [0] * self.cap
        self.static_count = [0] * self.cap
        self.identity = [None] * self.cap

    @staticmethod
    def _grow(store: dict, data: dict, cap: int, n: int, dev) -> None:
        """Make store[k] [cap, >= n, ...] for every k of data (zero-padded, copied over when it grows)."""
        for k, v in data.items():
            old = store.get(k)
            if old is None or old.shape[1] < n:
                size = n if old is None else max(n, old.shape[1] + 2048)
                new = torch.zeros(cap, size, *v.shape[1:], dtype=v.dtype, device=dev)
                if old is not None:
                    new[:, :old.shape[1]] = old
                store[k] = new

    def put(self, slot: int, data: dict) -> None:
        s, dev = int(slot), self.device
        if self.layout is None:
            self.layout = data["layout"]
            P = data["points"]
            for k, v in P.items():
                if k == "basis":
                    self.pts[k] = torch.zeros(self.cap, *v.shape, device=dev)
                else:
                    self.pts[k] = torch.zeros(self.cap, *v.shape, dtype=v.dtype, device=dev)
        elif data["layout"] != self.layout:
            raise RuntimeError("PoseBank: this rig's movable parts differ from the bank's layout")
        for k, v in data["points"].items():
            self.pts[k][s] = v.to(dev)
        kept = data["kept"]
        M = len(kept["kk"])
        self._grow(self.kept, kept, self.cap, M, dev)
        for k, v in kept.items():
            self.kept[k][s, :M] = v.to(dev)
            self.kept[k][s, M:] = 0
        self.count[s] = M
        st = data["static"]
        n = len(st["means"])
        self._grow(self.static, st, self.cap, n, dev)
        for k, v in st.items():
            self.static[k][s, :n] = v.to(dev)
            self.static[k][s, n:] = 0
        self.static_count[s] = n
        self.S[s] = data["S"].to(dev)
        self.identity[s] = data["identity"]

    def pose(self, slots: list[int], z: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """slots [N] (python ints), z [N, C] expressions -> ({key: [N, G, ...]}, valid [N, G] bool)."""
        if z.shape[-1] != EXPRESSION_DIM:
            raise ValueError(f"expressions must have {EXPRESSION_DIM} values")
        dev = self.device
        z = z.to(dev, torch.float32)
        mem = _to_device(torch.as_tensor(slots, dtype=torch.long), dev)
        used = sorted(set(int(s) for s in slots))
        M = max(self.count[s] for s in used)
        Ms = max(self.static_count[s] for s in used)
        outs = [self._pose_moving(mem, z, M)] if M > 0 else []
        outs.append({k: v[mem, :Ms] for k, v in self.static.items()})
        cnt = _to_device(torch.as_tensor([[self.count[s], self.static_count[s]] for s in slots], dtype=torch.long), dev)
        valids = ([torch.arange(M, device=dev)[None] < cnt[:, :1]] if M > 0 else []) + \
            [torch.arange(Ms, device=dev)[None] < cnt[:, 1:]]
        out = {k: torch.cat([o[k] for o in outs], 1) for k in KEYS}
        valid = torch.cat(valids, 1)
        out["opacities"] = torch.where(valid, out["opacities"], torch.zeros((), device=dev))
        return out, valid

    # ---- posing (mirrors HeadRig._gaussians, all movable parts of all rows at once) ----
    def _pose_moving(self, mem: torch.Tensor, z: torch.Tensor, M: int) -> dict:
        P_ = self.pts
        dev = z.device
        p = P_["pos"][mem]                                                    # [N, NP, 3]
        # sum_l z_l * basis_l, accumulated in a fixed order: each row's result depends on that row only (not on
        # the other rows of the call, nor on the bank slot), so batches are reproducible
        zl = z[:, _LIN_IDX]
        disp = zl[:, 0, None, None] * P_["basis"][mem, 0]
        for i in range(1, zl.shape[1]):
            disp = disp + zl[:, i, None, None] * P_["basis"][mem, i]
        p = p + disp
        jaw = torch.maximum(z[:, _E["jaw_open"]], 0.55 * z[:, _E["tongue_out"]])[:, None]
        ang = 0.32 * jaw
        ca, sa = torch.cos(ang), torch.sin(ang)
        shift = 0.004 * (z[:, _E["mouth_left"]] - z[:, _E["mouth_right"]])[:, None]
        ry, rz = p[..., 1] - _HINGE[0], p[..., 2] - _HINGE[1]
        rot = torch.stack([p[..., 0] + shift, _HINGE[0] + ry * ca - rz * sa - 0.002 * jaw,
                           _HINGE[1] + ry * sa + rz * ca + 0.009 * jaw], -1)
        p = p + P_["jaw_w"][mem][:, :, None] * (rot - p)
        P = p * self.S[mem][:, None, :]
        ref = P_["ref"][mem]
        nb = lambda k: P.gather(1, P_[k][mem][..., None].expand(-1, -1, 3))  # noqa: E731
        Prn, Prp, Pcn, Pcp = nb("rn"), nb("rp"), nb("cn"), nb("cp")
        th, tw = Prn - Prp, Pcn - Pcp                                         # HeadRig's finite differences
        n = torch.linalg.cross(th, tw, dim=-1)
        bad = n.norm(dim=-1, keepdim=True) < 1e-12
        n = torch.where(bad, ref, n)
        n = F.normalize(n, dim=-1)
        sign = torch.sign((n * ref).sum(-1, keepdim=True))
        n = n * torch.where(sign == 0, torch.ones_like(sign), sign)
        fr, lr, fc, lc = (P_[k][mem] for k in ("fr", "lr", "fc", "lc"))
        dF, dB = (Prn - P).norm(dim=-1), (P - Prp).norm(dim=-1)
        su = torch.minimum(torch.where(lr, dB, dF), torch.where(fr, dF, dB))
        eF, eB = (Pcn - P).norm(dim=-1), (P - Pcp).norm(dim=-1)
        sv = torch.minimum(torch.where(lc, eB, eF), torch.where(fc, eF, eB))
        K = {k: v[mem, :M] for k, v in self.kept.items()}
        kk = K["kk"]
        g3 = lambda x: x.gather(1, kk[..., None].expand(-1, -1, 3))  # noqa: E731
        su, sv = su.gather(1, kk), sv.gather(1, kk)
        su, sv = torch.maximum(su, 0.35 * sv), torch.maximum(sv, 0.35 * su)
        n, th = g3(n), g3(th)
        e1 = F.normalize(th - (th * n).sum(-1, keepdim=True) * n, dim=-1)
        e2 = torch.linalg.cross(n, e1, dim=-1)
        R = torch.stack([e1, e2, n], -1)
        sc = torch.stack([K["a0"] * su, K["a1"] * sv, K["th"] * torch.minimum(su, sv)], -1).clamp(min=1e-4)
        col, op = K["albedo"], K["opacity"]
        # eyelids (the eye patches)
        left = K["left"]
        W, hu, hl, tilt, cl = K["lidp"].unbind(-1)
        u, v = K["u"], K["v"]
        b = torch.where(left, z[:, _E["blink_left"], None], z[:, _E["blink_right"], None])
        wide, sq, sm = (z[:, _E[nm]][:, None] for nm in ("eye_wide", "squint", "smile"))
        shape = (1 - (u / W) ** 2).clamp(min=0) ** 0.6
        vt = v - tilt * u * 0.3
        v_hi = hu * shape * (1 + 0.55 * wide - 0.3 * sq)
        v_lo = -hl * shape * (1 - 0.6 * sq - 0.25 * sm).clamp(min=0.1)
        v_cl = cl * shape
        v_hi = torch.lerp(v_hi, v_cl, b)
        v_lo = torch.lerp(v_lo, v_cl, b)
        s = 0.00025
        hole = (torch.sigmoid((vt - v_lo) / s) + torch.sigmoid((v_hi - vt) / s) - 1).clamp(min=0)
        lash = torch.exp(-(((vt - v_hi) - 0.0005) / 0.0006) ** 2) * (shape > 0.05).float()
        lid = K["lid"]
        col = torch.where(lid[..., None], col * (1 - 0.8 * lash)[..., None], col)
        op = torch.where(lid, op * (1 - hole), op)
        # eyes (gaze): the eyeballs' colours
        gx, gy = z[:, _E["gaze_x"]] * 0.45, z[:, _E["gaze_y"]] * 0.35
        g = torch.stack([torch.sin(gx) * torch.cos(gy), torch.sin(gy), torch.cos(gx) * torch.cos(gy)], -1)
        ne = K["n"]
        angs = []
        for side in (1, -1):
            gs = F.normalize(g + torch.tensor([-side * 0.03, 0, 0], dtype=torch.float32, device=dev), dim=-1)
            angs.append(torch.acos((ne @ gs[..., None])[..., 0].clamp(-1, 1)))
        ang = torch.where(left, angs[0], angs[1])
        sclera = torch.tensor([0.93, 0.9, 0.87], device=dev) * (1 - 0.25 * _sstep(0.9, 1.8, ang))[..., None]
        iris = K["iris"] * (0.7 + 0.6 * K["streak"])[..., None] * (1 - 0.5 * _sstep(0.4, 0.54, ang))[..., None]
        pupil = torch.tensor([0.02, 0.02, 0.02], device=dev)
        e0, den = K["eyep"].unbind(-1)
        t = ((ang - e0) / den).clamp(0, 1)
        ec = torch.where((ang < 0.55)[..., None], iris, sclera)
        ec = torch.lerp(ec, pupil.expand_as(ec), (t * t * (3 - 2 * t))[..., None])
        hlt = torch.exp(-(((ne - F.normalize(torch.tensor([0.25, 0.35, 1.0], device=dev), dim=0)) ** 2).sum(-1)) / 0.004)
        col = torch.where(K["eye"][..., None], (ec + 0.8 * hlt[..., None]).clamp(0, 1), col)
        # shading
        l1, l2 = _LIGHT1.to(n), _LIGHT2.to(n)
        shade = 0.5 + 0.42 * (n @ l1).clamp(min=0) + 0.18 * (n @ l2).clamp(min=0) - 0.12 * (-n[..., 1]).clamp(min=0)
        col = torch.where(K["shade"][..., None], col * shade[..., None], col)
        return {"means": g3(P), "quats": rotmat_to_quat(R), "scales": sc, "opacities": op.clamp(0, 1) * 0.98,
                "colors": col.clamp(0, 1)}


def row_gaussians(out: dict, valid: torch.Tensor, r: int) -> Gaussians:
    """Row r's Gaussians (its valid entries, in order)."""
    v = valid[r]
    return Gaussians(*(out[k][r][v] for k in KEYS))
