"""Ava-256 loader (the paper's training data): one subject folder -> head-centric Captures.

Layout (4TB version; see facebookresearch/ava-256 ``download.py`` and ``data/ava_dataset.py``)::

    m--<date>--<time>--<SID>--GHS/decoder/
      camera_calibration.json   {"KRT": [{"cameraId": "400940", "K": 3x3 TRANSPOSED, "T": 4x4 TRANSPOSED
                                          (rows 0..2 of its transpose = [R | t] world->camera, millimetres),
                                          "distortion": [...]}, ...]}   intrinsics at full 2668 x 4096 resolution
      frame_list.csv            header "seg_id,frame_id" (e.g. EXP_jaw003,000123)
      head_pose/head_pose.zip   "<frame:06d>.txt": 3x4 (or 4x4) head -> world transform, millimetres
      image/cam<id>.zip         "cam<id>/<frame:06d>.avif" (1024 x 667 in the 4TB version)

Conversions: K and T are transposed back; K is rescaled from the full calibration resolution to the stored
image size (which must have the same aspect ratio); millimetres -> metres; the frame's head pose is folded into
the cameras (paper supp. C: "head poses factored into the camera poses"), so the head is in canonical pose at
the origin. ``canonical`` maps Ava-256's head frame into the project's head-centric frame (default: identity;
set it once after checking the tracked mesh's axes). Lens distortion is ignored (small for these lenses).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..cameras import Cameras
from ..capture import Capture
from ..errors import FormatError, InputError
from .dome import HEAD_RADIUS, head_crops

FULL_W, FULL_H = 2668, 4096  # resolution the Ava-256 intrinsics refer to


def _read_zip_member(zpath: Path, member: str) -> bytes:
    if not zpath.exists():
        raise FormatError(f"{zpath}: file not found (expected in the Ava-256 decoder layout)")
    try:
        with zipfile.ZipFile(zpath) as z:
            try:
                return z.read(member)
            except KeyError:
                raise FormatError(f"{zpath}: has no member {member!r}") from None
    except zipfile.BadZipFile as e:
        raise FormatError(f"{zpath}: corrupt or not a zip file ({e}); re-download it") from None


def load_ava_calibration(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """camera_calibration.json -> {camera id: (K [3, 3] at full resolution, world_to_cam [4, 4] in metres)}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        items = data["KRT"]
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found; an Ava-256 subject needs decoder/camera_calibration.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"{path}: expected {{\"KRT\": [{{\"cameraId\", \"K\", \"T\"}}, ...]}} ({e!r})") from None
    out = {}
    for i, item in enumerate(items):
        try:
            cid = str(item["cameraId"])
            K = np.asarray(item["K"], np.float64).T        # stored transposed
            T = np.asarray(item["T"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{path}: KRT entry {i} is malformed ({e!r}); needs cameraId, K (3x3), T (4x4)") from None
        if K.shape != (3, 3) or T.shape != (4, 4) or not (np.isfinite(K).all() and np.isfinite(T).all()):
            raise FormatError(f"{path}: camera {cid}: K must be 3x3 and T 4x4 finite matrices, got {K.shape}, {T.shape}")
        Rt = T[:4, :3].T                                   # stored transposed: [R | t] after transposing
        w2c = np.eye(4)
        w2c[:3, :3] = Rt[:, :3]
        w2c[:3, 3] = Rt[:, 3] / 1000.0                     # mm -> m
        out[cid] = (K, w2c)
    if not out:
        raise FormatError(f"{path}: no cameras in KRT")
    return out


def _head_pose(zpath: Path, frame: int) -> np.ndarray:
    raw = _read_zip_member(zpath, f"{frame:06d}.txt")
    try:
        M = np.loadtxt(io.BytesIO(raw), dtype=np.float64)
    except ValueError as e:
        raise FormatError(f"{zpath}:{frame:06d}.txt: not a numeric matrix ({e})") from None
    if M.shape not in ((3, 4), (4, 4)) or not np.isfinite(M).all():
        raise FormatError(f"{zpath}:{frame:06d}.txt: head pose must be a 3x4 or 4x4 matrix, got {M.shape}")
    H = np.eye(4)
    H[:3] = M[:3]
    H[:3, 3] /= 1000.0
    R = H[:3, :3]
    if abs(np.linalg.det(R) - 1) > 1e-2:
        raise FormatError(f"{zpath}:{frame:06d}.txt: rotation part is not a rotation (det {np.linalg.det(R):.3f})")
    return H


class Ava256Subject:
    """One Ava-256 subject. ``capture(frame, cameras, size)`` -> head-centric Capture (cropped when size given)."""

    def __init__(self, root, canonical: np.ndarray | None = None):
        root = Path(root)
        self.dir = root / "decoder" if (root / "decoder").is_dir() else root
        if not self.dir.is_dir():
            raise FormatError(f"{root}: not a directory (expected an Ava-256 m--*--GHS folder or its decoder/)")
        self.calib = load_ava_calibration(self.dir / "camera_calibration.json")
        self.camera_ids = list(self.calib)
        fl = self.dir / "frame_list.csv"
        try:
            with fl.open(newline="") as f:
                rows = list(csv.DictReader(f))
        except FileNotFoundError:
            raise FormatError(f"{fl}: file not found; an Ava-256 subject needs decoder/frame_list.csv") from None
        if not rows or "seg_id" not in rows[0] or "frame_id" not in rows[0]:
            raise FormatError(f"{fl}: expected a header 'seg_id,frame_id' and at least one row")
        try:
            self.frames = [(r["seg_id"], int(r["frame_id"])) for r in rows]
        except (TypeError, ValueError):
            raise FormatError(f"{fl}: frame_id must be integers") from None
        self.canonical = np.eye(4) if canonical is None else np.asarray(canonical, np.float64)

    def segments(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for s, f in self.frames:
            out.setdefault(s, []).append(f)
        return out

    def image(self, frame: int, camera_id: str) -> np.ndarray:
        """[H, W, 3] float32 of one camera at one frame (AVIF inside image/cam<id>.zip)."""
        zp = self.dir / "image" / f"cam{camera_id}.zip"
        raw = _read_zip_member(zp, f"cam{camera_id}/{frame:06d}.avif")
        try:
            im = Image.open(io.BytesIO(raw))
            im.load()
        except Exception as e:  # PIL raises several types for undecodable data
            raise FormatError(f"{zp}:cam{camera_id}/{frame:06d}.avif: cannot decode the image ({e})") from None
        return np.asarray(im.convert("RGB"), np.float32) / 255.0

    def cameras(self, frame: int, camera_ids, width: int, height: int) -> Cameras:
        """Cameras for images of width x height at ``frame`` with the head pose folded in (head-centric)."""
        if abs(width / height - FULL_W / FULL_H) > 0.01:
            raise FormatError(f"{self.dir}: images are {width}x{height} but the calibration is for {FULL_W}x{FULL_H} "
                              "(different aspect ratio): K cannot be rescaled; check the image files")
        Hp = _head_pose(self.dir / "head_pose" / "head_pose.zip", frame) @ np.linalg.inv(self.canonical)
        Ks, w2cs = [], []
        for cid in camera_ids:
            if cid not in self.calib:
                raise InputError(f"{self.dir}: unknown camera id {cid!r}; known: {self.camera_ids[:8]}...")
            K, w2c = self.calib[cid]
            K = K.copy()
            K[0] *= width / FULL_W
            K[1] *= height / FULL_H
            Ks.append(K)
            w2cs.append(w2c @ Hp)  # x_world = Hp x_head  ->  x_cam = w2c Hp x_head
        return Cameras(np.stack(Ks), np.stack(w2cs), width, height)

    def capture(self, frame: int, camera_ids=None, size: int | None = None) -> Capture:
        """Images of ``camera_ids`` (default: all) at ``frame``; with ``size`` cropped to head-centric squares."""
        if frame not in {f for _, f in self.frames}:
            raise InputError(f"{self.dir}: frame {frame} is not in frame_list.csv")
        camera_ids = [str(c) for c in camera_ids] if camera_ids is not None else self.camera_ids
        unknown = [c for c in camera_ids if c not in self.calib]
        if unknown:
            raise InputError(f"{self.dir}: unknown camera id(s) {unknown}; known: {self.camera_ids[:8]}...")
        imgs = [self.image(frame, c) for c in camera_ids]
        h, w = imgs[0].shape[:2]
        for c, im in zip(camera_ids, imgs):
            if im.shape[:2] != (h, w):
                raise FormatError(f"{self.dir}/image/cam{c}.zip: frame {frame} is {im.shape[1]}x{im.shape[0]}, others {w}x{h}")
        cams = self.cameras(frame, camera_ids, w, h)
        names = [f"cam{c}" for c in camera_ids]
        seg = next(s for s, f in self.frames if f == frame)
        if size is None:
            return Capture(np.stack(imgs), cams, names, meta={"frame": frame, "segment": seg})
        crop = head_crops(cams, size, radius=HEAD_RADIUS)
        out = np.stack([warp_to_camera(im, cams[i], crop[i]) for i, im in enumerate(imgs)])
        return Capture(out, crop, names, meta={"frame": frame, "segment": seg})


def warp_to_camera(img: np.ndarray, src: Cameras, dst: Cameras) -> np.ndarray:
    """Resample img [H, W, 3] seen by camera src into camera dst (same pose, different K): crop + resize,
    black outside the source frame."""
    import cv2

    A = (src.K[0] @ torch.linalg.inv(dst.K[0])).numpy().astype(np.float64)  # dst pixel -> src pixel
    w, h = int(dst.width[0]), int(dst.height[0])
    # pixel centres at +0.5 in both conventions
    M = A[:2].copy()
    M[:, 2] += M[:, 0] * 0.5 + M[:, 1] * 0.5 - 0.5
    out = cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(h, w, -1).astype(np.float32)


# ---- training samples (same interface as avat3r.data.sampler) ------------------------------------------
_INPUT_SEGMENTS = ("EXP_eye_wide", "EXP_tongue001", "EXP_jaw003")  # paper supp. C: extreme input timesteps
HOLDOUT = 12


def _subject_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if (root / "decoder").is_dir() or (root / "camera_calibration.json").exists():
        return [root]
    subs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("m--")) if root.is_dir() else []
    if not subs:
        raise FormatError(f"{root}: no Ava-256 subject folders (m--*--GHS) found")
    return subs


class Ava256Dataset(torch.utils.data.Dataset):
    """Ava-256 samples with the keys of ``avat3r.data.sampler`` (inputs, prior, targets, cameras, codes).

    Subjects: sorted ``m--*--GHS`` folders under ``root``; the last 12 are the hold-out ("test"/"validation")
    split, the rest "train" (the paper trains on 244 and holds out 12). Inputs: V cameras by k-farthest sampling
    among non-back cameras, each at its own frame (from the EXP_eye_wide / EXP_tongue001 / EXP_jaw003 segments when
    present); targets: T random cameras at one random frame. Masks: non-black pixels (the paper replaces the
    background with black); expression codes: ``codes[subject dir name][frame]`` when given (e.g. from an Ava-256
    expression autoencoder), else zeros of ``expression_dim`` (Ava-256 ships none)."""

    def __init__(self, root, split: str = "train", num_inputs: int = 4, num_targets: int = 8, input_size: int = 512,
                 target_size: int = 667, consistent_inputs: bool = False, prior: str = "visual_hull", seed: int = 0,
                 length: int = 1_000_000, codes: dict | None = None, expression_dim: int = 256, device="cpu", **_):
        from ..priors.visual_hull import VisualHullConfig

        subs = _subject_dirs(Path(root))
        hold = subs[-HOLDOUT:] if len(subs) > HOLDOUT else subs[-1:]
        self.subject_dirs = [s for s in subs if s not in hold] if split == "train" and len(subs) > 1 else hold
        if split not in ("train", "validation", "test"):
            raise InputError(f"Ava256Dataset: unknown split {split!r}; use train, validation or test")
        self.subjects: dict[Path, Ava256Subject] = {}
        self.V, self.T, self.size_in, self.size_t = num_inputs, num_targets, input_size, target_size
        self.consistent, self.prior, self.seed, self.length = consistent_inputs, prior, seed, length
        self.codes, self.expression_dim, self.device = codes or {}, expression_dim, torch.device(device)
        self.hull = VisualHullConfig()

    def __len__(self) -> int:
        return self.length

    def _subject(self, d: Path) -> Ava256Subject:
        if d not in self.subjects:
            self.subjects[d] = Ava256Subject(d)
        return self.subjects[d]

    def _code(self, d: Path, frame: int) -> np.ndarray:
        table = self.codes.get(d.name)
        if table is None:
            return np.zeros(self.expression_dim, np.float32)
        if frame not in table:
            raise InputError(f"expression codes for {d.name} have no frame {frame}")
        return np.asarray(table[frame], np.float32)

    def __getitem__(self, index: int) -> dict:
        from ..cameras import k_farthest_viewpoints
        from ..priors.visual_hull import visual_hull_maps
        from .dome import back_only

        rng = np.random.default_rng([self.seed, int(index), 0xA256])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        d = self.subject_dirs[int(rng.integers(len(self.subject_dirs)))]
        subj = self._subject(d)
        segs = subj.segments()
        pool = [f for s in _INPUT_SEGMENTS for f in segs.get(s, [])] or [f for _, f in subj.frames]
        all_frames = [f for _, f in subj.frames]
        f_in = [int(rng.choice(pool))] * self.V if self.consistent else [int(x) for x in rng.choice(pool, self.V)]
        f_t = int(rng.choice(all_frames))
        cams_t0 = subj.cameras(f_t, subj.camera_ids, FULL_W // 4, FULL_H // 4)
        allowed = ~back_only(cams_t0)
        in_ids = k_farthest_viewpoints(cams_t0.centers, self.V, n_candidates=max(10, self.V), allowed=allowed, generator=gen)
        tg_ids = torch.randperm(len(subj.camera_ids), generator=gen)[: self.T].tolist()
        ins = [subj.capture(f, [subj.camera_ids[i]], self.size_in) for f, i in zip(f_in, in_ids)]
        tgt = subj.capture(f_t, [subj.camera_ids[i] for i in tg_ids], self.size_t)
        img_in = torch.as_tensor(np.concatenate([c.images for c in ins]))
        cam_in = Cameras.cat([c.cameras for c in ins])
        m_in = (img_in.amax(-1) > 4 / 255).float()
        img_t = torch.as_tensor(tgt.images)
        m_t = (img_t.amax(-1) > 4 / 255).float()
        if self.prior == "visual_hull":
            pos, conf = visual_hull_maps(m_in.to(self.device), cam_in, self.hull)
        elif self.prior == "none":
            pos, conf = torch.zeros(*m_in.shape, 3), m_in
        else:
            raise InputError(f"Ava256Dataset: prior {self.prior!r} is not available for real data (no ground-truth depth)")
        dev = self.device
        return {
            "input_images": img_in.permute(0, 3, 1, 2).contiguous().to(dev),
            "input_masks": m_in[:, None].to(dev),
            "input_cameras": cam_in.to(dev),
            "prior_positions": pos.permute(0, 3, 1, 2).contiguous().to(dev),
            "prior_confidence": conf[:, None].to(dev),
            "target_images": img_t.permute(0, 3, 1, 2).contiguous().to(dev),
            "target_masks": m_t[:, None].to(dev),
            "target_cameras": tgt.cameras.to(dev),
            "target_expression": torch.as_tensor(self._code(d, f_t), device=dev),
            "input_expressions": torch.as_tensor(np.stack([self._code(d, f) for f in f_in]), device=dev),
            "identity_seed": self.subject_dirs.index(d),
            "index": int(index),
            "input_camera_ids": torch.as_tensor(in_ids),
            "target_camera_ids": torch.as_tensor(tg_ids),
        }
