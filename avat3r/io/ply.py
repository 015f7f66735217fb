"""3D Gaussian Splatting .ply files (the layout of Kerbl et al.'s reference code).

Binary little-endian, one ``vertex`` element, no faces, float32 properties:
``x y z nx ny nz f_dc_0..2 [f_rest_0..44] opacity scale_0..2 rot_0..3`` with scales stored as log, opacity as
logit, colour as the SH DC coefficient (rgb = 0.5 + 0.282095 * f_dc) and rot as a wxyz quaternion.

Our world frame is y-up (``avat3r.cameras``), which y-up viewers such as Gradio's Model3D show right side up.
``orientation="y_down"`` rotates 180 degrees about x for viewers that expect the COLMAP/3DGS y-down frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, InputError
from ..gaussians import SH_C0, Gaussians
from ..limits import MAX_PLY_HEADER_BYTES, MAX_PLY_VERTICES
from .images import atomic_save

_REQUIRED = ["x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_PLY_TYPES = {
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
    "char": "i1", "int8": "i1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
}
_FLIP_Y_DOWN = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # 180 degrees about x


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def gaussians_to_ply_array(g: Gaussians, include_f_rest: bool = False) -> np.ndarray:
    """Gaussians -> structured float32 array in the 3DGS layout (also what a viewer would read)."""
    g = g.detach().to("cpu", torch.float64)
    n = len(g)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(45)] if include_f_rest else []
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    out = np.zeros(n, dtype=[(k, "<f4") for k in names])
    for i, k in enumerate("xyz"):
        out[k] = g.means[:, i].numpy()
    f_dc = (g.colors.numpy() - 0.5) / SH_C0
    for i in range(3):
        out[f"f_dc_{i}"] = f_dc[:, i]
    out["opacity"] = _logit(g.opacities.numpy())
    log_s = np.log(np.maximum(g.scales.numpy(), 1e-12))
    q = g.quats
    norm = q.norm(dim=-1, keepdim=True)
    q = torch.where((norm - 1).abs() > 1e-6, q / norm, q).numpy()  # already-unit quats stay bit-exact
    for i in range(3):
        out[f"scale_{i}"] = log_s[:, i]
    for i in range(4):
        out[f"rot_{i}"] = q[:, i]
    return out


def save_ply(path, gaussians: Gaussians, *, orientation: str = "y_up", include_f_rest: bool = False) -> Path:
    """Write a standard 3DGS .ply atomically. Raises InputError for invalid Gaussians (NaN, bad scales...)."""
    path = Path(path)
    gaussians.validate(where=f"{path}")
    if orientation == "y_down":
        gaussians = gaussians.transform(R=_FLIP_Y_DOWN.to(gaussians.means.dtype).to(gaussians.device))
    elif orientation != "y_up":
        raise InputError(f"orientation must be 'y_up' or 'y_down', got {orientation!r}")
    arr = gaussians_to_ply_array(gaussians, include_f_rest)
    header = "ply\nformat binary_little_endian 1.0\ncomment avat3r 3D Gaussians, y-up, metres\n"
    header += f"element vertex {len(arr)}\n"
    header += "".join(f"property float {k}\n" for k in arr.dtype.names)
    header += "end_header\n"

    def _write(tmp):
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(arr.tobytes())

    atomic_save(path, _write)
    return path


def read_ply_array(path) -> np.ndarray:
    """Read the vertex element of a binary little-endian .ply -> structured numpy array.

    Every malformation of the header (bad counts, unknown types, repeated properties, a short body) is a
    FormatError naming the file and the line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_PLY_HEADER_BYTES)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a folder; give a .ply file") from None
    end = head.find(b"end_header\n")
    if not head.startswith(b"ply") or end < 0:
        raise FormatError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header' within the first "
                          f"{MAX_PLY_HEADER_BYTES // 1024} KB); give a 3D Gaussian .ply")
    lines = head[:end].decode("ascii", errors="replace").splitlines()
    fmt_line = next((ln.split() for ln in lines if ln.startswith("format")), None)
    fmt = fmt_line[1] if fmt_line and len(fmt_line) > 1 else None
    if fmt != "binary_little_endian":
        raise FormatError(f"{path}: PLY format {fmt!r} is not supported; expected binary_little_endian (3DGS layout)")
    n, props, in_vertex, seen_vertex = None, [], False, False
    for ln in lines:
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise FormatError(f"{path}: malformed header line {ln[:80]!r}; expected 'element <name> <count>'")
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                if seen_vertex:
                    raise FormatError(f"{path}: more than one 'vertex' element in the header")
                seen_vertex = True
                n = int(parts[2])
                if n > MAX_PLY_VERTICES:
                    raise FormatError(f"{path}: header says {n} vertices; at most {MAX_PLY_VERTICES} are read")
            elif n is None and int(parts[2]) > 0:
                raise FormatError(f"{path}: element {parts[1]!r} comes before 'vertex'; the 3DGS layout stores the "
                                  "vertices first")
        elif parts[0] == "property" and in_vertex:
            if len(parts) != 3 or parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise FormatError(f"{path}: unsupported vertex property line {ln[:80]!r}; expected 'property <type> <name>'")
            if any(parts[2] == k for k, _ in props):
                raise FormatError(f"{path}: vertex property {parts[2]!r} is listed twice")
            props.append((parts[2], "<" + _PLY_TYPES[parts[1]]))
    if n is None:
        raise FormatError(f"{path}: no 'vertex' element; a 3DGS .ply stores one vertex per Gaussian")
    if not props:
        raise FormatError(f"{path}: the 'vertex' element has no properties")
    dtype = np.dtype(props)
    start = end + len(b"end_header\n")
    size = path.stat().st_size - start
    if size < n * dtype.itemsize:
        raise FormatError(f"{path}: file is truncated: header says {n} vertices ({n * dtype.itemsize} bytes), found {size} bytes")
    with open(path, "rb") as f:
        f.seek(start)
        body = f.read(n * dtype.itemsize)
    return np.frombuffer(body, dtype=dtype, count=n)


def load_ply(path, *, orientation: str = "y_up") -> Gaussians:
    """Read a 3DGS .ply -> Gaussians (activated). Raises FormatError naming any missing property."""
    arr = read_ply_array(path)
    names = set(arr.dtype.names)
    missing = [k for k in _REQUIRED if k not in names]
    has_dc = all(f"f_dc_{i}" in names for i in range(3))
    has_rgb = all(k in names for k in ("red", "green", "blue"))
    if missing or not (has_dc or has_rgb):
        what = missing + ([] if (has_dc or has_rgb) else ["f_dc_0..2 (or red/green/blue)"])
        raise FormatError(f"{path}: not a 3D Gaussian .ply: missing properties {what}; expected x y z f_dc_0..2 opacity scale_0..2 rot_0..3")
    col = lambda k: torch.from_numpy(arr[k].astype(np.float64))  # noqa: E731
    means = torch.stack([col(k) for k in "xyz"], -1)
    if has_dc:
        colors = 0.5 + SH_C0 * torch.stack([col(f"f_dc_{i}") for i in range(3)], -1)
    else:
        colors = torch.stack([col(k) for k in ("red", "green", "blue")], -1)
        if arr["red"].dtype == np.uint8:
            colors = colors / 255.0
    g = Gaussians(
        means=means.float(),
        quats=torch.stack([col(f"rot_{i}") for i in range(4)], -1).float(),
        scales=torch.exp(torch.stack([col(f"scale_{i}") for i in range(3)], -1)).float(),
        opacities=torch.sigmoid(col("opacity")).float(),
        colors=colors.float(),
    )
    try:
        g.validate(where=str(path))
    except InputError as e:
        raise FormatError(str(e)) from None
    if orientation == "y_down":
        g = g.transform(R=_FLIP_Y_DOWN.T)
    return g
