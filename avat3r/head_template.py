"""The canonical head: where the head-centric world frame (see ``avat3r.cameras``) puts the face.

One source of truth for every stage that must agree on it: SynthHeads builds its heads around these anchors,
the front end solves PnP against a 3D landmark template placed on them, the default cameras frame them.
Units are metres; +x the subject's left ear, +y up, +z out of the face; origin midway between the ears at eye height.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

#: Named 3D anchor points of an average adult head in canonical pose, [3] each, metres.
ANCHORS: dict[str, np.ndarray] = {
    "eye_left": np.array([0.0315, 0.0, 0.078]),     # centre of the subject's left eye (image right)
    "eye_right": np.array([-0.0315, 0.0, 0.078]),
    "nose_tip": np.array([0.0, -0.036, 0.106]),
    "nose_bridge": np.array([0.0, 0.004, 0.092]),
    "mouth_center": np.array([0.0, -0.066, 0.090]),
    "mouth_left": np.array([0.025, -0.064, 0.082]),
    "mouth_right": np.array([-0.025, -0.064, 0.082]),
    "chin": np.array([0.0, -0.112, 0.080]),
    "ear_left": np.array([0.074, -0.012, 0.0]),
    "ear_right": np.array([-0.074, -0.012, 0.0]),
    "crown": np.array([0.0, 0.112, -0.010]),
    "occiput": np.array([0.0, 0.010, -0.108]),
}

#: Half-extents of a box that holds a head with ordinary hair and the upper neck, metres (x, y, z).
HEAD_BOX_HALF = np.array([0.12, 0.16, 0.14])
#: Centre of that box; the head is not centred vertically on the eyes (neck below, crown above).
HEAD_BOX_CENTER = np.array([0.0, -0.01, 0.0])
#: Default distance of a camera from the origin and its field of view such that the box fills a square crop.
DEFAULT_CAMERA_DISTANCE = 1.0
DEFAULT_FOV_DEG = 20.0


# ---- the head proxy: the average head's skin as a radius function --------------------------------------------
# SynthHeads' average identity (every shape factor 1) is this template; the weight-free visual hull
# (``avat3r.priors.visual_hull``) uses its skin to bound depth when few views cannot. Kept here (not in SynthHeads'
# code) so that priors do not depend on the data generator; tests/test_prior_hull.py holds the two together.

#: An ellipsoid around the template head incl. ordinary hair (centre, semi-axes), metres.
PROXY_CENTER = np.array([0.0, 0.0, -0.005])
PROXY_AXES = np.array([0.088, 0.125, 0.108])

# ellipsoids (centre, semi-axes, blend radius in metres) whose smooth union is the average skin
_SKIN_ELLIPSOIDS = (
    ((0, 0.012, -0.006), (0.075, 0.103, 0.100), 0),             # cranium
    ((0, -0.04, 0.004), (0.066, 0.075, 0.083), 0.03),           # face + jaw mass
    ((0, 0.04, 0.035), (0.057, 0.05, 0.055), 0.02),             # forehead
    ((0, 0.021, 0.072), (0.05, 0.011, 0.016), 0.012),           # brow ridge
    ((0.042, -0.012, 0.044), (0.021, 0.015, 0.024), 0.015),     # cheekbones
    ((-0.042, -0.012, 0.044), (0.021, 0.015, 0.024), 0.015),
    ((0, -0.072, 0.03), (0.05, 0.04, 0.05), 0.03),              # mandible body
    ((0, -0.097, 0.061), (0.022, 0.018, 0.018), 0.02),          # chin
    ((0, -0.052, 0.057), (0.034, 0.028, 0.031), 0.02),          # maxilla / muzzle
    ((0, -0.004, 0.079), (0.0075, 0.026, 0.0125), 0.01),        # nose bridge
    ((0, -0.033, 0.0965), (1.05 * 0.0093, 0.0093, 0.0093), 0.01),  # nose tip
    ((0.0125, -0.037, 0.087), (0.0072, 0.0062, 0.0075), 0.008),  # nose alae
    ((-0.0125, -0.037, 0.087), (0.0072, 0.0062, 0.0075), 0.008),
    ((0, -0.0605, 0.079), (0.0245, 0.0062, 0.011), 0.006),      # upper lip
    ((0, -0.0715, 0.077), (0.022, 0.0066, 0.0115), 0.006),      # lower lip
)
_NECK_AXES, _NECK_Z, _NECK_BLEND = (0.046, 0.05), -0.02, 0.03  # vertical elliptic cylinder behind the jaw
_EYE_CENTERS = (np.array([0.0315, 0.0, 0.0685]), np.array([-0.0315, 0.0, 0.0685]))  # eyeballs (left first)
_LID_RADIUS = 0.012 + 0.0012                                   # eyeball radius + lid thickness


def _smax_poly(a, b, k):
    """Polynomial smooth maximum with blend radius k."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return torch.lerp(a, b, h) + k * h * (1 - h)


def _sphere_exit(d, c, r):
    """Distance along unit rays d [..., 3] from the origin to the exit of the sphere (c, r)."""
    c = torch.as_tensor(c, dtype=torch.float32, device=d.device)
    a = torch.as_tensor((r, r, r), dtype=torch.float32, device=d.device)
    q, m = d / a, c / a
    A = (q * q).sum(-1)
    B = (q * m).sum(-1)
    C = (m * m).sum() - 1
    disc = B * B - A * C
    return (B + torch.sign(disc) * disc.abs().sqrt()) / A


def _gnomonic(d, center_dir, r0):
    """Directions d [..., 3] -> tangent-plane coords (u, v) in metres at r0 around center_dir (far behind)."""
    n = F.normalize(torch.as_tensor(center_dir, dtype=torch.float32), dim=0)
    eu = F.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), n), dim=0)
    ev = torch.linalg.cross(n, eu)
    n, eu, ev = n.to(d.device), eu.to(d.device), ev.to(d.device)
    c = (d * n).sum(-1)
    cs = c.clamp(min=1e-3)
    u = (d * eu).sum(-1) / cs * r0
    v = (d * ev).sum(-1) / cs * r0
    far = torch.full_like(u, 1e3)
    return torch.where(c > 0.05, u, far), torch.where(c > 0.05, v, far)


def skin_radius(d: torch.Tensor) -> torch.Tensor:
    """Radius of the average head's skin (no hair) along unit directions d [..., 3] from the origin -> [...], metres."""
    c = torch.tensor([e[0] for e in _SKIN_ELLIPSOIDS], dtype=torch.float32, device=d.device)
    a = torch.tensor([e[1] for e in _SKIN_ELLIPSOIDS], dtype=torch.float32, device=d.device)
    q = d[None] / a.reshape(-1, *([1] * (d.ndim - 1)), 3)          # [K, ..., 3]
    m = (c / a).reshape(-1, *([1] * (d.ndim - 1)), 3)
    Aq = (q * q).sum(-1)
    Bq = (q * m).sum(-1)
    Cq = (m * m).sum(-1) - 1
    disc = Bq * Bq - Aq * Cq
    # disc / sqrt(|disc| + eps) instead of sign(disc) sqrt|disc|: no infinite slope at a rim seen from the origin
    abar = a.mean(-1).reshape(-1, *([1] * (d.ndim - 1)))
    sq = disc / (disc.abs() + (0.3 * abar * Aq) ** 2).sqrt()
    sq = torch.where(disc < 0, 6.0 * sq, sq)  # rays that miss fall off fast (thin ellipsoids)
    ts = list(((Bq + sq) / Aq).unbind(0))
    ax, az, cz = _NECK_AXES[0], _NECK_AXES[1], _NECK_Z
    A = (d[..., 0] / ax) ** 2 + (d[..., 2] / az) ** 2
    B = d[..., 2] * cz / az**2
    C = (cz / az) ** 2 - 1
    tc = (B + (B * B - A * C).clamp(min=0).sqrt()) / A.clamp(min=1e-8)
    tb = torch.where(d[..., 1] < -1e-3, -0.30 / d[..., 1].clamp(max=-1e-3), torch.full_like(tc, 1e3))
    ts.append(torch.where(d[..., 1] < -0.02, torch.minimum(tc, tb), tc.clamp(max=0.03)))
    r = ts[0]
    for t, k in zip(ts[1:], [e[2] for e in _SKIN_ELLIPSOIDS[1:]] + [_NECK_BLEND]):
        r = _smax_poly(r, t, k)
    for ec in _EYE_CENTERS:  # the skin around each eye lies on an eyelid sphere
        u, v = _gnomonic(d, ec / np.linalg.norm(ec), 0.08)
        qe = (u / 0.017) ** 2 + ((v + 0.001) / 0.012) ** 2
        w = torch.exp(-qe * qe)
        c2 = np.array(ec) - np.array([0.0, 0.0, 0.017 - _LID_RADIUS])
        r = torch.lerp(r, _sphere_exit(d, c2, 0.017), w)
    return r


_RADIUS_TABLE: dict[str, torch.Tensor] = {}


def proxy_radius(dirs: torch.Tensor) -> torch.Tensor:
    """``skin_radius`` along unit directions dirs [..., 3] -> [...], looked up in a cached (theta, phi) table
    (64 x 128, bilinear): the visual hull evaluates it on every voxel."""
    key = str(dirs.device)
    if key not in _RADIUS_TABLE:
        th = math.pi * (torch.arange(64, dtype=torch.float32) + 0.5) / 64   # from +y
        ph = math.pi * ((torch.arange(128, dtype=torch.float32) + 0.5) / 128 * 2 - 1)  # from +z towards +x
        th, ph = torch.meshgrid(th, ph, indexing="ij")
        d = torch.stack([th.sin() * ph.sin(), th.cos(), th.sin() * ph.cos()], -1)
        _RADIUS_TABLE[key] = skin_radius(d)[None, None].to(dirs.device)
    grid = _RADIUS_TABLE[key]
    th = torch.acos(dirs[..., 1].clamp(-1, 1))
    ph = torch.atan2(dirs[..., 0], dirs[..., 2])
    g = torch.stack([ph / torch.pi, th / torch.pi * 2 - 1], -1).reshape(1, -1, 1, 2)
    return F.grid_sample(grid, g, mode="bilinear", align_corners=True, padding_mode="border").reshape(dirs.shape[:-1])
