"""The front end's entry point: raw photos or video frames -> a posed, masked, head-centric Capture.

(A capture folder is read by ``avat3r.data.capture_folder.read_capture_folder``, never here: the front end is for
raw photos and video frames only.)

Steps per view (each in its own module): load (``load``), find the person's face and 68 landmarks (``faces``),
camera from landmarks by PnP against the 3D template (``pose``, ``landmark_template``), head-centric square crop
with K kept consistent (``crop``), background mask (``mask``), and a report with a preview image (``preview``).
Views that cannot be used are listed in ``failures`` with a message saying what to do; an error is raised only
when no view is usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cameras import Cameras
from ..capture import Capture, camera_mismatch, load_mask, select_view_indices
from ..errors import InputError
from .crop import crop_square, head_crop_box, head_outside_fraction
from .load import Photo, is_video, load_photo, read_video_candidates, view_names
from .mask import MaskConfig, head_mask
from .pose import DEFAULT_FOCAL_35MM, azimuth_elevation, intrinsics_from_focal35, solve_pose

__all__ = ["FrontendConfig", "FrontendResult", "Failure", "ViewInfo", "prepare"]


@dataclass
class FrontendConfig:
    """Settings of the front end (defaults suit phone photos and the 256 px model).

    detect_size: long side of the copy the face detector sees; use_cnn / try_rotations: fallbacks when HOG finds
    no upright face; focal_35mm: force a focal length (else EXIF, else DEFAULT_FOCAL_35MM); crop_scale: >1 gives
    more margin around the head; min_face_px: smaller faces are refused; max_cut_off: a view whose head box reaches
    this far (fraction) past the photo's edge is refused; identity_threshold: dlib embedding distance above which
    two faces are different people; video_candidates: frames decoded from a video to choose views from;
    background: RGB that replaces the masked-out background in Capture.images (None keeps the photo's pixels)."""

    detect_size: int = 640
    use_cnn: bool = True
    try_rotations: bool = True
    focal_35mm: float | None = None
    crop_scale: float = 1.0
    min_face_px: float = 40.0
    max_cut_off: float = 0.45
    identity_threshold: float = 0.6
    video_candidates: int = 24
    background: tuple[float, float, float] | None = (0.0, 0.0, 0.0)
    mask: MaskConfig = field(default_factory=MaskConfig)


@dataclass
class Failure:
    """An input view that was not used: its position (0-based), name and the message saying what to do."""

    index: int
    name: str
    message: str


@dataclass
class ViewInfo:
    """What the front end found for one kept view (all pixel values in the upright full photo unless noted).

    quarter_turns: the photo was turned by np.rot90(k) to find the face; box: crop (x0, y0, w, h);
    landmarks_crop [68, 2] in crop pixels (None when cameras were given); reprojection_px: weighted RMS landmark
    reprojection error in photo pixels; K_full / world_to_cam: the camera of the upright full photo."""

    name: str
    source_index: int
    frame_index: int | None
    quarter_turns: int
    box: np.ndarray
    K_full: np.ndarray
    world_to_cam: np.ndarray
    landmarks_crop: np.ndarray | None = None
    face_px: float | None = None
    reprojection_px: float | None = None
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    focal_source: str = "given"
    identity_distance: float | None = None
    landmark_residuals_px: np.ndarray | None = None  # [68] per-landmark reprojection error, photo pixels


@dataclass
class FrontendResult:
    """capture: the posed, masked, head-centric views; report: what was done, one message a line; preview:
    [H, W, 3] uint8 grid (crops, landmarks, masks, camera top view); failures: views not used and why;
    views: per-view details; raw_crops [V, S, S, 3]: the crops before the background was replaced."""

    capture: Capture
    report: list[str]
    preview: np.ndarray
    failures: list[Failure]
    views: list[ViewInfo]
    raw_crops: np.ndarray


# ---- the typed records the steps pass along -----------------------------------------------------------------
@dataclass
class _Inputs:
    """The inputs as views: sources (paths, PIL, arrays or decoded frames), names, frame indices (videos)."""

    srcs: list
    names: list[str]
    frames: list[int | None]
    video: bool

    def label(self, i: int) -> str:
        """How messages name view i: "photo 2 of 4 (b.jpg)" or "frame 120"."""
        if self.video:
            return f"frame {self.frames[i]}"
        extra = f" ({Path(self.srcs[i]).name})" if isinstance(self.srcs[i], (str, os.PathLike)) else ""
        return f"photo {i + 1} of {len(self.srcs)}{extra}"


@dataclass
class Candidate:
    """One usable view on its way through the steps: the upright photo, its camera (given, or estimated from the
    face's landmarks) and what was found. K [3, 3] and w2c [4, 4] belong to the upright full photo."""

    index: int
    photo: Photo
    K: np.ndarray
    w2c: np.ndarray
    quarter_turns: int = 0
    face: Any = None  # faces.Face, None when cameras were given
    focal_source: str = "given"
    rms: float | None = None
    identity_distance: float | None = None
    residuals: np.ndarray | None = None
    outside: dict = field(default_factory=dict)  # fraction of the head box past each edge of the photo


@dataclass
class _Identity:
    """Whose face: the largest in the first usable photo, then the same person by identity embedding."""

    face: Any = None
    image: np.ndarray | None = None
    embedding: np.ndarray | None = None
    label: str | None = None


def _as_list(inputs) -> list:
    if isinstance(inputs, (str, os.PathLike, bytes)) or isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3):
        return [inputs]
    if hasattr(inputs, "size") and hasattr(inputs, "mode"):  # a PIL image
        return [inputs]
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        return list(inputs)
    return list(inputs)


# ---- the steps ---------------------------------------------------------------------------------------------
def prepare(
    inputs,
    *,
    size: int = 256,
    cameras: Cameras | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
    max_views: int = 8,
    config: FrontendConfig | None = None,
) -> FrontendResult:
    """Turn 1..n photos (paths, PIL images, HxWx3 arrays) or a video path into a Capture of at most ``max_views``
    head-centric size x size views with masks and cameras (a capture folder goes to ``read_capture_folder``).

    cameras: Cameras of the (upright) input photos in the head-centric frame: used instead of estimating them
    (no face detector needed). masks: one [H, W] foreground mask (or None) per photo, used instead of GrabCut.
    Raises InputError when no view is usable (the message lists why each failed).

    Steps: gather the inputs -> per view load -> detect + pose (or the given camera) -> check cut-off -> choose
    views -> crop + mask -> report."""
    cfg = config or FrontendConfig()
    if size < 16:
        raise InputError(f"size must be at least 16 pixels, got {size}")
    report: list[str] = []
    failures: list[Failure] = []
    inp = _gather(inputs, cameras, masks, cfg, report)
    detector = None
    if cameras is None:
        from .faces import FaceDetector

        detector = FaceDetector(cfg.detect_size, cfg.use_cnn, cfg.try_rotations)  # raises, naming what to install
    cands: list[Candidate] = []
    ident = _Identity()
    for i, src in enumerate(inp.srcs):
        try:
            photo = _load(inp, i, src, masks, report)
            cand = (_given_pose(inp, i, photo, cameras) if cameras is not None
                    else _detect_pose(inp, i, photo, detector, ident, cfg, report))
        except _Skip as e:
            failures.append(Failure(i, inp.names[i], str(e)))
            continue
        cands.append(cand)
    kept = []
    for c in cands:
        try:
            kept.append(_check_cut_off(inp, c, cfg))
        except _Skip as e:
            failures.append(Failure(c.index, inp.names[c.index], str(e)))
    if not kept:
        msgs = "\n  ".join(f.message for f in failures)
        raise InputError(f"no usable {'frame' if inp.video else 'image'} among {len(inp.srcs)}:\n  {msgs}")
    if len(kept) > max_views:
        kept = _diverse(kept, max_views)
        report.append(f"kept {max_views} of {len(cands)} usable {'frames' if inp.video else 'views'}, chosen for the "
                      "most different head poses")
    views = [_crop_and_mask(inp, c, size, masks, cfg, report) for c in kept]
    return _result(inp, views, size, cameras, masks, failures, report)


class _Skip(Exception):
    """A view that cannot be used; its message says what to do (it becomes a Failure)."""


def _gather(inputs, cameras, masks, cfg: FrontendConfig, report: list[str]) -> _Inputs:
    """Photos or a video -> the views to consider (a video: ``cfg.video_candidates`` evenly spaced frames)."""
    if isinstance(inputs, (str, os.PathLike)) and Path(inputs).is_dir():
        raise InputError(f"{Path(inputs).name} is a folder: give photo files, or read a capture folder with "
                         "avat3r.data.capture_folder.read_capture_folder (Pipeline.reconstruct does)")
    if is_video(inputs):
        if cameras is not None:
            raise InputError("cameras cannot be given with a video (frames are chosen automatically); give the frames "
                             "as images with their cameras, or a capture folder")
        frames, frames_idx, fps = read_video_candidates(inputs, cfg.video_candidates, name=f"video {Path(inputs).name}")
        report.append(f"video {Path(inputs).name}: sampled {len(frames)} frames of {frames_idx[-1] + 1}+ at {fps:.0f} fps "
                      "to choose views with different head poses")
        inp = _Inputs(frames, [f"frame{i:05d}" for i in frames_idx], list(frames_idx), True)
    else:
        srcs = _as_list(inputs)
        if not srcs:
            raise InputError("no images given: pass 1 to 8 photos or a video file")
        inp = _Inputs(srcs, view_names(srcs), [None] * len(srcs), False)
    n = len(inp.srcs)
    if cameras is not None and len(cameras) != n:
        raise InputError(f"got {len(cameras)} cameras for {n} images: give one camera per image (same order)")
    if masks is not None and len(masks) != n:
        raise InputError(f"got {len(masks)} masks for {n} images: give one mask (or None) per image")
    return inp


def _load(inp: _Inputs, i: int, src, masks, report: list[str]) -> Photo:
    """Load view i (a decoded frame is used as is) and say what is special about it."""
    label = inp.label(i)
    if inp.video:
        return Photo(src.astype(np.float32) / 255.0, inp.names[i])
    try:
        photo = load_photo(src, label)
    except InputError as e:
        raise _Skip(str(e)) from None
    H, W = photo.image.shape[:2]
    if "original_size" in photo.meta:
        ow, oh = photo.meta["original_size"]
        report.append(f"{label} is {ow}x{oh} ({ow * oh / 1e6:.0f} MP): reduced to {W}x{H} for speed "
                      "(the head crop needs no more)")
    if photo.grayscale:
        report.append(f"{label} is grayscale: the avatar's colours will be grey in views it covers")
    if photo.alpha is not None and masks is None and photo.alpha.min() < 0.5:
        report.append(f"{label} has a transparent background: its alpha channel is used as the mask")
    return photo


def _given_pose(inp: _Inputs, i: int, photo: Photo, cameras: Cameras) -> Candidate:
    """The given camera of view i (scaled like the photo when it was reduced on loading)."""
    H, W = photo.image.shape[:2]
    cam_i = cameras[i]
    if "original_size" in photo.meta and tuple(photo.meta["original_size"]) == (int(cam_i.width[0]), int(cam_i.height[0])):
        cam_i = cam_i.resize(W, H)  # the photo was reduced on loading: K follows
    problem = camera_mismatch(cam_i, 0, H, W, inp.label(i))
    if problem:
        raise _Skip(problem)
    return Candidate(i, photo, cam_i.K[0].double().numpy(), cam_i.world_to_cam[0].double().numpy())


def _detect_pose(inp: _Inputs, i: int, photo: Photo, detector, ident: _Identity, cfg: FrontendConfig,
                 report: list[str]) -> Candidate:
    """Find the person's face (turning the photo if needed), check it, and solve the camera from its landmarks."""
    label, video = inp.label(i), inp.video
    img = photo.image
    faces, k = detector.detect(img, fallbacks=not video)
    if not faces:
        raise _Skip(f"no face found in {label}: use a photo where the face is visible and at least 80 pixels wide "
                    "(the back or side of a head, cartoons and covered faces are not detected), or give cameras and "
                    "masks with a capture folder")
    if k:
        img = np.ascontiguousarray(np.rot90(img, k))
        photo.image = img
        if photo.alpha is not None:
            photo.alpha = np.ascontiguousarray(np.rot90(photo.alpha, k))
        report.append(f"{label}: the face was found only after turning the photo by {90 * k} degrees "
                      "(missing orientation tag?); it is used turned")
    H, W = img.shape[:2]
    face, dist = _whose_face(label, video, img, faces, detector, ident, cfg, report)
    if face.width < cfg.min_face_px:
        raise _Skip(f"the face in {label} is too small ({face.width:.0f} px wide): use a photo where the face is at "
                    "least 80 pixels wide (closer, or higher resolution)")
    if face.detector == "cnn":
        report.append(f"warning: the face in {label} was found only by the slower CNN detector (a head turned far to "
                      "the side, or an unusual face): its camera estimate is uncertain, since the landmarks are "
                      "reliable up to about 30-40 degrees of head turn")
    if cfg.focal_35mm is not None:
        f35, fsrc = cfg.focal_35mm, "config"
    elif photo.focal_35mm is not None:
        f35, fsrc = photo.focal_35mm, "exif"
    else:
        f35, fsrc = DEFAULT_FOCAL_35MM, "default"
    K = intrinsics_from_focal35(f35, W, H)
    pose = solve_pose(face.landmarks, K)
    iod = float(np.linalg.norm(face.landmarks[42:48].mean(0) - face.landmarks[36:42].mean(0)))
    if pose.rms > 0.35 * max(iod, 1.0):
        raise _Skip(f"the landmarks found in {label} do not fit a human face (error {pose.rms:.0f} px; a cartoon, "
                    "drawing or a strongly turned head?): use a photo of a real face seen from the front or side, or "
                    "give cameras with a capture folder")
    return Candidate(i, photo, K, pose.world_to_cam, k, face, fsrc, pose.rms, dist, pose.residuals)


def _whose_face(label: str, video: bool, img: np.ndarray, faces: list, detector, ident: _Identity,
                cfg: FrontendConfig, report: list[str]):
    """The face to use among ``faces`` -> (face, identity distance to the reference or None)."""
    face, dist = faces[0], None
    if ident.face is None:
        ident.face, ident.image, ident.label = face, img, label
        if len(faces) > 1:
            c = face.box.reshape(2, 2).mean(0)
            report.append(f"{label}: {len(faces)} faces found; using the largest (centred at x={c[0]:.0f}, "
                          f"y={c[1]:.0f}, {face.width:.0f} px wide) and the same person in the other photos")
        return face, dist
    if len(faces) > 1 or not video:
        if ident.embedding is None:
            ident.embedding = detector.embedding(ident.image, ident.face)
        dists = [float(np.linalg.norm(detector.embedding(img, f) - ident.embedding)) for f in faces]
        j = int(np.argmin(dists))
        face, dist = faces[j], dists[j]
        if len(faces) > 1:
            if dist > cfg.identity_threshold:
                raise _Skip(f"{label}: none of its {len(faces)} faces matches the person in {ident.label} (best "
                            f"identity distance {dist:.2f} > {cfg.identity_threshold}); use photos of one person, or "
                            "crop this photo to that person")
            report.append(f"{label}: {len(faces)} faces found; using the one that matches {ident.label} "
                          f"(identity distance {dist:.2f})")
        elif dist > cfg.identity_threshold and not video:
            report.append(f"warning: the face in {label} may be a different person than in {ident.label} "
                          f"(identity distance {dist:.2f} > {cfg.identity_threshold}); use photos of one person")
    return face, dist


def _check_cut_off(inp: _Inputs, c: Candidate, cfg: FrontendConfig) -> Candidate:
    """Refuse a view whose face is cut by the photo's edge, or whose head box lies too far outside the photo."""
    label = inp.label(c.index)
    H, W = c.photo.image.shape[:2]
    out = head_outside_fraction(c.K, c.w2c, W, H)
    worst = max(out, key=out.get)
    if c.face is not None:  # the face itself cut by the photo's edge: its landmarks are guesses
        lm, tol = c.face.landmarks, 0.05 * c.face.width
        past = {"left": -lm[:, 0].min(), "right": lm[:, 0].max() - W, "top": -lm[:, 1].min(), "bottom": lm[:, 1].max() - H}
        side = max(past, key=past.get)
        if past[side] > tol:
            raise _Skip(f"the face is cut off at the {side} edge of {label}: use a photo that shows the whole head "
                        "with some space around it")
    if out[worst] > cfg.max_cut_off and c.face is None:  # given cameras: the camera, not the photo, is suspect
        raise _Skip(f"the given camera of {label} puts about {100 * out[worst]:.0f}% of the head outside the image "
                    f"(past its {worst} edge): check its K (focal length and principal point in pixels of this image) "
                    "and world_to_cam (head-centric, OpenCV)")
    if out[worst] > cfg.max_cut_off:
        raise _Skip(f"the head is cut off at the {worst} edge of {label} (about {100 * out[worst]:.0f}% of it is "
                    "outside the photo): use a photo that shows the whole head with some space around it")
    c.outside = out
    return c


@dataclass
class _View:
    """One chosen view after crop + mask: the crop with background replaced, its mask, the raw crop, its camera."""

    crop: np.ndarray
    mask: np.ndarray
    raw: np.ndarray
    K: Any
    w2c: Any
    info: ViewInfo


def _crop_and_mask(inp: _Inputs, c: Candidate, size: int, masks, cfg: FrontendConfig, report: list[str]) -> _View:
    """The head-centric square crop of a chosen view, its camera and mask (given, alpha, or GrabCut)."""
    i, photo = c.index, c.photo
    label = inp.label(i)
    img = photo.image
    H, W = img.shape[:2]
    worst = max(c.outside, key=c.outside.get)
    if c.outside[worst] > 0.08:
        report.append(f"{label}: the head reaches past the {worst} edge (about {100 * c.outside[worst]:.0f}%); "
                      "the missing part is left empty")
    box = head_crop_box(c.K, c.w2c, cfg.crop_scale)
    crop, valid = crop_square(img, box, size)
    cam = Cameras(c.K[None], c.w2c[None], W, H).crop_resize(box[None], size)
    Kc = cam.K[0].double().numpy()
    lm_crop = None if c.face is None else (c.face.landmarks - box[:2]) * (size / box[2])
    given = None
    if masks is not None and masks[i] is not None:
        given = masks[i]
    elif photo.alpha is not None and photo.alpha.min() < 0.5:
        given = photo.alpha
    if given is not None:
        m = _photo_mask(given, label, (H, W), c.quarter_turns, photo.meta.get("original_size"))
        mask = crop_square(m[..., None], box, size)[0][..., 0] * valid
    else:
        mask = head_mask(crop, Kc, c.w2c, lm_crop, valid, cfg.mask)
    raw = crop
    if cfg.background is not None:
        bg = np.asarray(cfg.background, np.float32)
        crop = crop * mask[..., None] + bg * (1 - mask[..., None])
    az, el = azimuth_elevation(c.w2c)
    info = ViewInfo(inp.names[i], i, inp.frames[i], c.quarter_turns, box, c.K, c.w2c, lm_crop,
                    None if c.face is None else c.face.width, c.rms, az, el, c.focal_source, c.identity_distance,
                    c.residuals)
    if box[2] < 0.6 * size:
        report.append(f"{label}: the head spans only {box[2]:.0f} px; the {size} px crop is upsampled "
                      f"{size / box[2]:.1f}x and will look soft (use a higher-resolution photo)")
    return _View(crop, mask, raw, cam.K[0], cam.world_to_cam[0], info)


def _result(inp: _Inputs, views: list[_View], size: int, cameras, masks, failures: list[Failure],
            report: list[str]) -> FrontendResult:
    """The Capture of the chosen views, the closing report lines and the preview."""
    import torch

    infos = [v.info for v in views]
    cams = Cameras(torch.stack([v.K for v in views]), torch.stack([v.w2c for v in views]), size, size)
    capture = Capture(np.stack([v.crop for v in views]).astype(np.float32), cams, [v.name for v in infos],
                      np.stack([v.mask for v in views]).astype(np.float32),
                      meta={"frontend": {"size": size, "views": [_info_dict(v) for v in infos]}})
    if cameras is None:
        fs = sorted({v.focal_source for v in infos})
        if "default" in fs:
            report.append(f"no focal length in the photos' EXIF: assumed a {DEFAULT_FOCAL_35MM:.0f} mm-equivalent lens")
        azs = [v.azimuth_deg for v in infos]
        report.append("cameras estimated from face landmarks: azimuth " + ", ".join(f"{a:+.0f}" for a in azs)
                      + " deg (0 = frontal, + = subject's left); landmark error "
                      + ", ".join(f"{v.reprojection_px:.1f}" for v in infos) + " px")
        if len(infos) > 1 and max(azs) - min(azs) < 20:
            report.append("the views are all from about the same direction: photos from the sides (turn the head "
                          "30-60 degrees) give a better avatar")
    else:
        report.append("cameras: given" + ("; masks: given" if masks is not None and all(m is not None for m in masks)
                                          else "; masks: GrabCut seeded by the cameras"))
    for f in failures:
        report.append(f"skipped: {f.message}")
    report.append(f"capture: {len(infos)} views of {size}x{size} px")
    from .preview import preview_grid

    raws = [v.raw for v in views]
    return FrontendResult(capture, report, preview_grid(capture, infos, raws), failures, infos,
                          np.stack(raws).astype(np.float32))


def _photo_mask(src, name: str, hw: tuple[int, int], k: int, original_size=None) -> np.ndarray:
    """A given mask (``capture.load_mask``) turned like its photo, and reduced like it when the photo was reduced
    on loading (``original_size`` = (W, H) before) -> [H, W] float32 in [0, 1]."""
    m = load_mask(src, f"the mask of {name}")
    if k:
        m = np.rot90(m, k)
    if original_size is not None and m.shape == (original_size[1], original_size[0]) and m.shape != hw:
        import cv2

        m = cv2.resize(np.ascontiguousarray(m, np.float32), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    if m.shape != hw:
        raise InputError(f"the mask of {name} is {m.shape[1]}x{m.shape[0]} but the image is {hw[1]}x{hw[0]}: "
                         "give masks at the image's size")
    return np.ascontiguousarray(m, dtype=np.float32)


def _diverse(cands: list[Candidate], k: int) -> list[Candidate]:
    """At most k candidates with the most different head poses (``capture.select_view_indices``; ties, as in a
    video of a still head, go to the better landmark fit); keeps input order."""
    idx = select_view_indices(np.stack([c.w2c for c in cands]), k, [c.rms or 0.0 for c in cands])
    return [cands[j] for j in idx]


def _info_dict(v: ViewInfo) -> dict:
    return {
        "name": v.name, "source_index": v.source_index, "frame_index": v.frame_index, "quarter_turns": v.quarter_turns,
        "crop_box": [float(x) for x in v.box], "azimuth_deg": round(v.azimuth_deg, 2),
        "elevation_deg": round(v.elevation_deg, 2), "focal_source": v.focal_source,
        "reprojection_px": None if v.reprojection_px is None else round(v.reprojection_px, 3),
        "identity_distance": None if v.identity_distance is None else round(v.identity_distance, 3),
    }
