"""The template head surface a GGHead generator writes its UV maps on, and the UV grid of its Gaussians.

A template is a position map: one 3D surface point per UV texel ([3, R, R]) plus a validity map ([1, R, R]);
GGHead places one Gaussian at each point of a uniform n x n grid in UV space that falls inside the valid region
(``uv_grid``), at the bilinearly sampled template position, and reads its attributes from the generated maps at
the same UV coordinate.

Two templates:
  * ``synthheads_template``: ours. The skin of SynthHeads' average head (``avat3r.head_template``), a star-shaped
    surface around the origin, parameterised by azimuth (u, denser at the face) and polar angle (v, crown to neck).
    Built in code, no files, no licence.
  * ``obj_template``: GGHead's FLAME-based mesh with UVs (``flame_uv_no_back_close_mouth_no_subdivision.obj``),
    rasterised into UV space and registered to GGHead's BFM-scaled frame. FLAME is licence-gated, so the file is
    not shipped: see ``FLAME_TEMPLATE_HELP``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, FormatError

__all__ = ["UVTemplate", "synthheads_template", "obj_template", "rasterize_uv", "uv_grid", "find_flame_template",
           "FLAME_TEMPLATE_NAME", "FLAME_TEMPLATE_HELP", "FLAME_TO_BFM"]

FLAME_TEMPLATE_NAME = "flame_uv_no_back_close_mouth_no_subdivision.obj"
FLAME_TEMPLATE_ENV = "AVAT3R_GGHEAD_TEMPLATE"
FLAME_TEMPLATE_HELP = (
    f"GGHead's template is a FLAME mesh with UVs ({FLAME_TEMPLATE_NAME}, in the GGHead repository under assets/); "
    "FLAME is licence-gated (https://flame.is.tue.mpg.de), so it is not shipped here. After accepting the FLAME "
    f"licence, put the file in weights/gghead_official/ or point {FLAME_TEMPLATE_ENV} at it."
)

#: GGHead's registration of the FLAME template (metres) to its scaled-BFM frame (``use_flame_to_bfm_registration``).
FLAME_TO_BFM = torch.tensor([
    [2.682716929557429, 0.010446918125791843, 0.04746649927210553, 0.0030014961233934233],
    [-0.009421598630294275, 2.682515580606053, -0.05790466856909523, 0.04740944787628047],
    [-0.047680604263683285, 0.05772857372357329, 2.682112266656848, -0.0024605516344398115],
    [0.0, 0.0, 0.0, 1.0],
], dtype=torch.float64)


@dataclass
class UVTemplate:
    """position_map [3, R, R] (model units), valid_map [1, R, R] in {0, 1}; name says where it came from."""

    position_map: torch.Tensor
    valid_map: torch.Tensor
    name: str


def uv_grid(valid_map: torch.Tensor, n: int) -> torch.Tensor:
    """GGHead's Gaussian sites: the n x n uniform grid over [-1, 1]^2 (row-major, x = u across, y = v down) kept
    where the bilinearly sampled validity exceeds 0.99. valid_map [1, R, R] -> grid [1, G, 1, 2] for grid_sample."""
    lin = torch.linspace(-1, 1, steps=n)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    coords = torch.stack([xs, ys], -1)  # [n, n, 2]
    v = F.grid_sample(valid_map[None].float(), coords[None], mode="bilinear", align_corners=False)[0, 0]
    return coords[v > 0.99][None, :, None].contiguous()


def sample_template(position_map: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Template points at the grid sites: [3, R, R], [1, G, 1, 2] -> [G, 3]."""
    return F.grid_sample(position_map[None], grid, mode="bilinear", align_corners=False)[0, :, :, 0].T.contiguous()


# ---- ours: SynthHeads' average skin --------------------------------------------------------------------------
def synthheads_template(resolution: int, world_scale: float = 1.0, theta_max: float = 2.85) -> UVTemplate:
    """The skin of SynthHeads' average head on a (phi, theta) UV chart, in model units (metres / world_scale).

    u (columns, -1..1) -> azimuth phi in (-pi, pi), 0 = the face, warped so the face gets more texels;
    v (rows, -1..1) -> polar angle from the crown (0.05 rad) to theta_max (the upper neck, y ~ -0.2 m).
    The back seam (phi = +-pi) is a chart boundary, like GGHead's 'no back' FLAME layout.
    """
    from ..head_template import skin_radius  # the average SynthHeads skin (shared with the visual hull's proxy)

    R = int(resolution)
    t = (torch.arange(R, dtype=torch.float32) + 0.5) / R * 2 - 1  # texel centres in [-1, 1]
    a = 0.45
    phi = math.pi * (t * (1 - a) + a * t**3)
    theta = 0.05 + (theta_max - 0.05) * (t + 1) / 2
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    d = torch.stack([th.sin() * ph.sin(), th.cos(), th.sin() * ph.cos()], -1)  # [R, R, 3] unit directions
    r = skin_radius(d)
    pos = (d * r[..., None]).permute(2, 0, 1) / world_scale
    return UVTemplate(pos.contiguous(), torch.ones(1, R, R), f"synthheads-average-skin-{R}")


# ---- GGHead's: a mesh with UVs -------------------------------------------------------------------------------
def _read_obj(path: Path):
    """Vertices [V, 3], uvs [T, 2], faces [F, 3] (vertex ids), uv faces [F, 3] from an .obj with uvs."""
    V, T, Fv, Ft = [], [], [], []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"cannot read template mesh {path}: {e}") from e
    for line in lines:
        p = line.split()
        if not p:
            continue
        if p[0] == "v":
            V.append([float(x) for x in p[1:4]])
        elif p[0] == "vt":
            T.append([float(x) for x in p[1:3]])
        elif p[0] == "f":
            if len(p) < 4 or any("/" not in q for q in p[1:]):
                raise FormatError(f"{path}: faces need uv indices (f v/vt v/vt v/vt ...), got {line!r}")
            ids = [q.split("/") for q in p[1:]]
            for k in range(1, len(ids) - 1):  # polygons as triangle fans, as trimesh loads them
                Fv.append([int(ids[j][0]) - 1 for j in (0, k, k + 1)])
                Ft.append([int(ids[j][1]) - 1 for j in (0, k, k + 1)])
    if not V or not T or not Fv:
        raise FormatError(f"{path}: needs vertices (v), uvs (vt) and faces (f)")
    return np.array(V, np.float64), np.array(T, np.float64), np.array(Fv, np.int64), np.array(Ft, np.int64)


def rasterize_uv(vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray, uv_faces: np.ndarray, R: int):
    """Rasterise a UV layout at R x R texel centres ((i + 0.5) / R; u across, v down, no flip, as GGHead's
    ``gen_tritex``): returns position map [3, R, R] (barycentric blend of the triangle's vertices) and valid map
    [1, R, R]. Where triangles overlap, the lower-numbered triangle wins (GGHead paints in reverse order)."""
    centres = (np.arange(R) + 0.5) / R
    pos = np.zeros((R, R, 3))
    valid = np.zeros((R, R), bool)
    tuv = uvs[uv_faces]  # [F, 3, 2]
    for i in range(len(faces) - 1, -1, -1):
        t = tuv[i]
        x0 = max(0, int(t[:, 0].min() * R) - 1)
        x1 = min(R, int(t[:, 0].max() * R) + 2)
        y0 = max(0, int(t[:, 1].min() * R) - 1)
        y1 = min(R, int(t[:, 1].max() * R) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        v0, v1 = t[1] - t[0], t[2] - t[0]
        gx, gy = np.meshgrid(centres[x0:x1], centres[y0:y1])
        v2 = np.stack([gx, gy], -1) - t[0]
        d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
        den = d00 * d11 - d01 * d01
        if den == 0:
            continue
        d20, d21 = v2 @ v0, v2 @ v1
        bv = (d11 * d20 - d01 * d21) / den
        bw = (d00 * d21 - d01 * d20) / den
        bu = 1 - bv - bw
        inside = (bu >= 0) & (bv >= 0) & (bw >= 0)
        if not inside.any():
            continue
        p = bu[..., None] * vertices[faces[i, 0]] + bv[..., None] * vertices[faces[i, 1]] + bw[..., None] * vertices[faces[i, 2]]
        sub = pos[y0:y1, x0:x1]
        sub[inside] = p[inside]
        valid[y0:y1, x0:x1] |= inside & (faces[i] > 0).any()
    return (torch.from_numpy(pos).float().permute(2, 0, 1).contiguous(), torch.from_numpy(valid).float()[None])


def obj_template(path, resolution: int = 256, register_to_bfm: bool = True) -> UVTemplate:
    """GGHead's template from its .obj (FLAME with UVs), registered to GGHead's scaled-BFM frame."""
    path = Path(path)
    V, T, Fv, Ft = _read_obj(path)
    pos, valid = rasterize_uv(V, T, Fv, Ft, int(resolution))
    if register_to_bfm:
        M = FLAME_TO_BFM.float()
        pos = (torch.einsum("ij,jhw->ihw", M[:3, :3], pos) + M[:3, 3, None, None]).contiguous()
    return UVTemplate(pos, valid, f"obj:{path.name}")


def find_flame_template(explicit=None) -> Path:
    """Where GGHead's template .obj is: the argument, $AVAT3R_GGHEAD_TEMPLATE, or weights/gghead_official/."""
    cands = [explicit, os.environ.get(FLAME_TEMPLATE_ENV),
             Path(__file__).resolve().parents[2] / "weights" / "gghead_official" / FLAME_TEMPLATE_NAME]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    raise CheckpointError("GGHead template mesh not found. " + FLAME_TEMPLATE_HELP)
