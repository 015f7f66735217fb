"""One photo -> the generator's head: encoder guess, optimisation of w+, optional pivotal tuning, and the
occlusion-aware correction of the Gaussians the photo sees (the paper's Sec. 4.5 lift, GOAE + PTI on GGHead).

    ws0 = encoder(photo * mask, mask, camera angles)                     GOAE's w_avg + coarse/mid/fine corrections
    ws  = argmin |render(ws, camera) - photo * mask|_1 + |alpha - mask|_1 + w_reg |ws - ws0|^2     (few Adam steps)
    G'  = PTI: the synthesis network tuned around ws (GPU; off by default)
    Gaussians the photo sees (in front of the rendered depth, inside the mask) take the photo's colour residual
    (GOAE corrects the triplane features the image sees with the image's own features; here the Gaussians' colour)

The camera is the front end's (head-centric world, the crop's intrinsics), so the photo and the render line up.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import Cameras
from ..gaussians import SH_C0
from .config import InvertConfig
from .encoder import LiftEncoder, pose_features, w_statistics
from .views import view_angles

__all__ = ["LiftResult", "invert_photo", "encode", "optimise_ws", "pivotal_tuning", "correct_visible", "synthesize"]

Progress = Callable[[float, str], None]


@dataclass
class LiftResult:
    """ws [1, num_ws, w_dim] (final), ws_encoder (the encoder's guess, or w_avg), out: the generator's output for
    ws with corrected colours, G: the generator used (a tuned copy after PTI), curve: masked L1 per optimisation
    step, visible: Gaussians corrected from the photo, render_before / render_after [S, S, 3]: the photo's view
    before the optimisation and after everything, seconds per stage, report lines."""

    ws: torch.Tensor
    ws_encoder: torch.Tensor
    out: dict
    G: object
    curve: list = field(default_factory=list)
    visible: int = 0
    render_before: np.ndarray | None = None
    render_after: np.ndarray | None = None
    seconds: dict = field(default_factory=dict)
    report: list = field(default_factory=list)


def synthesize(G, ws: torch.Tensor) -> dict:
    """ws [B, num_ws, w_dim] -> the generator's output dict (maps and per-Gaussian attributes)."""
    maps = G.uv_maps(ws)
    return {"ws": ws, "maps": maps, **G.attributes(maps)}


def _targets(image: np.ndarray, mask: np.ndarray, camera: Cameras, size: int, dev):
    """Photo [H, W, 3], mask [H, W] -> (photo * mask [1, S, S, 3], mask [1, S, S, 1], camera at S x S)."""
    im = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32).permute(2, 0, 1)[None]
    m = torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.float32)[None, None]
    H, W = im.shape[-2:]
    if (H, W) != (size, size):
        im = F.interpolate(im, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        camera = camera.resize(size, size)
    m = m.clamp(0, 1)
    return (im * m).permute(0, 2, 3, 1).to(dev), m.permute(0, 2, 3, 1).to(dev), camera.to(dev)


@torch.no_grad()
def encode(G, enc: LiftEncoder | None, image: np.ndarray, mask: np.ndarray, camera: Cameras) -> torch.Tensor:
    """The encoder's w+ for the photo [H, W, 3] in [0, 1] with mask [H, W] seen by ``camera`` -> [1, num_ws, w_dim].
    Without an encoder: the generator's average w for every layer."""
    dev = G.template_points.device
    if enc is None:
        w_avg, _ = w_statistics(G, n=256)
        return w_avg.expand(1, G.num_ws, -1).clone()
    S = enc.config.image_size
    x, m, _ = _targets(image, mask, camera, S, dev)
    az, el = view_angles(camera.to("cpu"))
    return enc.to(dev)(x.permute(0, 3, 1, 2), m.permute(0, 3, 1, 2), pose_features(az, el).to(dev))


def _photo_loss(G, ws, target, tmask, cam):
    rgb, alpha = G.render_batch(synthesize(G, ws), cam, background=(0.0, 0.0, 0.0))
    return (rgb - target).abs().mean() + 0.5 * (alpha - tmask).abs().mean(), rgb


def optimise_ws(G, ws0: torch.Tensor, target, tmask, cam: Cameras, steps: int, lr: float, w_reg: float,
                w_std: torch.Tensor, progress: Progress | None = None) -> tuple[torch.Tensor, list[float]]:
    """Adam on w+ (in units of the ws' spread) against the masked photo -> (ws [1, num_ws, w_dim], loss per step)."""
    delta = torch.zeros_like(ws0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr, betas=(0.9, 0.99))
    curve = []
    for i in range(steps):
        ws = ws0 + delta * w_std
        loss, _ = _photo_loss(G, ws, target, tmask, cam)
        curve.append(float(loss.detach()))
        total = loss + w_reg * delta.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if progress is not None:
            progress((i + 1) / steps, f"fitting the head to the photo: step {i + 1}/{steps}, loss {curve[-1]:.4f}")
    return (ws0 + delta.detach() * w_std), curve


def pivotal_tuning(G, ws: torch.Tensor, target, tmask, cam: Cameras, steps: int, lr: float,
                   progress: Progress | None = None) -> tuple[object, list[float]]:
    """PTI (Roich et al. 2022): a copy of G whose synthesis network is tuned so ws renders the photo -> (G', curve)."""
    Gt = copy.deepcopy(G).train(False)
    params = list(Gt.backbone.synthesis.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    curve = []
    for i in range(steps):
        loss, _ = _photo_loss(Gt, ws, target, tmask, cam)
        curve.append(float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress((i + 1) / steps, f"pivotal tuning: step {i + 1}/{steps}, loss {curve[-1]:.4f}")
    return Gt.requires_grad_(False), curve


@torch.no_grad()
def correct_visible(G, out: dict, image: np.ndarray, mask: np.ndarray, camera: Cameras, strength: float = 1.0,
                    depth_tol: float = 0.01, iterations: int = 3, shift_all: float = 0.0) -> tuple[dict, int]:
    """Pull the colour of the Gaussians the photo sees toward the photo (GOAE's occlusion-aware idea on Gaussians).

    A Gaussian is seen when its centre projects inside the photo's mask and lies no more than ``depth_tol`` metres
    behind the rendered depth there; its SH DC colour takes ``strength`` x (photo - render) at that pixel. A pixel
    blends several Gaussians, so the transfer is repeated ``iterations`` times against the new render (a fixed-point
    iteration). ``shift_all`` > 0: before that, every Gaussian's colour moves by shift_all x (mean photo - mean
    render) inside the mask, so the unseen ones come closer to the photo's colours. Returns (a new output dict,
    number of Gaussians corrected). Unseen Gaussians keep their colour, apart from that shift."""
    from ..render import render

    dev = out["position"].device
    H, W = image.shape[:2]
    cam = camera.to(dev)
    photo = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32, device=dev)
    m = torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.float32, device=dev)[..., None]
    new = dict(out)
    col = out["color"].clone()
    k = col.shape[-1] // 3
    col = col.view(*col.shape[:-1], k, 3)
    new["color"] = col.view(*out["color"].shape)

    def look():  # the current colours rendered from the photo's camera, and the maps sampled at the Gaussians
        g = G.gaussians(new, 0, view_from=cam.centers[0])
        r = render(g, cam, background=(0.0, 0.0, 0.0))
        rgb, alpha, depth = r.color[0], r.alpha[0], r.depth[0]                                 # [H, W, ·]
        return g, rgb, alpha, torch.cat([photo, m, rgb, alpha, depth], -1).permute(2, 0, 1)[None]  # [1, 9, H, W]

    if shift_all > 0:  # every Gaussian first moves by the mean colour difference inside the mask
        _, rgb, alpha, _ = look()
        inm = (m[..., 0] > 0.5) & (alpha[..., 0] > 0.5)
        if inm.any():
            col[0, :, 0] = col[0, :, 0] + shift_all * (photo[inm].mean(0) - rgb[inm].mean(0)) / SH_C0
    seen = None
    for it in range(max(1, int(iterations))):
        g, _, _, maps = look()
        if seen is None:  # visibility from the first render (the geometry does not change)
            uv, z = cam.project(g.means)                                                       # [1, G, 2], [1, G]
            grid = torch.stack([uv[0, :, 0] / W * 2 - 1, uv[0, :, 1] / H * 2 - 1], -1)[None, :, None]  # [1, G, 1, 2]
            s = F.grid_sample(maps, grid, mode="bilinear", align_corners=False)[0, :, :, 0].T  # [G, 9]
            inside = (grid[0, :, 0].abs() <= 1).all(-1)
            seen = inside & (s[:, 3] > 0.5) & (s[:, 7] > 0.5) & (z[0] <= s[:, 8] + depth_tol) & (z[0] > 0)
        else:
            s = F.grid_sample(maps, grid, mode="bilinear", align_corners=False)[0, :, :, 0].T
        delta = (s[:, :3] - s[:, 4:7]) * float(strength) * seen[:, None].float()
        col[0, :, 0] = col[0, :, 0] + delta / SH_C0
    return new, int(seen.sum())


def _view(G, out, cam) -> np.ndarray:
    with torch.no_grad():
        rgb, _ = G.render(out, cam, index=0, background=(0.0, 0.0, 0.0))
    return rgb[0].clamp(0, 1).cpu().numpy()


def invert_photo(G, enc: LiftEncoder | None, image: np.ndarray, mask: np.ndarray, camera: Cameras,
                 cfg: InvertConfig | None = None, progress: Progress | None = None) -> LiftResult:
    """Lift one masked photo [H, W, 3] (mask [H, W], ``camera``: its Cameras of 1 in the head-centric world) into
    the generator -> LiftResult. G is not modified (PTI tunes a copy)."""
    cfg = cfg or InvertConfig()
    tick = progress or (lambda f, m: None)
    dev = G.template_points.device
    secs, report = {}, []
    t = time.perf_counter()
    tick(0.0, "encoder: first guess of the head's latent")
    ws0 = encode(G, enc, image, mask, camera)
    secs["encoder"] = time.perf_counter() - t
    report.append("encoder: w+ predicted from the photo" if enc is not None
                  else "no lift encoder installed: starting from the generator's average head")
    _, w_std = (enc.w_avg, enc.w_std) if enc is not None else w_statistics(G, n=256)
    target, tmask, cam = _targets(image, mask, camera, cfg.render_size, dev)
    before = _view(G, synthesize(G, ws0), cam)
    ws, curve = ws0, []
    t = time.perf_counter()
    if cfg.steps > 0:
        with torch.enable_grad():
            ws, curve = optimise_ws(G, ws0, target, tmask, cam, cfg.steps, cfg.lr, cfg.w_reg, w_std.to(dev),
                                    progress=lambda f, m: tick(0.05 + 0.75 * f, m))
        report.append(f"optimised w+ for {cfg.steps} steps at {cfg.render_size} px: masked L1 {curve[0]:.4f} -> {curve[-1]:.4f}")
    secs["optimise"] = time.perf_counter() - t
    Gu = G
    t = time.perf_counter()
    if cfg.pti_steps > 0:
        with torch.enable_grad():
            Gu, pcurve = pivotal_tuning(G, ws, target, tmask, cam, cfg.pti_steps, cfg.pti_lr,
                                        progress=lambda f, m: tick(0.8 + 0.1 * f, m))
        curve = curve + pcurve
        report.append(f"pivotal tuning: {cfg.pti_steps} steps, loss {pcurve[0]:.4f} -> {pcurve[-1]:.4f}")
    secs["pti"] = time.perf_counter() - t
    with torch.no_grad():
        out = synthesize(Gu, ws.detach())
    n_vis = 0
    t = time.perf_counter()
    if cfg.correct > 0:
        tick(0.9, "correcting the Gaussians the photo sees")
        cs = min(image.shape[0], cfg.correct_size)
        cimg, cmask, ccam = _targets(image, mask, camera, cs, dev)
        out, n_vis = correct_visible(Gu, out, cimg[0].cpu().numpy(), cmask[0, ..., 0].cpu().numpy(), ccam,
                                     cfg.correct, cfg.depth_tol, cfg.correct_iterations, cfg.correct_shift_all)
        report.append(f"colour of {n_vis} of {Gu.num_gaussians} Gaussians (those the photo sees) pulled toward the photo")
    secs["correct"] = time.perf_counter() - t
    after = _view(Gu, out, cam)
    tick(1.0, "lifted")
    return LiftResult(ws=ws.detach(), ws_encoder=ws0.detach(), out=out, G=Gu, curve=curve, visible=n_vis,
                      render_before=before, render_after=after, seconds=secs, report=report)
