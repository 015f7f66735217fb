"""Pinhole cameras in the OpenCV convention, Plücker rays, camera paths and viewpoint sampling.

Conventions (stated once for the whole project)
------------------------------------------------
Camera frame (OpenCV): x right, y down, z forward (out of the lens). ``K`` is in pixels of the image the
camera belongs to; pixel ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``. ``world_to_cam`` is a 4x4 rigid
transform ``X_cam = R X_world + t``.

Head-centric world frame: origin at the centre of the head (midway between the ears, at eye height), units in
**metres**, head in canonical pose, right-handed with

    +x  towards the subject's left ear  (image right in a frontal photo)
    +y  up                                (top of the head)
    +z  forward, out of the face          (towards a frontal camera)

So a frontal camera sits at ``(0, 0, +d)`` looking along ``-z``; its rotation is ``diag(1, -1, -1)``.
Because +y is up, exported ``.ply`` files open right side up in y-up viewers (Gradio's Model3D).

Plücker rays (the paper's ``I^pluck``, eq. 4): per pixel ``(d, o x d)`` with ``d`` the unit ray direction in
world coordinates and ``o`` the camera centre; 6 channels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .errors import FormatError, InputError

__all__ = [
    "Cameras",
    "intrinsics_from_fov",
    "look_at",
    "orbit_cameras",
    "plucker_rays",
    "pixel_rays",
    "k_farthest_viewpoints",
    "farthest_point_sampling",
    "read_cameras_json",
    "write_cameras_json",
]


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


@dataclass
class Cameras:
    """A batch of N pinhole cameras (OpenCV convention).

    K: [N, 3, 3] intrinsics in pixels; world_to_cam: [N, 4, 4]; width, height: [N] int64 image sizes.
    """

    K: torch.Tensor
    world_to_cam: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor

    def __post_init__(self) -> None:
        self.K = _as_tensor(self.K)
        self.world_to_cam = _as_tensor(self.world_to_cam)
        if self.K.ndim == 2:
            self.K = self.K[None]
        if self.world_to_cam.ndim == 2:
            self.world_to_cam = self.world_to_cam[None]
        n = self.K.shape[0]
        self.width = torch.as_tensor(self.width, dtype=torch.int64).reshape(-1).expand(n).clone()
        self.height = torch.as_tensor(self.height, dtype=torch.int64).reshape(-1).expand(n).clone()
        self.validate()

    # ---- validation -------------------------------------------------------------------------------
    def validate(self, where: str = "cameras") -> None:
        """Raise InputError when shapes disagree, values are not finite, or K / R are unusable."""
        n = self.K.shape[0]
        if self.K.shape[1:] != (3, 3):
            raise InputError(f"{where}: K must have shape [N, 3, 3], got {tuple(self.K.shape)}")
        if self.world_to_cam.shape != (n, 4, 4):
            raise InputError(
                f"{where}: world_to_cam must have shape [{n}, 4, 4] to match K, got {tuple(self.world_to_cam.shape)}"
            )
        if not torch.isfinite(self.K).all() or not torch.isfinite(self.world_to_cam).all():
            raise InputError(f"{where}: K and world_to_cam must be finite (found NaN or inf)")
        if (self.width <= 0).any() or (self.height <= 0).any():
            raise InputError(f"{where}: width and height must be positive, got {self.width.tolist()} x {self.height.tolist()}")
        fx, fy = self.K[:, 0, 0], self.K[:, 1, 1]
        if (fx <= 0).any() or (fy <= 0).any() or (self.K[:, 2, 2] != 1).any() or (self.K[:, 2, :2] != 0).any():
            raise InputError(
                f"{where}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 (a non-invertible or "
                "non-pinhole K was given); check the focal length units (pixels)"
            )
        R = self.world_to_cam[:, :3, :3]
        eye = torch.eye(3, device=R.device).expand_as(R)
        if (R @ R.transpose(1, 2) - eye).abs().max() > 1e-3 or (torch.linalg.det(R) < 0).any():
            raise InputError(f"{where}: the rotation part of world_to_cam must be a proper rotation matrix (orthonormal, det +1)")
        if (self.world_to_cam[:, 3] - torch.tensor([0.0, 0, 0, 1], device=R.device)).abs().max() > 1e-6:
            raise InputError(f"{where}: the last row of world_to_cam must be [0, 0, 0, 1]")

    # ---- container behaviour ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.K.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = [idx]
        return Cameras(self.K[idx], self.world_to_cam[idx], self.width[idx], self.height[idx])

    @staticmethod
    def cat(cams: Sequence["Cameras"]) -> "Cameras":
        return Cameras(
            torch.cat([c.K for c in cams]),
            torch.cat([c.world_to_cam for c in cams]),
            torch.cat([c.width for c in cams]),
            torch.cat([c.height for c in cams]),
        )

    def to(self, device) -> "Cameras":
        out = object.__new__(Cameras)
        out.K, out.world_to_cam = self.K.to(device), self.world_to_cam.to(device)
        out.width, out.height = self.width.to(device), self.height.to(device)
        return out

    @property
    def device(self) -> torch.device:
        return self.K.device

    # ---- derived quantities -----------------------------------------------------------------------
    @property
    def cam_to_world(self) -> torch.Tensor:
        """[N, 4, 4] inverse of world_to_cam (rigid, so computed in closed form)."""
        R, t = self.world_to_cam[:, :3, :3], self.world_to_cam[:, :3, 3:]
        out = torch.zeros_like(self.world_to_cam)
        out[:, :3, :3] = R.transpose(1, 2)
        out[:, :3, 3:] = -R.transpose(1, 2) @ t
        out[:, 3, 3] = 1
        return out

    @property
    def centers(self) -> torch.Tensor:
        """[N, 3] camera centres in world coordinates."""
        return self.cam_to_world[:, :3, 3]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) shared by all cameras; raises if they differ."""
        if (self.width != self.width[0]).any() or (self.height != self.height[0]).any():
            raise InputError("cameras have different image sizes; crop/resize them to one size first")
        return int(self.height[0]), int(self.width[0])

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points [N, P, 3] or [P, 3] world -> (uv [N, P, 2] pixels, depth [N, P])."""
        if points.ndim == 2:
            points = points[None].expand(len(self), -1, -1)
        R, t = self.world_to_cam[:, :3, :3], self.world_to_cam[:, :3, 3]
        xc = points @ R.transpose(1, 2) + t[:, None]
        z = xc[..., 2]
        uvw = xc @ self.K.transpose(1, 2)
        uv = uvw[..., :2] / z.clamp(min=1e-8)[..., None]
        return uv, z

    # ---- image-space edits ------------------------------------------------------------------------
    def crop(self, boxes) -> "Cameras":
        """Crop each image to ``boxes`` [N, 4] or [4] = (x0, y0, w, h) in pixels; K's principal point shifts."""
        b = _as_tensor(boxes).reshape(-1, 4).expand(len(self), 4)
        K = self.K.clone()
        K[:, 0, 2] -= b[:, 0]
        K[:, 1, 2] -= b[:, 1]
        return Cameras(K, self.world_to_cam, b[:, 2].round().long(), b[:, 3].round().long())

    def resize(self, width: int, height: int | None = None) -> "Cameras":
        """Scale every image to (width, height) pixels; K scales with the image (pixel-centre convention kept)."""
        height = width if height is None else height
        sx = width / self.width.to(torch.float32)
        sy = height / self.height.to(torch.float32)
        K = self.K.clone()
        K[:, 0, :] *= sx[:, None]
        K[:, 1, :] *= sy[:, None]
        return Cameras(K, self.world_to_cam, width, height)

    def crop_resize(self, boxes, size: int) -> "Cameras":
        """Crop to square boxes [N, 4] then resize to size x size (the head-centric crop of supp. C)."""
        return self.crop(boxes).resize(size, size)

    def to_dict(self, names: Sequence[str]) -> dict:
        """{name: {"K", "world_to_cam", "width", "height"}}, the cameras.json layout."""
        if len(names) != len(self):
            raise InputError(f"got {len(names)} names for {len(self)} cameras")
        return {
            str(n): {
                "K": self.K[i].tolist(),
                "world_to_cam": self.world_to_cam[i].tolist(),
                "width": int(self.width[i]),
                "height": int(self.height[i]),
            }
            for i, n in enumerate(names)
        }


# ---- construction helpers ---------------------------------------------------------------------------
def intrinsics_from_fov(fov_deg: float, width: int, height: int | None = None) -> torch.Tensor:
    """[3, 3] K with a horizontal field of view ``fov_deg`` and the principal point at the image centre."""
    height = width if height is None else height
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)


def look_at(eye: torch.Tensor, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> torch.Tensor:
    """eye [..., 3] -> world_to_cam [..., 4, 4] for OpenCV cameras looking at ``target`` with world ``up``."""
    eye = _as_tensor(eye)
    target = _as_tensor(target).expand_as(eye)
    up = _as_tensor(up).expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)  # forward
    x = torch.linalg.cross(z, up, dim=-1)  # right = forward x up (y is down)
    bad = x.norm(dim=-1, keepdim=True) < 1e-6  # looking straight along up: pick any right vector
    x = torch.where(bad, torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0]).expand_as(z), dim=-1), x)
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)  # down
    R = torch.stack([x, y, z], dim=-2)
    out = torch.zeros(*eye.shape[:-1], 4, 4)
    out[..., :3, :3] = R
    out[..., :3, 3] = -(R @ eye[..., None])[..., 0]
    out[..., 3, 3] = 1
    return out


def spherical_to_cartesian(azimuth_deg, elevation_deg, radius) -> torch.Tensor:
    """Azimuth 0 = frontal (+z), positive towards +x (subject's left); elevation positive upwards. -> [..., 3]"""
    az = torch.deg2rad(_as_tensor(azimuth_deg))
    el = torch.deg2rad(_as_tensor(elevation_deg))
    r = _as_tensor(radius)
    return torch.stack([r * torch.cos(el) * torch.sin(az), r * torch.sin(el), r * torch.cos(el) * torch.cos(az)], -1)


def orbit_cameras(
    n: int,
    *,
    radius: float = 1.0,
    elevation_deg: float = 5.0,
    fov_deg: float = 18.0,
    size: int = 256,
    azimuth_range: tuple[float, float] = (0.0, 360.0),
    target=(0.0, 0.0, 0.0),
) -> Cameras:
    """A turntable of n cameras around the head (azimuths evenly spaced, endpoint excluded for loops)."""
    a0, a1 = azimuth_range
    full = abs((a1 - a0) - 360.0) < 1e-6
    az = torch.linspace(a0, a1, n + 1 if full else n)[: n]
    eyes = spherical_to_cartesian(az, torch.full_like(az, elevation_deg), torch.full_like(az, radius))
    eyes = eyes + _as_tensor(target)
    w2c = look_at(eyes, target)
    K = intrinsics_from_fov(fov_deg, size).expand(n, 3, 3)
    return Cameras(K, w2c, size, size)


# ---- rays -------------------------------------------------------------------------------------------
def pixel_rays(cameras: Cameras, height: int | None = None, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixel centres -> (origins [N, H, W, 3], unit directions [N, H, W, 3]) in world space."""
    if height is None or width is None:
        height, width = cameras.image_size
    dev = cameras.device
    v, u = torch.meshgrid(
        torch.arange(height, device=dev, dtype=torch.float32) + 0.5,
        torch.arange(width, device=dev, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)], -1)  # [H, W, 3]
    Kinv = torch.linalg.inv(cameras.K)  # [N, 3, 3]
    d_cam = torch.einsum("nij,hwj->nhwi", Kinv, pix)
    c2w = cameras.cam_to_world
    d = torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], d_cam)
    d = torch.nn.functional.normalize(d, dim=-1)
    o = c2w[:, None, None, :3, 3].expand_as(d)
    return o, d


def plucker_rays(cameras: Cameras, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Per-pixel Plücker coordinates (d, o x d) -> [N, 6, H, W] (the paper's I^pluck)."""
    o, d = pixel_rays(cameras, height, width)
    m = torch.linalg.cross(o, d, dim=-1)
    return torch.cat([d, m], -1).permute(0, 3, 1, 2).contiguous()


# ---- viewpoint sampling (paper supp. C) ---------------------------------------------------------------
def farthest_point_sampling(points: torch.Tensor, k: int, start: int) -> list[int]:
    """Greedy farthest point sampling on points [N, D] from index ``start``; returns k indices."""
    n = points.shape[0]
    k = min(k, n)
    chosen = [int(start)]
    dist = (points - points[start]).norm(dim=-1)
    for _ in range(k - 1):
        nxt = int(torch.argmax(dist))
        chosen.append(nxt)
        dist = torch.minimum(dist, (points - points[nxt]).norm(dim=-1))
    return chosen


def k_farthest_viewpoints(
    centers: torch.Tensor,
    k: int = 4,
    *,
    n_candidates: int = 10,
    allowed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """k-farthest viewpoint sampling (supp. C): from a random allowed camera, farthest-point-sample
    ``n_candidates`` viewing directions, then pick k of them at random. centers [N, 3] -> k indices."""
    dirs = torch.nn.functional.normalize(centers.to(torch.float32), dim=-1)
    idx = torch.arange(len(dirs)) if allowed is None else torch.nonzero(allowed.reshape(-1)).reshape(-1)
    if len(idx) < k:
        raise InputError(f"need at least {k} allowed cameras for sampling, have {len(idx)}")
    start = int(torch.randint(len(idx), (1,), generator=generator))
    cand = farthest_point_sampling(dirs[idx], max(n_candidates, k), start)
    pick = torch.randperm(len(cand), generator=generator)[:k]
    return [int(idx[cand[i]]) for i in pick]


# ---- cameras.json -----------------------------------------------------------------------------------
def _atomic_write_text(path: Path, text: str) -> None:
    from .io.images import atomic_save

    atomic_save(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_cameras_json(path, names: Sequence[str], cameras: Cameras) -> None:
    """Write ``{"<view>": {"K", "world_to_cam", "width", "height"}}`` atomically (temp file, then rename)."""
    _atomic_write_text(Path(path), json.dumps(cameras.to_dict(names), indent=1))


def read_cameras_json(path, views: Iterable[str] | None = None, *, where: str | None = None) -> tuple[list[str], Cameras]:
    """Read a capture folder's cameras.json -> (view names, Cameras). ``views`` selects and orders views.

    View names are checked to be plain names (``io.paths.check_view_name``): they become file names. ``where`` is
    how messages name the file (default: the path as given); the app passes the name relative to the upload so
    that no server path is shown."""
    from .io.jsonfiles import read_json
    from .io.paths import check_view_name
    from .limits import MAX_IMAGE_SIDE, MAX_INPUT_FILES, MAX_VIEWS

    path = Path(path)
    shown = where or str(path)
    if not path.exists():
        raise FormatError(f"{shown}: file not found; a capture folder needs cameras.json beside images/")
    data = read_json(path, shown, 'cameras.json ({"<view>": {"K", "world_to_cam", "width", "height"}})')
    if not isinstance(data, dict) or not data:
        raise FormatError(f"{shown}: expected a non-empty object mapping view names to cameras")
    if len(data) > MAX_INPUT_FILES:
        raise FormatError(f"{shown}: {len(data)} cameras; at most {MAX_INPUT_FILES} views are read (the network uses "
                          f"up to {MAX_VIEWS}); keep the views you want to use")
    for name in data:
        check_view_name(name, shown)
    names = list(data) if views is None else [str(v) for v in views]
    Ks, w2cs, ws, hs = [], [], [], []
    for name in names:
        if name not in data:
            raise FormatError(f"{shown}: no camera for view {name!r}; known views: {sorted(data)[:10]}")
        entry = data[name]
        if not isinstance(entry, dict):
            raise FormatError(f"{shown}: camera {name!r} must be an object with K, world_to_cam, width, height")
        for key, shape in (("K", (3, 3)), ("world_to_cam", (4, 4))):
            if key not in entry:
                raise FormatError(f"{shown}: camera {name!r} is missing {key!r} (a {shape[0]}x{shape[1]} matrix)")
            try:
                arr = np.asarray(entry[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise FormatError(f"{shown}: camera {name!r} field {key!r} is not a numeric matrix") from None
            if arr.shape != shape:
                raise FormatError(f"{shown}: camera {name!r} field {key!r} has shape {arr.shape}, expected {shape}")
            if not np.isfinite(arr).all():
                raise FormatError(f"{shown}: camera {name!r} field {key!r} contains NaN or inf")
            (Ks if key == "K" else w2cs).append(arr)
        for key, out in (("width", ws), ("height", hs)):
            val = entry.get(key)
            if (not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val) or int(val) != val
                    or not 0 < val <= MAX_IMAGE_SIDE):
                raise FormatError(f"{shown}: camera {name!r} field {key!r} must be a positive integer (pixels of its "
                                  f"image), got {val!r}")
            out.append(int(val))
    try:
        cams = Cameras(np.stack(Ks), np.stack(w2cs), ws, hs)
    except InputError as e:
        raise FormatError(f"{shown}: {e}") from None
    return names, cams


def orbit_camera(azimuth: float, elevation: float, size: int = 256, *, distance: float | None = None,
                 fov_deg: float | None = None) -> Cameras:
    """One camera on a sphere around the head box centre (azimuth 0 = frontal, positive = subject's left;
    elevation positive = from above), framing the whole head in a size x size image."""
    from .head_template import DEFAULT_CAMERA_DISTANCE, DEFAULT_FOV_DEG, HEAD_BOX_CENTER

    distance = DEFAULT_CAMERA_DISTANCE if distance is None else distance
    fov_deg = DEFAULT_FOV_DEG if fov_deg is None else fov_deg
    target = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    eye = spherical_to_cartesian(float(azimuth), float(elevation), distance) + target
    K = intrinsics_from_fov(fov_deg, size)
    return Cameras(K, look_at(eye, target), size, size)
