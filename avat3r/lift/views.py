"""Cameras for the lift: random training views framed like the front end's crops, and the four rendered views.

The four views handed to Avat3r are the GGHead route's (``avat3r.generate.avatar.INPUT_VIEWS``, spread like the
paper's inputs); this module only adds the random views the encoder is trained on.
"""

from __future__ import annotations

import torch

from ..cameras import Cameras, orbit_camera

__all__ = ["random_views", "view_angles"]


def random_views(n: int, size: int, gen: torch.Generator, azimuth: float = 60.0, elevation=(-15.0, 25.0),
                 distance_jitter: float = 0.08) -> tuple[Cameras, torch.Tensor, torch.Tensor]:
    """n random head-centric views (|azimuth| <= azimuth, elevation in range, distance x (1 +- jitter)), framed as
    ``orbit_camera`` frames the head -> (Cameras, azimuths [n], elevations [n]) in degrees."""
    from ..head_template import DEFAULT_CAMERA_DISTANCE

    u = torch.rand(n, 3, generator=gen)
    az = (u[:, 0] * 2 - 1) * azimuth
    el = elevation[0] + u[:, 1] * (elevation[1] - elevation[0])
    dist = DEFAULT_CAMERA_DISTANCE * (1 + (u[:, 2] * 2 - 1) * distance_jitter)
    cams = Cameras.cat([orbit_camera(float(a), float(e), size, distance=float(d)) for a, e, d in zip(az, el, dist)])
    return cams, az, el


def view_angles(cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """(azimuth [N], elevation [N]) in degrees of each camera centre seen from the head box centre."""
    from ..head_template import HEAD_BOX_CENTER

    c = cameras.centers - torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32, device=cameras.device)
    az = torch.rad2deg(torch.atan2(c[:, 0], c[:, 2]))
    el = torch.rad2deg(torch.atan2(c[:, 1], torch.hypot(c[:, 0], c[:, 2])))
    return az, el
