"""Gaussian-splatting renderer: ``render(gaussians, cameras) -> RenderOutput(color, alpha, depth)``.

Backends: "gsplat" (CUDA) and "torch" (pure PyTorch, the CPU path); "auto" picks. See docs/RENDERING.md.
"""

from .api import BACKENDS, RenderOutput, render

__all__ = ["render", "RenderOutput", "BACKENDS"]
