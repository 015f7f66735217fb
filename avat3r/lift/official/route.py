"""The lift with the paper's own stack (Sec. 4.5): the photo -> EG3D's camera and framing -> GOAE's w+ (when its
encoder is installed; else EG3D's average w) -> optional optimisation of w+ -> EG3D renders the four input views
-> a Capture for Avat3r, with our cameras and masks.

EG3D's world and ours share their axes (y up, the face looking along +z, +x the subject's left); they differ by
scale and origin. ``EG3D_METRES`` assumes EG3D's standard camera (radius 2.7, normalised focal 4.26) frames the
head as ``orbit_camera`` does (1 m, 20 deg): 0.353 m across at the head centre = 0.634 EG3D units. That scale and
EG3D's pivot (``avg_camera_pivot``) placed at ``HEAD_BOX_CENTER`` are assumptions never checked against the real
weights (none are installed here).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...cameras import Cameras
from ...capture import Capture
from .eg3d import EG3DGenerator, look_at_label

__all__ = ["EG3D_METRES", "eg3d_orbit", "eg3d_to_cameras", "photo_label", "reframe", "lift_photo_eg3d", "load_official",
           "loaded_report"]

#: Metres per EG3D unit (see the module docstring: an assumption).
EG3D_METRES = 2 * math.tan(math.radians(10.0)) / (2.7 / 4.2647)

Progress = Callable[[float, str], None]
_CACHE: dict = {}


def eg3d_orbit(azimuth_deg, elevation_deg, cfg) -> torch.Tensor:
    """EG3D camera labels [B, 25] at our (azimuth, elevation) in degrees as seen from EG3D's pivot (azimuth
    positive = subject's left, elevation positive = from above), at EG3D's standard radius and focal length.
    (EG3D's own ``LookAtPoseSampler`` puts cameras on a sphere around the origin, not the pivot; here the angles
    are the pivot's, as ours are the head centre's.)"""
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1))
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1))
    pivot = torch.tensor(cfg.avg_camera_pivot, dtype=torch.float32)
    d = torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)
    return look_at_label(pivot + cfg.avg_camera_radius * d, pivot)


def eg3d_to_cameras(c: torch.Tensor, size: int, cfg) -> Cameras:
    """EG3D labels c [B, 25] -> our Cameras (world in metres around HEAD_BOX_CENTER) for size x size images."""
    from ...head_template import HEAD_BOX_CENTER

    M = c[:, :16].reshape(-1, 4, 4).clone().float()
    pivot = torch.tensor(cfg.avg_camera_pivot, dtype=torch.float32)
    M[:, :3, 3] = (M[:, :3, 3] - pivot) * EG3D_METRES + torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    K = c[:, 16:25].reshape(-1, 3, 3).clone().float()
    K[:, :2] *= size
    return Cameras(K, torch.linalg.inv(M), size, size)


def photo_label(camera: Cameras, cfg) -> torch.Tensor:
    """The EG3D label [1, 25] that sees the head from the photo's direction (front end camera -> azimuth,
    elevation), at EG3D's standard distance and focal length."""
    from ..views import view_angles

    az, el = view_angles(camera[:1].to("cpu"))
    return eg3d_orbit(az, el, cfg)


def reframe(image: np.ndarray, mask: np.ndarray, src: Cameras, dst: Cameras, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a crop seen by ``src`` into ``dst``'s framing (the affine map that sends the head centre and two points
    10 cm to its right and below, as ``dst`` sees them, where ``src`` sees them) -> image [1, 3, S, S], mask [1, 1, S, S]."""
    from ...head_template import HEAD_BOX_CENTER

    R = dst.world_to_cam[0, :3, :3]
    p0 = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    pts = torch.stack([p0, p0 + 0.1 * R[0], p0 + 0.1 * R[1]])
    uv_src, _ = src[:1].project(pts)
    uv_dst, _ = dst[:1].project(pts)
    H, W = image.shape[:2]
    # normalised coordinates (align_corners=False): pixel u -> 2 u / W - 1
    a = torch.cat([uv_dst[0] / size * 2 - 1, torch.ones(3, 1)], 1)  # [3, 3]
    b = uv_src[0] / torch.tensor([W, H], dtype=torch.float32) * 2 - 1  # [3, 2]
    theta = torch.linalg.solve(a, b).T  # [2, 3]: dst -> src
    grid = F.affine_grid(theta[None], [1, 1, size, size], align_corners=False)
    x = torch.cat([torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32).permute(2, 0, 1),
                   torch.as_tensor(np.ascontiguousarray(mask), dtype=torch.float32)[None]])[None]
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return y[:, :3], y[:, 3:]


def load_official(device="cpu"):
    """(EG3D generator, GOAE encoder or None, report lines) from the installed weights, cached per file."""
    from .load import find_eg3d_checkpoint, load_eg3d

    path = find_eg3d_checkpoint(required=True)
    key = (str(path), path.stat().st_mtime, str(device))
    if key not in _CACHE:
        _CACHE.clear()
        G, rep = load_eg3d(path, device=device)
        from .goae import GOAE_HELP, find_goae, load_goae

        enc, enc_line = None, f"no GOAE encoder installed: w+ starts from EG3D's average w ({GOAE_HELP})"
        if find_goae() is not None:
            enc, enc_line = load_goae(device=device)
        _CACHE[key] = (G, enc, [f"EG3D generator (the paper's stack): {rep}", enc_line])
    G, enc, lines = _CACHE[key]
    return G, enc, list(lines)


def loaded_report(G, enc) -> list[str]:
    """What ``load_official`` said about G (which files, what was mapped), or a line for objects given directly."""
    for g, e, lines in _CACHE.values():
        if g is G:
            return list(lines) if e is enc else list(lines[:1]) + ["GOAE encoder given as an object" if enc is not None
                                                                  else "no GOAE encoder: w+ starts from EG3D's average w"]
    return ["EG3D generator given as an object (the paper's stack)"]


def _render(G: EG3DGenerator, ws, c, planes, nr: int | None = None) -> torch.Tensor:
    """One view -> its super-resolved image [1, 3, R, R] in [0, 1]."""
    out = G.synthesis(ws, c.to(ws.device), neural_rendering_resolution=nr, planes=planes)
    return ((out["image"] + 1) / 2).clamp(0, 1)


def lift_photo_eg3d(view: Capture, size: int, G: EG3DGenerator, encoder=None, steps: int | None = None,
                    progress: Progress | None = None):
    """A posed, masked 1-view Capture -> (the four input views as a Capture, LiftResult, report lines).

    steps: Adam steps on w+ against the photo (raw 64^2 render, inside the mask); default 20 on a GPU, 0 on a CPU
    (one step, forward + backward at EG3D's full size, took 28 s on 2 CPU threads)."""
    from ...frontend.mask import head_mask
    from ...generate.avatar import INPUT_VIEWS
    from ..invert import LiftResult

    tick = progress or (lambda f, m: None)
    cfg, dev = G.config, next(G.parameters()).device
    t0 = time.time()
    report, secs = [], {}
    c_photo = photo_label(view.cameras, cfg).to(dev)
    cam_photo = eg3d_to_cameras(c_photo.cpu(), cfg.img_resolution, cfg)
    img, msk = reframe(view.images[0], view.masks[0], view.cameras, cam_photo, cfg.img_resolution)
    img, msk = img.to(dev), msk.to(dev)
    tick(0.05, "GOAE: photo -> w+" if encoder is not None else "EG3D: starting from the average head")
    with torch.no_grad():
        w_avg = G.backbone.mapping.w_avg
        if encoder is not None:
            ws0 = encoder.encode(img * 2 - 1, w_avg)
            report.append("GOAE encoder: w+ from the photo")
        else:
            ws0 = w_avg.expand(1, G.num_ws, -1).clone()
            report.append("no GOAE encoder: w+ = EG3D's average w")
    secs["encode"] = time.time() - t0
    if steps is None:
        steps = 20 if dev.type == "cuda" else 0
    ws, curve = ws0, []
    if steps > 0:
        t1 = time.time()
        target = F.interpolate(img * msk, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        tm = F.interpolate(msk, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        delta = torch.zeros_like(ws0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=0.01)
        for i in range(steps):
            out = G.synthesis(ws0 + delta, c_photo, neural_rendering_resolution=64)
            raw = (out["image_raw"] + 1) / 2
            loss = ((raw - target).abs() * tm).mean() / tm.mean().clamp(min=1e-6)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(float(loss.detach()))
            tick(0.1 + 0.4 * (i + 1) / steps, f"optimising w+ ({i + 1}/{steps})")
        ws = (ws0 + delta).detach()
        secs["optimise"] = time.time() - t1
        report.append(f"w+ optimised against the photo for {steps} steps (L1 {curve[0]:.3f} -> {curve[-1]:.3f})")
    else:
        report.append("no w+ optimisation (steps = 0, the CPU default: a step costs ~30 s of CPU time here)")
    t2 = time.time()
    with torch.no_grad():
        planes = None
        afa = getattr(encoder, "afa", None)
        if afa is not None:
            ch = G.backbone.synthesis.b32.conv1.out_channels
            if ch != 512:
                report.append(f"GOAE's AFA skipped: this EG3D's 32^2 features have {ch} channels, AFA expects 512")
            else:
                tick(0.5, "GOAE AFA: correcting the features the photo sees")
                planes, vis = encoder.correct(G, ws, c_photo, img * 2 - 1)
                report.append(f"GOAE AFA: triplanes corrected where the photo sees the head ({float(vis.mean()):.0%} of "
                              "the xy plane)")
                secs["afa"] = time.time() - t2
        if planes is None:
            planes = G.planes(ws)
        before = _render(G, ws0, c_photo, None) if steps > 0 else None
        after = _render(G, ws, c_photo, planes)
        az = [a for a, _ in INPUT_VIEWS]
        el = [e for _, e in INPUT_VIEWS]
        cs = eg3d_orbit(az, el, cfg).to(dev)
        images, masks, n = [], [], len(INPUT_VIEWS)
        cams = eg3d_to_cameras(cs.cpu(), size, cfg)
        for i in range(n):
            tick(0.55 + 0.4 * i / n, f"EG3D: rendering view {i + 1}/{n}")
            im = _render(G, ws, cs[i:i + 1], planes)
            im = F.interpolate(im, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            im = im[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
            images.append(im)
            masks.append(head_mask(im, cams.K[i].numpy(), cams.world_to_cam[i].numpy()))
    secs["render"] = time.time() - t2
    names = [f"eg3d_az{int(a):+d}" for a in az]
    cap = Capture(images=np.stack(images), cameras=cams, names=names, masks=np.stack(masks).astype(np.float32),
                  meta={"source": "lift", "generator": cfg.preset, "encoder": encoder is not None, "photo": view.names[0]})

    def hwc(x):
        return None if x is None else x[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)

    lr = LiftResult(ws=ws, ws_encoder=ws0, out={"planes": planes}, G=G, curve=curve,
                    render_before=hwc(before) if before is not None else hwc(after), render_after=hwc(after),
                    seconds=secs, report=report)
    report.append(f"EG3D rendered the four views at {cfg.img_resolution} px (masks: the front end's head mask)")
    tick(1.0, "four views ready")
    return cap, lr, report
