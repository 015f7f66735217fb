"""A per-avatar linear expression basis: Gaussian centres as ``base + sum_k z_k * delta_k``.

The network's expression layers (eqs. 8-13) are not linear in z_exp, but around the neutral face the motion they
produce is close to it. A basis lets a browser animate the avatar at frame rate without the network: one
position delta per code dimension (least-squares fit to network samples), evaluated per frame in JavaScript.
Only centres are fitted; the other attributes (scales, rotations, opacities, colours) stay at the neutral values
(the shipped model moves them little; ``basis_error`` measures what that costs against the network's output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..gaussians import Gaussians

__all__ = ["ExpressionBasis", "basis_error", "expression_ranges", "fit_expression_basis", "sample_codes"]


@dataclass
class ExpressionBasis:
    """base: the avatar's neutral Gaussians (N); deltas [C, N, 3] float32 (metres per unit of code);
    names: the C code dimensions; ranges [C, 2] (lo, hi) the fit sampled (the sliders' ranges)."""

    base: Gaussians
    deltas: np.ndarray
    names: list[str]
    ranges: np.ndarray

    def means(self, code) -> np.ndarray:
        """code [C] -> centres [N, 3] float32."""
        z = np.asarray(code, np.float32).reshape(-1)
        if z.shape[0] != self.deltas.shape[0]:
            raise InputError(f"expression code has {z.shape[0]} values, the basis {self.deltas.shape[0]}")
        base = self.base.means.detach().cpu().numpy()
        return base + np.tensordot(z, self.deltas, axes=1)

    def gaussians(self, code) -> Gaussians:
        """code [C] -> the basis' Gaussians (centres moved, everything else neutral)."""
        m = torch.from_numpy(self.means(code)).to(self.base.means)
        return Gaussians(m, self.base.quats, self.base.scales, self.base.opacities, self.base.colors)


def expression_ranges(space) -> np.ndarray:
    """[C, 2] per-dimension (lo, hi) of an ExpressionSpace: [0, max(1, presets)] for activations, [-1, 1]-wide for
    signed dimensions (gaze/yaw/pitch/roll names, or a negative preset value) and for spaces without presets."""
    presets = np.asarray([v for v in space.presets.values()], np.float32).reshape(-1, space.dim)
    out = np.zeros((space.dim, 2), np.float32)
    for i, name in enumerate(space.names):
        vals = presets[:, i] if len(presets) else np.zeros(0, np.float32)
        signed = any(k in name for k in ("gaze", "yaw", "pitch", "roll")) or (len(vals) and vals.min() < 0)
        nonzero = len(vals) and np.abs(vals).max() > 0
        lo = -1.0 if (signed or not nonzero) else 0.0
        hi = max(1.0, float(vals.max()) if len(vals) else 1.0)
        out[i] = lo, hi
    return out


def sample_codes(space, n_random: int = 12, seed: int = 0) -> np.ndarray:
    """Codes for fitting: each dimension alone at its ends (the sliders), then ``n_random`` sparse mixtures
    (2-4 active dimensions, like the presets) -> [K, C] float32, K = C (+ C signed ends) + n_random."""
    ranges = expression_ranges(space)
    c = space.dim
    codes = []
    for i in range(c):
        for end in (ranges[i, 1], ranges[i, 0]):
            if end != 0:
                z = np.zeros(c, np.float32)
                z[i] = end
                codes.append(z)
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        z = np.zeros(c, np.float32)
        k = rng.choice(c, size=min(c, int(rng.integers(2, 5))), replace=False)
        z[k] = rng.uniform(ranges[k, 0], ranges[k, 1])
        codes.append(z)
    return np.stack(codes).astype(np.float32)


def fit_expression_basis(avatar, codes: np.ndarray | None = None, *, n_random: int = 12, seed: int = 0,
                         progress=None) -> ExpressionBasis:
    """Least-squares basis of ``avatar``: deltas = argmin sum_j ||net(z_j).means - base - z_j . D||^2, with base =
    net(neutral) held exact. codes [K, C] default ``sample_codes``; one network ``animate`` per code."""
    space = avatar.expression_space
    if codes is None:
        codes = sample_codes(space, n_random, seed)
    codes = np.asarray(codes, np.float32)
    if codes.ndim != 2 or codes.shape[1] != space.dim or len(codes) == 0:
        raise InputError(f"codes must be [K, {space.dim}] with K >= 1, got {list(codes.shape)}")
    base = avatar.animate(None)
    b = base.means.detach().cpu().numpy().astype(np.float64)
    ys = np.zeros((len(codes), b.size), np.float64)
    for j, z in enumerate(codes):
        if progress is not None:
            progress(j / len(codes), f"expression basis: network sample {j + 1}/{len(codes)}")
        g = avatar.animate_batch(z[None])[0]
        if len(g) != len(base):
            raise InputError(f"the avatar's Gaussian count changes with the expression ({len(g)} vs {len(base)}); "
                             "a linear basis needs a fixed set")
        ys[j] = (g.means.detach().cpu().numpy().astype(np.float64) - b).reshape(-1)
    # Ridge-stabilised normal equations: dimensions never sampled get a zero delta instead of noise.
    x = codes.astype(np.float64)
    a = x.T @ x + 1e-6 * np.eye(space.dim)
    d = np.linalg.solve(a, x.T @ ys).reshape(space.dim, -1, 3).astype(np.float32)
    if progress is not None:
        progress(1.0, "expression basis ready")
    return ExpressionBasis(base.detach().to("cpu"), d, list(space.names), expression_ranges(space))


def basis_error(avatar, basis: ExpressionBasis, codes, *, size: int = 256, views=((0.0, 5.0), (35.0, 5.0))) -> dict:
    """The basis against the network on ``codes`` [K, C]: mean / max centre error (mm) and render PSNR (dB) of
    basis vs network from ``views``; also the same figures for the neutral avatar (no motion) as a yardstick."""
    from ..pipeline import orbit_camera

    codes = np.asarray(codes, np.float32)
    cams = [orbit_camera(a, e, size) for a, e in views]
    pos, pos_static, psnr, psnr_static = [], [], [], []

    def _psnr(a, b):
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
        return float(10 * np.log10(1.0 / max(mse, 1e-12)))

    for z in codes:
        net = avatar.animate_batch(z[None])[0].to("cpu")
        fit = basis.gaussians(z)
        pos.append(float((net.means - fit.means).norm(dim=-1).mean()) * 1000)
        pos_static.append(float((net.means - basis.base.means).norm(dim=-1).mean()) * 1000)
        for cam in cams:
            a = avatar.render_gaussians(net, cam)[0]
            psnr.append(_psnr(a, avatar.render_gaussians(fit, cam)[0]))
            psnr_static.append(_psnr(a, avatar.render_gaussians(basis.base, cam)[0]))
    return {"mean_position_error_mm": float(np.mean(pos)), "max_of_mean_position_error_mm": float(np.max(pos)),
            "neutral_position_error_mm": float(np.mean(pos_static)), "psnr_db": float(np.mean(psnr)),
            "min_psnr_db": float(np.min(psnr)), "neutral_psnr_db": float(np.mean(psnr_static)), "codes": len(codes)}
