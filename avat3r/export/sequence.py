"""Animated sequences for external viewers: a zip of one standard 3DGS .ply per frame plus a manifest.

``frames/frame_00000.ply ...`` are exactly what ``Avatar.save_ply`` writes (binary little-endian, metres, y-up
head-centric frame; any 3DGS viewer such as SuperSplat or Spark opens each one; drop the folder on a viewer that
plays .ply sequences). ``manifest.json`` = {"format": "avat3r-ply-sequence", "version": 1, "fps", "frames": [...],
"codes": [T, C], "names": [...], "poses": [T, 3] or null}. With ``poses`` (yaw, pitch, roll degrees of a driving
head) the Gaussians are turned about the head centre, so the files carry the rigid motion too. Written to a
temporary file and moved into place: a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..limits import MAX_SEQUENCE_FRAMES

__all__ = ["FORMAT", "head_rotation", "write_ply_sequence"]

FORMAT = "avat3r-ply-sequence"


def head_rotation(yaw: float, pitch: float, roll: float) -> torch.Tensor:
    """[3, 3] rotation Ry(yaw) Rx(pitch) Rz(roll) in the head-centric frame (degrees; the viewer's YXZ order).
    Pitch + tilts the face up (rotation about +x by -pitch), matching ``drive.features.pose_angles``."""
    from scipy.spatial.transform import Rotation

    r = Rotation.from_euler("YXZ", [yaw, -pitch, roll], degrees=True).as_matrix()
    return torch.as_tensor(r, dtype=torch.float32)


def write_ply_sequence(path, avatar, codes, *, fps: float = 24.0, poses=None, progress=None) -> Path:
    """Avatar + codes [T, C] (+ poses [T, 3]) -> ``path`` (.zip) with T .ply files and manifest.json."""
    from ..head_template import HEAD_BOX_CENTER
    from ..io.images import atomic_save
    from ..io.ply import save_ply

    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise InputError(f"{path}: a .ply sequence is written as a .zip; give a path ending in .zip")
    codes = np.asarray(codes, np.float32)
    space = avatar.expression_space
    if codes.ndim != 2 or codes.shape[1] != space.dim or not 1 <= len(codes) <= MAX_SEQUENCE_FRAMES:
        raise InputError(f"codes must be [T, {space.dim}] with 1 <= T <= {MAX_SEQUENCE_FRAMES}, got {list(codes.shape)}")
    if poses is not None:
        poses = np.asarray(poses, np.float32)
        if poses.shape != (len(codes), 3):
            raise InputError(f"poses must be [T, 3] = [{len(codes)}, 3] (yaw, pitch, roll degrees), got {list(poses.shape)}")
    centre = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    names = [f"frames/frame_{i:05d}.ply" for i in range(len(codes))]

    def _write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
                tempfile.TemporaryDirectory() as work:
            for i, z in enumerate(codes):
                if progress is not None:
                    progress(i / len(codes), f"writing frame {i + 1}/{len(codes)}")
                g = avatar.animate_batch(z[None])[0].to("cpu")
                if poses is not None:
                    g = g.transform(t=-centre).transform(R=head_rotation(*poses[i]), t=centre)
                zf.write(save_ply(Path(work) / "frame.ply", g), names[i])
            manifest = {"format": FORMAT, "version": 1, "fps": float(fps), "frames": names,
                        "names": list(space.names), "codes": np.round(codes, 5).tolist(),
                        "poses": None if poses is None else np.round(poses, 3).tolist(),
                        "ply": "3DGS layout (x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3), metres, y-up"}
            zf.writestr("manifest.json", json.dumps(manifest, indent=1))

    atomic_save(path, _write)
    return path
