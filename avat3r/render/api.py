"""One rendering entry point for the whole project: ``render(gaussians, cameras) -> RenderOutput``.

Two backends share gsplat 1.5.3's conventions (see docs/RENDERING.md): "gsplat" (CUDA kernels) and "torch"
(pure PyTorch, any device, differentiable; the CPU path). "auto" picks gsplat when the Gaussians are on CUDA
and gsplat imports, else torch. This is the splatting renderer of the paper (eq. 1-3 of 3DGS; Avat3r sec. 3).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from ..cameras import Cameras
from ..errors import InputError
from ..gaussians import Gaussians

__all__ = ["RenderOutput", "render", "BACKENDS"]

BACKENDS = ("auto", "torch", "gsplat")


class RenderOutput(NamedTuple):
    """Rendered images for N cameras, float32.

    color [N, H, W, 3] composited over the background; alpha [N, H, W, 1] accumulated opacity;
    depth [N, H, W, 1] expected camera-z depth Σ w_i z_i / Σ w_i (0 where alpha ≈ 0).
    """

    color: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def _background(background, n: int, device, dtype) -> torch.Tensor:
    bg = torch.as_tensor(background, dtype=dtype, device=device)
    if bg.ndim == 1:
        bg = bg[None].expand(n, -1)
    if bg.shape != (n, 3):
        raise InputError(f"render: background must be 3 numbers or an [N, 3] tensor for N={n} cameras, got shape {tuple(bg.shape)}")
    if not torch.isfinite(bg).all():
        raise InputError("render: background contains NaN or inf")
    return bg


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise InputError(f"render: unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        from .gsplat_backend import gsplat_available

        if gsplat_available():
            return "gsplat"
    return "torch"


def render(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    background: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
    backend: str = "auto",
    eps2d: float = 0.3,
    near: float = 0.01,
    far: float = 1e3,
    antialiased: bool = False,
) -> RenderOutput:
    """Render Gaussians into every camera (all cameras must share one image size H x W).

    gaussians: N Gaussians (means [N, 3], quats [N, 4] wxyz, activated scales [N, 3] and opacities [N],
    colors [N, 3]); cameras: C OpenCV pinhole cameras. background: RGB in [0, 1], 3 numbers or [C, 3].
    eps2d: added to the 2D covariance diagonal (px²); antialiased: Mip-Splatting opacity compensation
    (gsplat's rasterize_mode="antialiased"); near/far: camera-z culling planes (Gaussian centres).
    Returns RenderOutput(color [C, H, W, 3], alpha [C, H, W, 1], depth [C, H, W, 1]) in the Gaussians'
    dtype (float32 for gsplat), differentiable w.r.t. the Gaussians' tensors. The depth is the expected
    depth (alpha-weighted camera z divided by alpha, 0 where alpha ≈ 0).
    """
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"render: expected avat3r.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise InputError(f"render: expected avat3r.cameras.Cameras, got {type(cameras).__name__}")
    if len(cameras) == 0:
        raise InputError("render: no cameras given")
    gaussians.validate("render: gaussians")
    H, W = cameras.image_size
    if not (eps2d >= 0 and 0 < near < far):
        raise InputError(f"render: need eps2d >= 0 and 0 < near < far, got eps2d={eps2d}, near={near}, far={far}")
    dev = gaussians.device
    dtype = gaussians.means.dtype if gaussians.means.is_floating_point() else torch.float32
    name = _pick_backend(backend, dev)
    viewmats = cameras.world_to_cam.to(device=dev, dtype=dtype)
    Ks = cameras.K.to(device=dev, dtype=dtype)
    bg = _background(background, len(cameras), dev, dtype)
    args = (gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.colors, viewmats, Ks, W, H, bg)
    kw = dict(eps2d=eps2d, near=near, far=far, antialiased=antialiased)
    if name == "gsplat":
        from .gsplat_backend import rasterize_gsplat

        return RenderOutput(*rasterize_gsplat(*args, **kw))
    from .torch_backend import rasterize_torch

    return RenderOutput(*rasterize_torch(*args, **kw))
