"""EWA projection of 3D Gaussians to image-space 2D Gaussians, with gsplat's conventions.

This is the "projection" half of 3D Gaussian splatting (Kerbl et al. 2023, eq. 5: Σ' = J W Σ Wᵀ Jᵀ), written
to match gsplat 1.5.3's pinhole path exactly so that the pure-PyTorch rasterizer and gsplat agree:

- world-to-camera viewmats (OpenCV: x right, y down, z forward), wxyz quaternions (normalised here),
  activated scales, Σ = R S Sᵀ Rᵀ;
- pinhole K: u = fx x/z + cx, v = fy y/z + cy (gsplat ignores the skew K[0, 1]; so do we);
- the Jacobian J is evaluated at a mean whose x/z, y/z are clamped to 1.3x the field of view (gsplat's
  ``lim_x/lim_y``), which only matters for Gaussians outside the image;
- ``eps2d`` is added to the diagonal of the 2D covariance (a low-pass filter of ~0.3 px² that keeps every
  splat at least ~1 px wide); with ``antialiased=True`` the opacity is multiplied by the Mip-Splatting
  compensation sqrt(det Σ' / det(Σ' + eps2d I));
- a Gaussian is dropped when z < near or z > far, when det(Σ' + eps2d I) <= 0, or when its (compensated)
  opacity is below 1/255 (it cannot reach the alpha threshold anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..gaussians import quat_to_rotmat

__all__ = ["Projected", "project_gaussians", "ALPHA_MIN", "ALPHA_MAX", "T_MIN"]

ALPHA_MIN = 1.0 / 255.0  # per-pixel contributions below this alpha are skipped (gsplat ALPHA_THRESHOLD)
ALPHA_MAX = 0.999  # per-pixel alpha clamp (gsplat: min(0.999, opacity * exp(-sigma)))
T_MIN = 1e-4  # a pixel stops once its transmittance would drop to <= T_MIN (that Gaussian is excluded)


@dataclass
class Projected:
    """Image-space Gaussians for C cameras (all differentiable except ``valid``).

    means2d [C, N, 2] pixels; conics [C, N, 3] = (a, b, c) of the inverse blurred 2D covariance, so that
    sigma = 0.5 (a dx² + c dy²) + b dx dy with d = mean2d - pixel centre; cov2d [C, N, 3] = (xx, xy, yy) of
    the blurred covariance; depths [C, N] camera z; opacities [C, N] (compensated when antialiased);
    valid [C, N] bool.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    cov2d: torch.Tensor
    depths: torch.Tensor
    opacities: torch.Tensor
    valid: torch.Tensor


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] wxyz
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    viewmats: torch.Tensor,  # [C, 4, 4] world_to_cam
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e3,
    antialiased: bool = False,
) -> Projected:
    """Project N 3D Gaussians into C pinhole cameras (gsplat's ``fully_fused_projection``, pinhole, EWA)."""
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]

    Rq = quat_to_rotmat(quats)  # [N, 3, 3]
    M = Rq * scales[:, None, :]  # R S: world covariance = M Mᵀ

    x, y, z = means_c.unbind(-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Jacobian evaluated at a mean clamped to 1.3x the field of view (keeps off-screen splats bounded).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    z_safe = torch.where(z.abs() > 1e-8, z, torch.full_like(z, 1e-8))  # culled below; avoids inf in autograd
    rz = 1.0 / z_safe
    tx = z_safe * torch.minimum(torch.maximum(x * rz, -lim_xn), lim_xp)
    ty = z_safe * torch.minimum(torch.maximum(y * rz, -lim_yn), lim_yp)
    # Rows of J W (image Jacobian w.r.t. world coordinates), written out elementwise: batched 2x3 @ 3x3
    # matmuls of tiny matrices are slow on CPU.
    Rr = R[:, None]  # [C, 1, 3, 3]
    JW0 = (fx * rz)[..., None] * Rr[..., 0, :] - (fx * tx * rz * rz)[..., None] * Rr[..., 2, :]  # [C, N, 3]
    JW1 = (fy * rz)[..., None] * Rr[..., 1, :] - (fy * ty * rz * rz)[..., None] * Rr[..., 2, :]
    U0 = JW0[..., 0:1] * M[:, 0] + JW0[..., 1:2] * M[:, 1] + JW0[..., 2:3] * M[:, 2]  # [C, N, 3]: row 0 of J W R S
    U1 = JW1[..., 0:1] * M[:, 0] + JW1[..., 1:2] * M[:, 1] + JW1[..., 2:3] * M[:, 2]
    cxx, cxy, cyy = (U0 * U0).sum(-1), (U0 * U1).sum(-1), (U1 * U1).sum(-1)

    det_orig = cxx * cyy - cxy * cxy
    cxx, cyy = cxx + eps2d, cyy + eps2d
    det = cxx * cyy - cxy * cxy
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([cyy / det_safe, -cxy / det_safe, cxx / det_safe], -1)  # [C, N, 3]

    op = opacities[None].expand(len(viewmats), -1)  # [C, N]
    if antialiased:
        op = op * torch.sqrt(torch.clamp(det_orig / det_safe, min=0.0))

    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)  # [C, N, 2]
    valid = (z >= near) & (z <= far) & (det > 0) & (op >= ALPHA_MIN)
    return Projected(means2d, conics, torch.stack([cxx, cxy, cyy], -1), z, op, valid)
