"""A camera dome like Ava-256's, and head-centric square crops (paper supp. C).

80 cameras (by default) on a front-heavy dome around the head: varied distance (0.8-1.3 m) and focal length,
front and sides, some above and below, a few behind. Cameras that see only the back of the head are marked
``back_only`` and never used as inputs. Each view is rendered directly into its head-centric square crop: the
square around the projected head centre that holds a sphere of ``HEAD_RADIUS`` (the paper crops with the tracked
mesh; here the head is at the origin by construction). Inputs use ``input_size`` (paper 512), supervision
``target_size`` (paper 667). A per-sample head pose (the subject moving inside the dome) is folded into the
cameras, as the paper folds tracked head poses into Ava-256's cameras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..cameras import Cameras, look_at, spherical_to_cartesian
from ..head_template import HEAD_BOX_CENTER

HEAD_RADIUS = 0.16           # metres; sphere around HEAD_BOX_CENTER that a head crop must hold
BACK_AZIMUTH_DEG = 125.0     # |azimuth| beyond this (in the head frame) = back-only view
SENSOR_W, SENSOR_H = 667, 1024  # Ava-256's portrait frames (K below is for these full frames)


@dataclass
class DomeConfig:
    n_cameras: int = 80
    n_back: int = 12                      # cameras placed behind the head
    distance_range: tuple = (0.8, 1.3)    # metres
    focal_range: tuple = (2000.0, 2900.0)  # pixels at 1 m (scaled with distance so the head fills ~70 % of the frame)
    elevation_range: tuple = (-35.0, 60.0)
    seed: int = 0                         # the dome's layout (fixed for a dataset)


@dataclass
class Dome:
    """N full-frame cameras in the dome frame, with their layout angles."""

    cameras: Cameras          # full 667 x 1024 frames
    names: list[str]
    azimuth: torch.Tensor     # [N] degrees, 0 = frontal
    elevation: torch.Tensor   # [N] degrees


def make_dome(cfg: DomeConfig | None = None) -> Dome:
    """The dome's cameras (deterministic by cfg.seed)."""
    cfg = cfg or DomeConfig()
    rng = np.random.default_rng(cfg.seed)
    n_front = cfg.n_cameras - cfg.n_back
    # front/side cameras: a jittered spiral over |azimuth| <= 110 deg, denser near the front
    i = np.arange(n_front) + 0.5
    golden = (1 + 5**0.5) / 2
    u = (i / golden) % 1.0
    az_f = 110.0 * np.sign(u - 0.5) * np.abs(2 * u - 1) ** 1.25 + rng.normal(0, 2.0, n_front)
    el_f = cfg.elevation_range[0] + (cfg.elevation_range[1] - cfg.elevation_range[0]) * (i / n_front) + rng.normal(0, 2.0, n_front)
    az_b = rng.uniform(135, 225, cfg.n_back)
    az_b = np.where(az_b > 180, az_b - 360, az_b)
    el_b = rng.uniform(-15, 45, cfg.n_back)
    az = np.concatenate([az_f, az_b]).astype(np.float32)
    el = np.clip(np.concatenate([el_f, el_b]), -40, 65).astype(np.float32)
    dist = rng.uniform(*cfg.distance_range, cfg.n_cameras).astype(np.float32)
    f = (rng.uniform(*cfg.focal_range, cfg.n_cameras) * dist).astype(np.float32) / 1.0
    target = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    # aim at the head with a little per-camera aiming error, as a real rig
    aim = target + torch.as_tensor(rng.normal(0, 0.01, (cfg.n_cameras, 3)), dtype=torch.float32)
    eyes = spherical_to_cartesian(torch.as_tensor(az), torch.as_tensor(el), torch.as_tensor(dist)) + target
    w2c = look_at(eyes, aim)
    K = torch.zeros(cfg.n_cameras, 3, 3)
    K[:, 0, 0] = torch.as_tensor(f)
    K[:, 1, 1] = torch.as_tensor(f)
    K[:, 0, 2] = SENSOR_W / 2
    K[:, 1, 2] = SENSOR_H / 2
    K[:, 2, 2] = 1
    names = [f"cam{k:03d}" for k in range(cfg.n_cameras)]
    return Dome(Cameras(K, w2c, SENSOR_W, SENSOR_H), names, torch.as_tensor(az), torch.as_tensor(el))


def head_pose_matrix(yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0) -> torch.Tensor:
    """Rotation [3, 3] of the head inside the dome (yaw about +y, pitch about +x, roll about +z)."""
    y, p, r = (math.radians(float(a)) for a in (yaw_deg, pitch_deg, roll_deg))
    Ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = torch.tensor([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return (Ry @ Rx @ Rz).float()


def fold_head_pose(cameras: Cameras, R_head: torch.Tensor, t_head=None) -> Cameras:
    """Cameras in the head-centric frame when the head sits at x_dome = R x_head + t inside the dome."""
    T = torch.eye(4)
    T[:3, :3] = R_head
    if t_head is not None:
        T[:3, 3] = torch.as_tensor(t_head, dtype=torch.float32)
    return Cameras(cameras.K, cameras.world_to_cam @ T.to(cameras.world_to_cam), cameras.width, cameras.height)


def back_only(cameras: Cameras, limit_deg: float = BACK_AZIMUTH_DEG) -> torch.Tensor:
    """[N] bool: cameras whose centre (in the head frame) lies behind the head beyond ``limit_deg`` azimuth."""
    c = cameras.centers - torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32, device=cameras.device)
    az = torch.rad2deg(torch.atan2(c[:, 0], c[:, 2]))
    return az.abs() > limit_deg


def head_crops(cameras: Cameras, size: int, *, radius: float = HEAD_RADIUS, jitter: float = 0.0,
               generator: torch.Generator | None = None) -> Cameras:
    """Head-centric square crops resized to size x size: the square around the projected head centre holding a
    sphere of ``radius``. jitter: relative random shift/scale of the box (robustness to imperfect crops)."""
    n = len(cameras)
    center = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32, device=cameras.device)
    uv, z = cameras.project(center[None])
    uv, z = uv[:, 0], z[:, 0]
    f = 0.5 * (cameras.K[:, 0, 0] + cameras.K[:, 1, 1])
    half = f * radius / torch.sqrt((z * z - radius * radius).clamp(min=1e-6))  # tangent cone of the sphere
    if jitter > 0:
        r = torch.rand(n, 3, generator=generator) * 2 - 1
        uv = uv + r[:, :2].to(uv) * jitter * half[:, None]
        half = half * (1 + jitter * r[:, 2].to(half))
    boxes = torch.stack([uv[:, 0] - half, uv[:, 1] - half, 2 * half, 2 * half], -1)
    # crop keeps sub-pixel box corners: shift K exactly, then scale to the output size
    K = cameras.K.clone()
    K[:, 0, 2] -= boxes[:, 0]
    K[:, 1, 2] -= boxes[:, 1]
    s = (size / boxes[:, 2])
    K[:, :2, :] *= s[:, None, None]
    return Cameras(K, cameras.world_to_cam, size, size)
