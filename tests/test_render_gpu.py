"""GPU parity: the pure-PyTorch renderer (run on the CPU, as users of the CPU path get it) against gsplat
(CUDA) on random and head-like scenes. Images: PSNR >= 40 dB; gradients: cosine >= 0.99 for means, colors,
opacities and scales. Numbers go to $OUT/render_parity.json when $OUT is set. Run on a GPU machine:

    OUT=/tmp/out python -m pytest -q -m gpu tests/test_render_gpu.py
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch

from avat3r.gaussians import Gaussians
from avat3r.render import render
from avat3r.render.scenes import head_like_scene, random_scene

pytestmark = pytest.mark.gpu

RESULTS: dict = {}


def _need_gsplat():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    try:
        import gsplat  # noqa: F401
    except ImportError:
        pytest.skip("needs gsplat (pip install gsplat==1.5.3)")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 200.0 if mse == 0 else 10 * math.log10(1.0 / mse)  # 200 dB stands for identical (JSON has no inf)


def _render_with_grads(g: Gaussians, cams, backend: str, device: str, weights: torch.Tensor):
    leaves = [t.detach().to(device).clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    out = render(Gaussians(*leaves), cams.to(device), background=(0.1, 0.2, 0.3), backend=backend)
    loss = (out.color * weights.to(device)[..., :3]).sum() + (out.alpha * weights.to(device)[..., 3:]).sum()
    loss.backward()
    grads = {k: t.grad.detach().cpu() for k, t in zip(("means", "quats", "scales", "opacities", "colors"), leaves)}
    return tuple(x.detach().cpu() for x in out), grads


def _compare(name: str, g: Gaussians, cams) -> dict:
    H, W = cams.image_size
    weights = torch.rand(len(cams), H, W, 4, generator=torch.Generator().manual_seed(1))
    (c_t, a_t, d_t), g_t = _render_with_grads(g, cams, "torch", "cpu", weights)
    (c_g, a_g, d_g), g_g = _render_with_grads(g, cams, "gsplat", "cuda", weights)
    covered = (a_t[..., 0] > 0.5) & (a_g[..., 0] > 0.5)
    rec = {
        "n_gaussians": len(g),
        "image": [len(cams), H, W],
        "psnr_color_db": _psnr(c_t, c_g),
        "psnr_alpha_db": _psnr(a_t, a_g),
        "max_abs_color": float((c_t - c_g).abs().max()),
        "depth_mean_abs_rel_where_alpha_gt_0.5": float(((d_t - d_g).abs()[..., 0][covered] / d_g[..., 0][covered]).mean()),
        "grad_cosine": {
            k: float(torch.nn.functional.cosine_similarity(g_t[k].flatten(), g_g[k].flatten(), dim=0)) for k in g_t
        },
    }
    # Also the torch backend on CUDA tensors (same code, GPU) against gsplat, images only; informative,
    # so a failure here is recorded rather than failing the parity test.
    try:
        with torch.no_grad():
            c_tc = render(g.to("cuda"), cams.to("cuda"), background=(0.1, 0.2, 0.3), backend="torch").color.cpu()
        rec["psnr_color_db_torch_cuda_vs_gsplat"] = _psnr(c_tc, c_g)
    except Exception as e:  # noqa: BLE001
        rec["torch_cuda_error"] = f"{type(e).__name__}: {e}"
    RESULTS[name] = rec
    _write()
    return rec


def _write():
    out = os.environ.get("OUT")
    if not out:
        return
    path = Path(out) / "render_parity.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"device": device, "torch": torch.__version__, "scenes": RESULTS}, f, indent=1)
    os.replace(tmp, path)


def _check(rec: dict):
    assert rec["psnr_color_db"] >= 40.0, rec
    assert rec["psnr_alpha_db"] >= 40.0, rec
    for k in ("means", "colors", "opacities", "scales"):
        assert rec["grad_cosine"][k] >= 0.99, (k, rec)


@pytest.mark.parametrize("seed,n,size", [(0, 2000, 128), (1, 20000, 256)])
def test_parity_random_scene(seed, n, size):
    _need_gsplat()
    g, cams = random_scene(n, size, seed=seed, n_cameras=2)
    _check(_compare(f"random_seed{seed}_{n}_{size}", g, cams))


def test_parity_head_scene():
    _need_gsplat()
    g, cam = head_like_scene(60_000, 256)
    _check(_compare("head_60k_256", g, cam))
