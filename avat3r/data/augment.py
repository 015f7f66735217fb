"""Robustness augmentations of SynthHeads training samples: make synthetic inputs err the way real captures do.

Real inputs come from the front end (``avat3r.frontend``): cameras from face landmarks (rotation, focal and
distance errors), GrabCut masks (eroded or dilated edges, holes, background left in, composited on black), phone
photos (lighting, white balance, exposure, sensor noise, blur, JPEG) and portrait crops (zoomed, shifted, the top
of the hair or the chin cut). Each is a switch of ``AugmentConfig`` (all off by default; ``preset("real")`` turns
all on with magnitudes from the front end's measurements in docs/FRONTEND.md). They act on the *inputs* only —
the supervision views stay clean and keep the true cameras, so the network learns to undo the errors — except
lighting, which changes the scene (inputs and targets alike).

Augmentations apply to the training split only unless ``in_eval`` is set, so evaluation data never changes.
Every random draw is a function of (sampler seed, sample index): ``draw_params`` (numpy, per sample) and a
per-sample torch generator on the device for noise fields; the per-sample sampler and the batched engine make
the same draws and apply the same batched functions, so they produce the same samples.

Shapes: images [R, 3, H, W], masks [R, 1, H, W] (R = rows = views of one or many samples).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..cameras import Cameras
from ..errors import InputError
from ..head_template import HEAD_BOX_CENTER

__all__ = ["AugmentConfig", "as_augment_config", "draw_params", "perturb_crops", "perturb_cameras", "perturb_masks",
           "relight", "photometric", "jpeg_compress", "gaussian_blur"]

SWITCHES = ("crop", "camera", "mask", "lighting", "color", "noise", "blur", "jpeg")


@dataclass
class AugmentConfig:
    """Switches (all off) and magnitudes of the input augmentations (see the module docstring)."""

    crop: bool = False                   # portrait-like crops of the input views (zoom, shift, head cut by the frame)
    crop_scale: tuple = (0.8, 1.3)       # crop side factor (< 1 cuts hair / chin, > 1 shows neck and shoulders)
    crop_shift: float = 0.12             # max centre shift, fraction of the crop side
    crop_down: float = 0.05              # mean downward shift (photos frame the face, not the skull)
    camera: bool = False                 # input cameras given to the network err like the front end's
    rot_deg: float = 6.0                 # median rotation error within +-20 deg yaw (FRONTEND.md: 5.9 deg)
    rot_deg_per_deg: float = 0.5         # extra median error per degree of yaw beyond 20 (17-56 deg at +-40..60)
    rot_max_deg: float = 25.0            # never more (wide-yaw photos need given cameras anyway)
    focal_log_std: float = 0.12          # focal length error without EXIF (35 mm default); distance follows it
    trans_mm: float = 4.0                # anchor / landmark errors (1-5 mm in FRONTEND.md)
    mask: bool = False                   # GrabCut-like mask errors (also in the composited input images)
    mask_edge: float = 0.025             # max erosion / dilation, fraction of the image side
    mask_holes: float = 0.3              # probability of holes in a view's mask
    mask_background: float = 0.35        # probability of background left in (real background texture shows)
    lighting: bool = False               # relight the scene (ambient + coloured directional + some specular)
    color: bool = False                  # white balance and exposure per input view
    wb_std: float = 0.08                 # log-gain std per channel
    exposure_ev: float = 0.6             # max |exposure change| in stops
    noise: bool = False                  # sensor noise (shot + read)
    noise_std: float = 0.03              # max std at mid grey
    blur: bool = False                   # defocus / motion-ish Gaussian blur
    blur_sigma: float = 1.2              # max sigma in pixels at 512 px
    jpeg: bool = False                   # JPEG compression (8x8 DCT quantisation, 4:2:0 chroma)
    jpeg_quality: tuple = (35, 95)
    prob: float = 0.7                    # probability that an enabled augmentation acts on a view / sample
    in_eval: bool = False                # also on validation / test splits (off: evaluation data never changes)

    @property
    def any(self) -> bool:
        return any(getattr(self, s) for s in SWITCHES)

    @classmethod
    def preset(cls, name: str) -> "AugmentConfig":
        """"off" (default) or "real" (every switch on, magnitudes as measured for the front end)."""
        if name in ("off", "none", ""):
            return cls()
        if name in ("real", "all", "on"):
            return cls(**{s: True for s in SWITCHES})
        raise InputError(f"augment preset must be 'off' or 'real', got {name!r}")


def as_augment_config(x) -> AugmentConfig:
    """AugmentConfig from itself, None, a preset name, or a dict (JSON / --set data_options.augment.noise=true);
    a dict may name a base preset under "preset"."""
    if isinstance(x, AugmentConfig):
        return x
    if x is None or x is False:
        return AugmentConfig()
    if x is True:
        return AugmentConfig.preset("real")
    if isinstance(x, str):
        return AugmentConfig.preset(x)
    if isinstance(x, dict):
        d = dict(x)
        base = AugmentConfig.preset(d.pop("preset", "off"))
        known = {f.name for f in dataclasses.fields(AugmentConfig)}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"augment options {bad} unknown; known: {sorted(known)}")
        for k, v in d.items():
            setattr(base, k, tuple(v) if isinstance(v, list) else v)
        return base
    raise InputError(f"augment must be a preset name, a dict or AugmentConfig, got {type(x).__name__}")


# ---- random draws (numpy, per sample) ------------------------------------------------------------------------
def draw_params(cfg: AugmentConfig, seed: int, index: int, V: int) -> dict:
    """All random parameters of one sample's augmentations, in a fixed order (switching one augmentation on or
    off never changes the draws of another). Arrays are per input view [V, ...] unless noted."""
    rng = np.random.default_rng([int(seed), int(index), 0xA06])
    p = cfg.prob
    on = lambda n=V: rng.random(n) < p  # noqa: E731
    out = {
        "crop_on": on(), "crop_scale": rng.uniform(*cfg.crop_scale, V), "crop_shift": rng.uniform(-1, 1, (V, 2)),
        "cam_on": on(), "rot_axis": rng.normal(size=(V, 3)), "rot_u": rng.random(V),
        "focal": np.exp(rng.normal(0, 1, V) * cfg.focal_log_std), "trans": rng.normal(0, 1, (V, 3)) * cfg.trans_mm * 1e-3,
        "edge_on": on(), "edge": rng.uniform(-1, 1, V), "holes_on": rng.random(V) < cfg.mask_holes * p,
        "bg_on": rng.random(V) < cfg.mask_background * p,
        "light_on": on(1), "ambient": rng.uniform(0.35, 0.8), "ambient_rgb": np.exp(rng.normal(0, 0.08, 3)),
        "light_dir": rng.normal(size=3) + np.array([0.0, 0.6, 1.2]), "light_rgb": np.exp(rng.normal(0, 0.12, 3)),
        "diffuse": rng.uniform(0.3, 1.0), "specular": rng.uniform(0.0, 0.25), "shininess": rng.uniform(8, 40),
        "color_on": on(), "wb": np.exp(rng.normal(0, cfg.wb_std, (V, 3))), "ev": rng.uniform(-1, 1, V) * cfg.exposure_ev,
        "noise_on": on(), "noise": rng.uniform(0, cfg.noise_std, V),
        "blur_on": on(), "blur": rng.uniform(0, cfg.blur_sigma, V),
        "jpeg_on": on(), "jpeg_q": rng.uniform(*cfg.jpeg_quality, V),
        "torch_seed": int(rng.integers(2**62)),
    }
    return out


# ---- cameras -------------------------------------------------------------------------------------------------
def perturb_crops(cams: Cameras, prm: dict, cfg: AugmentConfig) -> Cameras:
    """Portrait-like crops of V square input cameras (before rendering: the images follow the new K)."""
    if not cfg.crop:
        return cams
    size = int(cams.width[0])
    boxes = []
    for v in range(len(cams)):
        if not prm["crop_on"][v]:
            boxes.append([0.0, 0.0, float(size), float(size)])  # the plain head crop
            continue
        s, (dx, dy) = float(prm["crop_scale"][v]), prm["crop_shift"][v]
        side = s * size
        cx = size / 2 + dx * cfg.crop_shift * size
        cy = size / 2 + (dy * cfg.crop_shift + cfg.crop_down) * size
        boxes.append([cx - side / 2, cy - side / 2, side, side])
    return cams.crop_resize(torch.tensor(boxes, dtype=torch.float32), size)


def _axis_angle(axis: np.ndarray, deg: float) -> torch.Tensor:
    a = axis / max(np.linalg.norm(axis), 1e-9)
    t = math.radians(deg)
    Kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return torch.as_tensor(np.eye(3) + math.sin(t) * Kx + (1 - math.cos(t)) * Kx @ Kx, dtype=torch.float32)


def perturb_cameras(cams: Cameras, prm: dict, cfg: AugmentConfig) -> Cameras:
    """The cameras a front end would estimate for V input views: a rotation error about the head (growing with
    the view's yaw), a focal error with the distance scaled alike (the crop framing stays), a small translation.
    The images are not touched: only what the network is told about them."""
    if not cfg.camera:
        return cams
    dev = cams.device
    c = cams.to("cpu")
    h = torch.as_tensor(HEAD_BOX_CENTER, dtype=torch.float32)
    rel = c.centers - h
    yaw = torch.rad2deg(torch.atan2(rel[:, 0], rel[:, 2])).abs().numpy()
    K, W = c.K.clone(), c.world_to_cam.clone()
    for v in range(len(c)):
        if not prm["cam_on"][v]:
            continue
        med = cfg.rot_deg + cfg.rot_deg_per_deg * max(0.0, float(yaw[v]) - 20.0)
        # half-normal with that median: |N(0, s)|, s = med / 0.6745 (inverse CDF of the uniform draw)
        u = float(prm["rot_u"][v])
        deg = min(cfg.rot_max_deg, med / 0.6745 * math.sqrt(2) * _erfinv(u))
        T = torch.eye(4)
        Rerr = _axis_angle(prm["rot_axis"][v], deg)
        T[:3, :3] = Rerr
        T[:3, 3] = h - Rerr @ h
        w2c = W[v] @ T
        f = float(prm["focal"][v])
        hc = w2c[:3, :3] @ h + w2c[:3, 3]
        w2c[:3, 3] = w2c[:3, 3] + (f - 1) * hc + w2c[:3, :3] @ torch.as_tensor(prm["trans"][v], dtype=torch.float32)
        W[v] = w2c
        K[v, 0, 0] *= f
        K[v, 1, 1] *= f
    return Cameras(K, W, c.width, c.height).to(dev)


def _erfinv(u: float) -> float:
    return float(torch.special.erfinv(torch.tensor(u, dtype=torch.float64)))


# ---- scene lighting (Gaussian colours, before rendering) ----------------------------------------------------
def quat_normals(quats: torch.Tensor) -> torch.Tensor:
    """Third axis of each Gaussian's rotation (the flat Gaussians' surface normal): [..., 4] wxyz -> [..., 3]."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], -1)


def relight(colors: torch.Tensor, quats: torch.Tensor, prms: list[dict], rows: list[int], cfg: AugmentConfig) -> torch.Tensor:
    """colors [R, N, 3] of R rows (each row = one view's Gaussians of sample ``rows[r]`` of ``prms``) ->
    relit colours: coloured ambient + a coloured directional light + a little specular sheen (view-independent,
    towards the front). Samples whose draw is off keep their colours."""
    if not cfg.lighting:
        return colors
    dev = colors.device
    keep = [not prms[s]["light_on"][0] for s in rows]
    if all(keep):
        return colors
    f = lambda k: torch.as_tensor(np.stack([np.asarray(prms[s][k], np.float32) for s in rows]), device=dev)  # noqa: E731
    amb, amb_rgb, ldir, lrgb = f("ambient"), f("ambient_rgb"), F.normalize(f("light_dir"), dim=-1), f("light_rgb")
    dif, spec, shin = f("diffuse"), f("specular"), f("shininess")
    n = quat_normals(quats.to(colors.dtype))                                   # [R, N, 3]
    ndl = (n * ldir[:, None]).sum(-1).clamp(min=0)                            # [R, N]
    half = F.normalize(ldir + torch.tensor([0.0, 0.0, 1.0], device=dev), dim=-1)
    ndh = (n * half[:, None]).sum(-1).clamp(min=0)
    # normalised so the average brightness stays about the same (the base colours already carry soft shading)
    gain = (amb[:, None, None] * amb_rgb[:, None] + dif[:, None, None] * lrgb[:, None] * ndl[..., None]) / (amb + 0.5 * dif)[:, None, None]
    out = colors * gain + (spec[:, None] * ndh ** shin[:, None])[..., None] * lrgb[:, None]
    k = torch.as_tensor(keep, device=dev)[:, None, None]
    return torch.where(k, colors, out.clamp(0, 1))


# ---- masks (after rendering) --------------------------------------------------------------------------------
def _smooth_noise(gen: torch.Generator, shape, size: tuple, device) -> torch.Tensor:
    """Low-frequency noise [R, C, H, W] in about [-1.5, 1.5] (bilinear upsampling of a coarse normal field)."""
    z = torch.randn(*shape, generator=gen, device=device)
    return F.interpolate(z, size=size, mode="bicubic", align_corners=False)


def perturb_masks(images: torch.Tensor, masks: torch.Tensor, prms: list[dict], cfg: AugmentConfig,
                  gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """GrabCut-like errors: images [S*V, 3, H, W] (rendered on black), masks [S*V, 1, H, W] of S samples ->
    (composited images, estimated masks). Dilated / left-in regions show a background texture; eroded and holed
    regions turn black (the front end composites photos on black with its mask)."""
    if not cfg.mask:
        return images, masks
    R, _, H, W = masks.shape
    V = R // len(prms)
    dev = masks.device
    cat = lambda k: np.concatenate([np.asarray(p[k]) for p in prms])  # noqa: E731
    fields = torch.cat([_smooth_noise(g, (V, 6, 6, 6), (H, W), dev) for g in gens])  # [R, 6, H, W]
    # erosion / dilation: box-blur the mask, threshold anywhere in (0, 1)
    r = max(1, int(round(cfg.mask_edge * max(H, W))))
    blur = F.avg_pool2d(masks, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    e = torch.as_tensor(cat("edge"), dtype=masks.dtype, device=dev)[:, None, None, None]
    thr = (0.5 - 0.49 * e)                        # e = +1: dilate by r, -1: erode by r
    edged = ((blur - thr) / 0.04 + 0.5).clamp(0, 1)
    on = torch.as_tensor(cat("edge_on"), device=dev)[:, None, None, None]
    m = torch.where(on, edged, masks)
    holes = (fields[:, :1] > 1.5).float() * torch.as_tensor(cat("holes_on"), device=dev, dtype=m.dtype)[:, None, None, None]
    m = m * (1 - holes)
    # background left in: blobs at the silhouette's border reaching outwards
    near = F.max_pool2d(masks, 2 * (4 * r) + 1, stride=1, padding=4 * r)
    left = (fields[:, 1:2] > 0.6).float() * near * torch.as_tensor(cat("bg_on"), device=dev, dtype=m.dtype)[:, None, None, None]
    m = torch.maximum(m, left)
    bg = (0.45 + 0.25 * fields[:, 2:3] + 0.06 * fields[:, 3:6]).clamp(0, 1)  # mostly grey walls, a little colour
    photo = images + (1 - masks) * bg               # what the camera saw: the head over a real background
    return photo * m, m


# ---- photometric (input images, after masks) ----------------------------------------------------------------
def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Per-image Gaussian blur: images [R, C, H, W], sigma [R] pixels (< 0.05 = unchanged), one grouped conv.
    max_sigma fixes the kernel size (so an image's result does not depend on the others'); default sigma.max()."""
    R, C, H, W = images.shape
    smax = float(sigma.max()) if max_sigma is None else float(max_sigma)
    if smax <= 0.05:
        return images
    k = 2 * int(math.ceil(3 * smax)) + 1
    x = torch.arange(k, device=images.device, dtype=images.dtype) - k // 2
    s = sigma.to(images).clamp(min=1e-3)[:, None]
    w = torch.exp(-0.5 * (x[None] / s) ** 2)
    w = w / w.sum(-1, keepdim=True)
    w = torch.where((sigma.to(images) < 0.05)[:, None], (x == 0).to(w).expand_as(w), w)
    w = w.repeat_interleave(C, 0)  # [R*C, k]
    y = images.reshape(1, R * C, H, W)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0), mode="replicate"), w[:, None, None, :], groups=R * C)
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="replicate"), w[:, None, :, None], groups=R * C)
    return y.reshape(R, C, H, W)


_QY = torch.tensor([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
                    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
_QC = torch.full((8, 8), 99.0)
_QC[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32)


def _dct_matrix(device, dtype) -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    D = torch.cos((2 * n[None] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    D[0] /= math.sqrt(2)
    return D.to(device=device, dtype=dtype)


def jpeg_compress(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy part on the device: YCbCr, 4:2:0 chroma, 8x8 DCT quantised with the standard tables scaled by
    quality [R] (libjpeg's rule). images [R, 3, H, W] in [0, 1] -> same shape."""
    R, _, H, W = images.shape
    dev, dt = images.device, images.dtype
    ph, pw = (-H) % 16, (-W) % 16
    x = F.pad(images, (0, pw, 0, ph), mode="replicate") * 255
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    q = quality.to(device=dev, dtype=dt).clamp(1, 100)
    s = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]
    D = _dct_matrix(dev, dt)

    def code(ch, table):
        Rr, h, w = ch.shape
        Q = ((table.to(dev, dt)[None] * s + 50) / 100).floor().clamp(1, 255)[:, None, None]  # [R, 1, 1, 8, 8]
        blocks = (ch - 128).reshape(Rr, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
        coef = D @ blocks @ D.T
        coef = torch.round(coef / Q) * Q
        return (D.T @ coef @ D).permute(0, 1, 3, 2, 4).reshape(Rr, h, w) + 128

    y = code(y, _QY)
    sub = lambda c: F.avg_pool2d(c[:, None], 2)[:, 0]  # noqa: E731
    up = lambda c: F.interpolate(c[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    cb, cr = up(code(sub(cb), _QC)), up(code(sub(cr), _QC))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    out = torch.stack([r, g, b], 1)[:, :, :H, :W] / 255
    return out.clamp(0, 1)


def photometric(images: torch.Tensor, prms: list[dict], cfg: AugmentConfig, gens: list[torch.Generator]) -> torch.Tensor:
    """Blur -> white balance and exposure -> sensor noise -> JPEG on input images [S*V, 3, H, W] of S samples."""
    if not (cfg.blur or cfg.color or cfg.noise or cfg.jpeg):
        return images
    R, _, H, W = images.shape
    dev, dt = images.device, images.dtype
    cat = lambda k: torch.as_tensor(np.concatenate([np.asarray(p[k]) for p in prms]), device=dev)  # noqa: E731
    x = images
    if cfg.blur:
        sig = torch.where(cat("blur_on"), cat("blur").to(dt) * max(H, W) / 512, torch.zeros((), device=dev, dtype=dt))
        x = gaussian_blur(x, sig, cfg.blur_sigma * max(H, W) / 512)
    if cfg.color:
        gain = cat("wb").to(dt) * (2.0 ** cat("ev").to(dt))[:, None]
        gain = torch.where(cat("color_on")[:, None], gain, torch.ones_like(gain))
        x = (x * gain[:, :, None, None]).clamp(0, 1)
    if cfg.noise:
        V = R // len(prms)
        z = torch.cat([torch.randn(V, 3, H, W, generator=g, device=dev, dtype=dt) for g in gens])
        sd = torch.where(cat("noise_on"), cat("noise").to(dt), torch.zeros((), device=dev, dtype=dt))[:, None, None, None]
        x = (x + sd * (0.3 + 1.4 * x).sqrt() * z).clamp(0, 1)   # shot noise grows with brightness
    if cfg.jpeg:
        y = jpeg_compress(x, cat("jpeg_q").to(dt))
        x = torch.where(cat("jpeg_on")[:, None, None, None], y, x)
    return x
