"""gsplat backend: a thin wrapper around ``gsplat.rasterization`` (CUDA) with the project's conventions.

gsplat (nerfstudio-project/gsplat, 1.5.3) is imported lazily: it is an optional dependency (``pip install
avat3r[gpu]``) and compiles its CUDA extension on first use. Depth comes from render_mode "RGB+ED" (the
expected depth Σ w z / Σ w that gsplat computes), so both backends return the same three images.
"""

from __future__ import annotations

import torch

from ..errors import InputError

__all__ = ["gsplat_available", "rasterize_gsplat"]


def gsplat_available() -> bool:
    """True when gsplat imports and CUDA is usable (does not trigger the CUDA build)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def rasterize_gsplat(
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
    """-> (color [C, H, W, 3], alpha [C, H, W, 1], expected depth [C, H, W, 1]) via gsplat on CUDA."""
    if means.device.type != "cuda":
        raise InputError(
            f"render backend 'gsplat' needs CUDA tensors, got tensors on {means.device}; "
            "move the Gaussians to a GPU or use backend='torch' (or 'auto')"
        )
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise InputError(
            f"render backend 'gsplat' needs the gsplat package ({e}); install it with "
            "`pip install gsplat==1.5.3` (or `pip install avat3r[gpu]`), or use backend='torch'"
        ) from None
    f32 = lambda t: t.to(torch.float32)  # noqa: E731  gsplat's kernels are float32 only
    out, alpha, _ = rasterization(
        f32(means), f32(quats), f32(scales), f32(opacities), f32(colors), f32(viewmats), f32(Ks),
        int(width), int(height),
        near_plane=near, far_plane=far, eps2d=eps2d,
        render_mode="RGB+ED",
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    # Background composited here: gsplat 1.5.3 asserts on `backgrounds` in its default packed mode
    # (it expects [channels] there instead of [C, channels]); over-compositing is the same formula.
    color = out[..., :3] + (1 - alpha) * f32(background)[:, None, None, :]
    return color, alpha, out[..., 3:4]
