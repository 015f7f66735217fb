"""A set of 3D Gaussians: the avatar representation the network predicts and the renderer draws.

Attributes follow gsplat's conventions: quaternions in wxyz order (need not be normalised), scales and
opacities already activated (positive scales in world units, opacities in [0, 1]), colours as linear RGB in
[0, 1]. The .ply layout (log scales, logit opacities, SH DC) lives in ``avat3r.io.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch

from .errors import InputError

__all__ = ["Gaussians", "quat_to_rotmat", "rotmat_to_quat"]

SH_C0 = 0.28209479177387814  # zeroth spherical-harmonic basis constant: rgb = 0.5 + SH_C0 * f_dc


@dataclass
class Gaussians:
    """N Gaussians. means [N, 3]; quats [N, 4] wxyz; scales [N, 3] > 0; opacities [N] in [0, 1]; colors [N, 3]."""

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "colors": (n, 3)}
        for name, shape in expect.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise InputError(f"Gaussians.{name} must be a torch.Tensor, got {type(t).__name__}")
            if tuple(t.shape) != shape:
                raise InputError(f"Gaussians.{name} must have shape {list(shape)}, got {list(t.shape)}")

    # ---- container behaviour ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    def _map(self, fn) -> "Gaussians":
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def select(self, index: torch.Tensor) -> "Gaussians":
        """Keep the Gaussians picked by a boolean mask [N] or an index tensor [M]."""
        return self._map(lambda t: t[index])

    def to(self, *args, **kwargs) -> "Gaussians":
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "Gaussians":
        return self._map(lambda t: t.detach())

    @property
    def device(self) -> torch.device:
        return self.means.device

    @staticmethod
    def cat(items: Sequence["Gaussians"]) -> "Gaussians":
        if not items:
            raise InputError("Gaussians.cat needs at least one set")
        return Gaussians(**{f.name: torch.cat([getattr(g, f.name) for g in items]) for f in fields(Gaussians)})

    @staticmethod
    def empty(device=None) -> "Gaussians":
        z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
        return Gaussians(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, 3))

    def validate(self, where: str = "Gaussians") -> None:
        """Raise InputError on NaN/inf, non-positive scales, opacities outside [0, 1] or zero quaternions."""
        for f in fields(self):
            if not torch.isfinite(getattr(self, f.name)).all():
                raise InputError(f"{where}: {f.name} contains NaN or inf")
        if len(self) == 0:
            return
        if (self.scales <= 0).any():
            raise InputError(f"{where}: scales must be positive (activated), found values <= 0")
        if (self.opacities < 0).any() or (self.opacities > 1).any():
            raise InputError(f"{where}: opacities must lie in [0, 1] (activated)")
        if (self.quats.norm(dim=-1) == 0).any():
            raise InputError(f"{where}: quaternions must be non-zero")

    # ---- geometry ---------------------------------------------------------------------------------
    def transform(self, R: torch.Tensor | None = None, t: torch.Tensor | None = None, scale: float = 1.0) -> "Gaussians":
        """Apply x -> scale * R x + t to the set: means move, orientations rotate, scales grow by ``scale``."""
        means, quats = self.means, self.quats
        if R is not None:
            R = R.to(means)
            means = means @ R.T
            quats = quat_multiply(rotmat_to_quat(R)[None].expand_as(quats), quats)
        means = means * scale
        if t is not None:
            means = means + t.to(means)
        return Gaussians(means, quats, self.scales * scale, self.opacities, self.colors)

    def covariances(self) -> torch.Tensor:
        """[N, 3, 3] world-space covariances R S S^T R^T."""
        R = quat_to_rotmat(self.quats)
        M = R * self.scales[:, None, :]
        return M @ M.transpose(1, 2)


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """wxyz quaternions [..., 4] (any norm > 0) -> rotation matrices [..., 3, 3]."""
    q = torch.nn.functional.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit wxyz quaternions [..., 4] (w >= 0), numerically stable branches."""
    m = R.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack(
        [
            torch.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
            torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
            torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
            torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
        ],
        1,
    )  # [B, 4, 4]: each row is 4 * (the dominant component) * q
    diag = torch.stack([1 + tr, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                        1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1)
    best = diag.argmax(-1)
    q = cands[torch.arange(len(m)), best]
    q = torch.nn.functional.normalize(q, dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape(*R.shape[:-2], 4)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions [..., 4] (rotation b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )
