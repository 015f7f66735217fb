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
    # Written with one contiguous [N] tensor per matrix entry: broadcast batched 3x3 products of tiny
    # matrices are several times slower on CPU.
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = (t.contiguous() for t in q.unbind(-1))
    rot = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    sc = [t.contiguous() for t in scales.unbind(-1)]
    M = [[rot[i][j] * sc[j] for j in range(3)] for i in range(3)]  # R S: world covariance = M Mᵀ
    mw = [t.contiguous() for t in means.unbind(-1)]
    outs = []
    for cam in range(len(viewmats)):
        R, t = viewmats[cam, :3, :3], viewmats[cam, :3, 3]
        xc, yc, zc = (R[i, 0] * mw[0] + R[i, 1] * mw[1] + R[i, 2] * mw[2] + t[i] for i in range(3))
        outs.append(_project_one(xc, yc, zc, M, R, Ks[cam], opacities, width, height, eps2d, near, far, antialiased))
    return Projected(*(torch.stack(parts) for parts in zip(*outs)))


def _project_one(x, y, z, M, R, K, opacities, width, height, eps2d, near, far, antialiased):
    """One camera: camera-space means (x, y, z [N]) and world M = R S entries -> Projected fields [N, ...]."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # Jacobian evaluated at a mean clamped to 1.3x the field of view (keeps off-screen splats bounded).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    z_safe = torch.where(z.abs() > 1e-8, z, torch.full_like(z, 1e-8))  # culled below; avoids inf in autograd
    rz = 1.0 / z_safe
    tx = z_safe * torch.minimum(torch.maximum(x * rz, -lim_xn), lim_xp)
    ty = z_safe * torch.minimum(torch.maximum(y * rz, -lim_yn), lim_yp)
    # Rows of J W: the image Jacobian with respect to world coordinates.
    j0a, j0b = fx * rz, fx * tx * rz * rz
    j1a, j1b = fy * rz, fy * ty * rz * rz
    JW0 = [j0a * R[0, k] - j0b * R[2, k] for k in range(3)]
    JW1 = [j1a * R[1, k] - j1b * R[2, k] for k in range(3)]
    U0 = [JW0[0] * M[0][j] + JW0[1] * M[1][j] + JW0[2] * M[2][j] for j in range(3)]  # row 0 of J W R S
    U1 = [JW1[0] * M[0][j] + JW1[1] * M[1][j] + JW1[2] * M[2][j] for j in range(3)]
    cxx = U0[0] * U0[0] + U0[1] * U0[1] + U0[2] * U0[2]
    cxy = U0[0] * U1[0] + U0[1] * U1[1] + U0[2] * U1[2]
    cyy = U1[0] * U1[0] + U1[1] * U1[1] + U1[2] * U1[2]

    det_orig = cxx * cyy - cxy * cxy
    cxx, cyy = cxx + eps2d, cyy + eps2d
    det = cxx * cyy - cxy * cxy
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([cyy / det_safe, -cxy / det_safe, cxx / det_safe], -1)  # [N, 3]
    op = opacities
    if antialiased:
        op = op * torch.sqrt(torch.clamp(det_orig / det_safe, min=0.0))
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)  # [N, 2]
    valid = (z >= near) & (z <= far) & (det > 0) & (op >= ALPHA_MIN)
    return means2d, conics, torch.stack([cxx, cxy, cyy], -1), z, op, valid
