"""Batched SynthHeads posing: many identities x many expressions in one pass of tensor ops.

``HeadRig.pose`` poses one identity: ~60 small ops per moving part, launch-bound on a GPU. Here the moving parts
of up to ``capacity`` rigs are stacked once into a ``PoseBank`` on the device (each part kind on a fixed canvas:
its full grid, the rig's active window top-left, replicate-padded), so that posing N rows (row = one identity
slot + one expression) costs the same ~600 launches whatever N and the number of identities.

It computes what ``HeadRig.pose`` computes, op for op: the grid finite differences use per-row edge masks that
reproduce the one-sided differences at each rig's own window border, the linear expression fields of all slots
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


def _canvas(x: torch.Tensor, Hc: int, Wc: int) -> torch.Tensor:
    """[h, w, C] or [h, w] -> [Hc * Wc, C] or [Hc * Wc], replicate-padded at the bottom / right."""
    two = x.ndim == 2
    y = x[..., None] if two else x
    h, w = y.shape[:2]
    if (h, w) != (Hc, Wc):
        y = F.pad(y.permute(2, 0, 1)[None].float(), (0, Wc - w, 0, Hc - h), mode="replicate")[0].permute(1, 2, 0)
    y = y.reshape(Hc * Wc, -1)
    return y[:, 0] if two else y


def rig_pose_data(rig: HeadRig) -> dict:
    """Everything ``PoseBank`` needs from one rig (CPU tensors, picklable; built where the rig was built)."""
    I = rig.identity
    full = {p.name: p for p in rig.parts}
    parts = []
    for prt in rig._dynamic:
        name = prt.name[:-len("_active")] if prt.name.endswith("_active") else prt.name
        Hc, Wc = full[name].pos.shape[:2] if name in full else prt.pos.shape[:2]
        h, w = prt.pos.shape[:2]
        k = prt.keep
        d = {"name": name, "Hc": int(Hc), "Wc": int(Wc), "h": int(h), "w": int(w), "periodic": bool(prt.periodic),
             "deform": bool(prt.deform), "aniso": tuple(prt.aniso), "thick": float(prt.thick), "shade": bool(prt.shade),
             "pos": _canvas(prt.pos, Hc, Wc), "albedo": _canvas(prt.albedo, Hc, Wc), "opacity": _canvas(prt.opacity, Hc, Wc),
             "ref": _canvas(prt.normal0 * rig.S.reciprocal(), Hc, Wc),
             "keep": (k // w) * Wc + (k % w), "lid": None, "eye": None, "basis": None, "jaw_w": None}
        if prt.deform:
            d["jaw_w"] = _canvas(prt.jaw_w.reshape(h, w), Hc, Wc)
            if prt.basis is not None:
                L = prt.basis.shape[0]
                d["basis"] = torch.stack([_canvas(prt.basis[i].reshape(h, w, 3), Hc, Wc) for i in range(L)])
        if prt.lid is not None:
            side, u, v, W, hu, hl, tilt = prt.lid
            d["lid"] = {"side": int(side), "u": _canvas(u.reshape(h, w), Hc, Wc), "v": _canvas(v.reshape(h, w), Hc, Wc),
                        "scal": torch.tensor([W, hu, hl, tilt, -0.35 * hl], dtype=torch.float32)}
        if prt.eye is not None:
            side, n = prt.eye
            rp = 0.19 * I.pupil
            streak = value_noise(n * 40.0, 1.0, I.seed + 31)
            # the smoothstep edges exactly as HeadRig computes them (python doubles, then float32)
            d["eye"] = {"side": int(side), "n": _canvas(n.reshape(h, w, 3), Hc, Wc), "streak": _canvas(streak.reshape(h, w), Hc, Wc),
                        "iris": torch.tensor(I.iris, dtype=torch.float32),
                        "scal": torch.tensor([rp + 0.02, (rp - 0.02) - (rp + 0.02)], dtype=torch.float32)}
        parts.append(d)
    static = {key: torch.cat([s[key][0] for s in rig._static]) for key in KEYS}
    return {"identity": int(I.seed), "S": rig.S.detach().cpu().clone(), "parts": parts,
            "static": {k: v.detach().cpu() for k, v in static.items()}}


class _Group:
    """One part kind (e.g. the skin) of every slot, on its canvas."""

    def __init__(self, d: dict, cap: int, dev):
        self.name, self.Hc, self.Wc = d["name"], d["Hc"], d["Wc"]
        self.deform, self.aniso, self.thick, self.shade = d["deform"], d["aniso"], d["thick"], d["shade"]
        n = self.Hc * self.Wc
        z = lambda *s: torch.zeros(cap, *s, device=dev)  # noqa: E731
        self.pos, self.albedo, self.opacity, self.ref = z(n, 3), z(n, 3), z(n), z(n, 3)
        self.keep = torch.zeros(cap, n, dtype=torch.long, device=dev)
        self.count = [0] * cap
        self.h = torch.ones(cap, dtype=torch.long, device=dev)
        self.w = torch.ones(cap, dtype=torch.long, device=dev)
        self.periodic = torch.zeros(cap, dtype=torch.bool, device=dev)
        self.jaw_w = z(n) if d["deform"] else None
        self.basis = z(d["basis"].shape[0], n, 3) if d["basis"] is not None else None
        self.lid = None if d["lid"] is None else {"side": d["lid"]["side"], "u": z(n), "v": z(n), "scal": z(5)}
        self.eye = None if d["eye"] is None else {"side": d["eye"]["side"], "n": z(n, 3), "streak": z(n), "iris": z(3), "scal": z(2)}

    def put(self, s: int, d: dict) -> None:
        dev = self.pos.device
        c = lambda x: x.to(dev)  # noqa: E731
        self.pos[s], self.albedo[s], self.opacity[s], self.ref[s] = c(d["pos"]), c(d["albedo"]), c(d["opacity"]), c(d["ref"])
        M = len(d["keep"])
        self.keep[s].zero_()
        self.keep[s, :M] = c(d["keep"])
        self.count[s] = M
        self.h[s], self.w[s], self.periodic[s] = d["h"], d["w"], d["periodic"]
        if self.jaw_w is not None:
            self.jaw_w[s] = c(d["jaw_w"])
        if self.basis is not None:
            self.basis[s] = c(d["basis"])
        if self.lid is not None:
            for k in ("u", "v", "scal"):
                self.lid[k][s] = c(d["lid"][k])
        if self.eye is not None:
            for k in ("n", "streak", "iris", "scal"):
                self.eye[k][s] = c(d["eye"][k])

    def clear(self, s: int) -> None:
        self.count[s] = 0

    # ---- posing (mirrors HeadRig._gaussians, batched over rows) ----
    def pose(self, mem: torch.Tensor, z: torch.Tensor, M: int) -> dict:
        N, Hc, Wc = len(mem), self.Hc, self.Wc
        dev = z.device
        p = self.pos[mem]                                                    # [N, n, 3]
        if self.deform:
            if self.basis is not None:
                # sum_l z_l * basis_l, accumulated in a fixed order: each row's result depends on that row only
                # (not on the other rows of the call, nor on the bank slot), so batches are reproducible
                zl = z[:, _LIN_IDX]
                disp = zl[:, 0, None, None] * self.basis[mem, 0]
                for i in range(1, zl.shape[1]):
                    disp = disp + zl[:, i, None, None] * self.basis[mem, i]
                p = p + disp
            jaw = torch.maximum(z[:, _E["jaw_open"]], 0.55 * z[:, _E["tongue_out"]])[:, None]
            ang = 0.32 * jaw
            ca, sa = torch.cos(ang), torch.sin(ang)
            shift = 0.004 * (z[:, _E["mouth_left"]] - z[:, _E["mouth_right"]])[:, None]
            ry, rz = p[..., 1] - _HINGE[0], p[..., 2] - _HINGE[1]
            rot = torch.stack([p[..., 0] + shift, _HINGE[0] + ry * ca - rz * sa - 0.002 * jaw,
                               _HINGE[1] + ry * sa + rz * ca + 0.009 * jaw], -1)
            p = p + self.jaw_w[mem][:, :, None] * (rot - p)
        P = (p * self.S[mem][:, None, :]).reshape(N, Hc, Wc, 3)
        ref = self.ref[mem].reshape(N, Hc, Wc, 3)
        h, w, per = self.h[mem], self.w[mem], self.periodic[mem]
        ri = torch.arange(Hc, device=dev)
        ci = torch.arange(Wc, device=dev)
        rfirst, rlast = (ri == 0)[None].expand(N, -1), ri[None] == (h - 1)[:, None]
        cfirst, clast = (ci == 0)[None].expand(N, -1), ci[None] == (w - 1)[:, None]
        rf, rl = rfirst[:, :, None, None], rlast[:, :, None, None]
        cf, cl = cfirst[:, None, :, None], clast[:, None, :, None]
        pr = per[:, None, None, None]
        # rows: one-sided at each rig's first / last window row, central inside (as _grid_normals)
        Pn, Pp = torch.cat([P[:, 1:], P[:, -1:]], 1), torch.cat([P[:, :1], P[:, :-1]], 1)
        th = torch.where(rf, Pn - P, torch.where(rl, P - Pp, Pn - Pp))
        Qn, Qp = torch.cat([P[:, :, 1:], P[:, :, -1:]], 2), torch.cat([P[:, :, :1], P[:, :, :-1]], 2)
        Rn, Rp = P.roll(-1, 2), P.roll(1, 2)
        tw = torch.where(pr, Rn - Rp, torch.where(cf, Qn - P, torch.where(cl, P - Qp, Qn - Qp)))
        n = torch.linalg.cross(th, tw, dim=-1)
        bad = n.norm(dim=-1, keepdim=True) < 1e-12
        n = torch.where(bad, ref.expand_as(n), n)
        n = F.normalize(n, dim=-1)
        sign = torch.sign((n * ref).sum(-1, keepdim=True))
        n = n * torch.where(sign == 0, torch.ones_like(sign), sign)
        # spacings (as _spacing): the smaller of the two neighbour distances, one-sided at the borders
        df, db = (Pn - P).norm(dim=-1), (P - Pp).norm(dim=-1)
        su = torch.minimum(torch.where(rlast[:, :, None], db, df), torch.where(rfirst[:, :, None], df, db))
        ef, eb = (Qn - P).norm(dim=-1), (P - Qp).norm(dim=-1)
        gf, gb = (Rn - P).norm(dim=-1), (P - Rp).norm(dim=-1)
        sv_np = torch.minimum(torch.where(clast[:, None, :], eb, ef), torch.where(cfirst[:, None, :], ef, eb))
        sv = torch.where(per[:, None, None], torch.minimum(gf, gb), sv_np)
        kk = self.keep[mem, :M]                                              # [N, M] canvas indices
        g3 = lambda x: x.reshape(N, Hc * Wc, 3).gather(1, kk[..., None].expand(-1, -1, 3))  # noqa: E731
        g1 = lambda x: x.reshape(N, Hc * Wc).gather(1, kk)  # noqa: E731
        su, sv = g1(su), g1(sv)
        su, sv = torch.maximum(su, 0.35 * sv), torch.maximum(sv, 0.35 * su)
        n, th = g3(n), g3(th)
        e1 = F.normalize(th - (th * n).sum(-1, keepdim=True) * n, dim=-1)
        e2 = torch.linalg.cross(n, e1, dim=-1)
        R = torch.stack([e1, e2, n], -1)
        sc = torch.stack([self.aniso[0] * su, self.aniso[1] * sv, self.thick * 0.6 * torch.minimum(su, sv)], -1).clamp(min=1e-4)
        col = g3(self.albedo[mem])
        op = g1(self.opacity[mem])
        if self.lid is not None:
            op, col = self._eyelids(mem, kk, z, op, col, g1)
        if self.eye is not None:
            col = self._eye_colors(mem, kk, z, g1, g3)
        if self.shade:
            l1, l2 = _LIGHT1.to(n), _LIGHT2.to(n)
            shade = 0.5 + 0.42 * (n @ l1).clamp(min=0) + 0.18 * (n @ l2).clamp(min=0) - 0.12 * (-n[..., 1]).clamp(min=0)
            col = col * shade[..., None]
        return {"means": g3(P), "quats": rotmat_to_quat(R), "scales": sc, "opacities": op.clamp(0, 1) * 0.98,
                "colors": col.clamp(0, 1)}

    def _eyelids(self, mem, kk, z, op, col, g1):
        lid = self.lid
        u, v = g1(lid["u"][mem]), g1(lid["v"][mem])
        W, hu, hl, tilt, cl = (x[:, None] for x in lid["scal"][mem].unbind(-1))
        b = z[:, _E["blink_left" if lid["side"] > 0 else "blink_right"]][:, None]
        wide, sq, sm = (z[:, _E[n]][:, None] for n in ("eye_wide", "squint", "smile"))
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
        col = col * (1 - 0.8 * lash)[..., None]
        return op * (1 - hole), col

    def _eye_colors(self, mem, kk, z, g1, g3):
        eye = self.eye
        dev = z.device
        side = eye["side"]
        gx, gy = z[:, _E["gaze_x"]] * 0.45, z[:, _E["gaze_y"]] * 0.35
        g = torch.stack([torch.sin(gx) * torch.cos(gy), torch.sin(gy), torch.cos(gx) * torch.cos(gy)], -1)
        g = F.normalize(g + torch.tensor([-side * 0.03, 0, 0], dtype=torch.float32, device=dev), dim=-1)
        n = g3(eye["n"][mem])
        ang = torch.acos((n @ g[..., None])[..., 0].clamp(-1, 1))           # [N, M]
        sclera = torch.tensor([0.93, 0.9, 0.87], device=dev) * (1 - 0.25 * _sstep(0.9, 1.8, ang))[..., None]
        streak = g1(eye["streak"][mem])
        iris = eye["iris"][mem][:, None, :] * (0.7 + 0.6 * streak)[..., None] * (1 - 0.5 * _sstep(0.4, 0.54, ang))[..., None]
        pupil = torch.tensor([0.02, 0.02, 0.02], device=dev)
        e0, den = (x[:, None] for x in eye["scal"][mem].unbind(-1))
        t = ((ang - e0) / den).clamp(0, 1)
        col = torch.where((ang < 0.55)[..., None], iris, sclera)
        col = torch.lerp(col, pupil.expand_as(col), (t * t * (3 - 2 * t))[..., None])
        hl = torch.exp(-(((n - F.normalize(torch.tensor([0.25, 0.35, 1.0], device=dev), dim=0)) ** 2).sum(-1)) / 0.004)
        return (col + 0.8 * hl[..., None]).clamp(0, 1)


class PoseBank:
    """The moving parts and the static Gaussians of up to ``capacity`` rigs on one device, one slot each.

    ``put(slot, rig_pose_data(rig))`` loads a rig; ``pose(slots, z)`` poses row r = (slots[r], z[r]) for all
    rows at once -> (padded Gaussian tensors {key: [N, G, ...]}, valid [N, G])."""

    def __init__(self, capacity: int, device="cpu"):
        self.cap = int(capacity)
        self.device = torch.device(device)
        self.groups: list[_Group] = []
        self.S = torch.ones(self.cap, 3, device=self.device)
        self.static: dict[str, torch.Tensor] | None = None
        self.static_count = [0] * self.cap
        self.identity = [None] * self.cap

    def _group(self, d: dict, after: str | None) -> _Group:
        for g in self.groups:
            if g.name == d["name"]:
                return g
        g = _Group(d, self.cap, self.device)
        pos = next((i + 1 for i, h in enumerate(self.groups) if h.name == after), 0) if after else 0
        self.groups.insert(pos, g)
        for h in self.groups:
            h.S = self.S
        return g

    def put(self, slot: int, data: dict) -> None:
        s = int(slot)
        for g in self.groups:
            g.clear(s)
        prev = None
        for d in data["parts"]:
            g = self._group(d, prev)
            g.put(s, d)
            prev = d["name"]
        order = [g.name for g in self.groups if g.count[s]]
        if order != [d["name"] for d in data["parts"]]:
            raise RuntimeError(f"PoseBank: moving parts {[d['name'] for d in data['parts']]} out of the bank's order")
        self.S[s] = data["S"].to(self.device)
        st = data["static"]
        n = len(st["means"])
        if self.static is None or self.static["means"].shape[1] < n:
            old = self.static
            size = max(n, 1) if old is None else max(n, old["means"].shape[1] + 4096)
            self.static = {k: torch.zeros(self.cap, size, *v.shape[1:], device=self.device) for k, v in st.items()}
            if old is not None:
                for k in old:
                    self.static[k][:, :old[k].shape[1]] = old[k]
        for k, v in st.items():
            self.static[k][s, :n] = v.to(self.device)
            self.static[k][s, n:] = 0
        self.static_count[s] = n
        self.identity[s] = data["identity"]

    def pose(self, slots: list[int], z: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """slots [N] (python ints), z [N, C] expressions -> ({key: [N, G, ...]}, valid [N, G] bool)."""
        if z.shape[-1] != EXPRESSION_DIM:
            raise ValueError(f"expressions must have {EXPRESSION_DIM} values")
        dev = self.device
        z = z.to(dev, torch.float32)
        mem = torch.as_tensor(slots, dtype=torch.long, device=dev)
        outs, valids = [], []
        used = sorted(set(int(s) for s in slots))
        for g in self.groups:
            M = max(g.count[s] for s in used)
            if M == 0:
                continue
            outs.append(g.pose(mem, z, M))
            cnt = torch.as_tensor([g.count[s] for s in slots], device=dev)
            valids.append(torch.arange(M, device=dev)[None] < cnt[:, None])
        Ms = max(self.static_count[s] for s in used)
        outs.append({k: v[mem, :Ms] for k, v in self.static.items()})
        cnt = torch.as_tensor([self.static_count[s] for s in slots], device=dev)
        valids.append(torch.arange(Ms, device=dev)[None] < cnt[:, None])
        out = {k: torch.cat([o[k] for o in outs], 1) for k in KEYS}
        valid = torch.cat(valids, 1)
        out["opacities"] = torch.where(valid, out["opacities"], torch.zeros((), device=dev))
        return out, valid


def row_gaussians(out: dict, valid: torch.Tensor, r: int) -> Gaussians:
    """Row r's Gaussians (its valid entries, in order)."""
    v = valid[r]
    return Gaussians(*(out[k][r][v] for k in KEYS))
