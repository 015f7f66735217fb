"""EG3D's tri-plane generator (Chan et al. 2022; the 3D GAN the Avat3r paper lifts single photos with, Sec. 4.5):
StyleGAN2 mapping + synthesis producing a 256^2 x 96 image read as three 32-channel feature planes, EG3D's
``OSGDecoder`` + importance renderer giving a low-resolution feature image (its first three channels are the raw
RGB), and a StyleGAN2-block super-resolution network conditioned on the last w. Written from NVlabs/eg3d
(``training/triplane.py``, ``superresolution.py``, ``volumetric_rendering/``); module and tensor names match the
original one for one, so ``load.py`` maps a checkpoint's state dict without renaming.

The StyleGAN2 layers are ours (``avat3r.generate.layers``, shared with GGHead), in fp32: EG3D runs its
super-resolution in fp16 on a GPU (``sr_num_fp16_res``); the clamp that goes with it (256) is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError
from ...generate.layers import (
    MappingNetwork,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
    setup_filter,
)
from .volume import ImportanceRenderer, OSGDecoder, ray_bundle

__all__ = ["EG3DConfig", "EG3DGenerator", "SuperResolution", "SynthesisBlockNoUp", "SR_MODULES", "eg3d_camera",
           "look_at_label"]

#: EG3D's super-resolution variants: input resolution, the two blocks (up-sampling?, out channels, resolution),
#: output resolution, whether the input is resized only when smaller, whether antialias applies, and whether the
#: module holds its own (unused) ``resample_filter`` buffer.
SR_MODULES = {
    "SuperresolutionHybrid2X": dict(inp=64, blocks=((False, 128, 64), (True, 64, 128)), out=128, only_up=False, aa=True, buf=True),
    "SuperresolutionHybrid4X": dict(inp=128, blocks=((False, 128, 128), (True, 64, 256)), out=256, only_up=True, aa=True, buf=True),
    "SuperresolutionHybridDeepfp32": dict(inp=128, blocks=((False, 128, 128), (True, 64, 256)), out=256, only_up=True, aa=False, buf=True),
    "SuperresolutionHybrid8X": dict(inp=128, blocks=((True, 128, 256), (True, 64, 512)), out=512, only_up=False, aa=True, buf=True),
    "SuperresolutionHybrid8XDC": dict(inp=128, blocks=((True, 256, 256), (True, 128, 512)), out=512, only_up=False, aa=True, buf=False),
}


@dataclass
class EG3DConfig:
    """A TriPlaneGenerator's constructor arguments and rendering options (EG3D's ``rendering_kwargs``).
    Defaults: the FFHQ 512 model (``ffhq512-128.pkl``)."""

    z_dim: int = 512
    c_dim: int = 25
    w_dim: int = 512
    img_resolution: int = 512
    img_channels: int = 3
    mapping_layers: int = 2
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None
    sr_module: str = "SuperresolutionHybrid8XDC"
    sr_num_fp16_res: int = 4
    sr_antialias: bool = True
    sr_noise_mode: str = "none"
    neural_rendering_resolution: int = 128
    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    ray_start: float | str = 2.25
    ray_end: float | str = 3.3
    box_warp: float = 1.0
    disparity_space_sampling: bool = False
    white_back: bool = False
    density_noise: float = 0.0
    clamp_mode: str = "softplus"
    c_gen_conditioning_zero: bool = False
    c_scale: float = 1.0
    decoder_lr_mul: float = 1.0
    avg_camera_radius: float = 2.7
    avg_camera_pivot: list = field(default_factory=lambda: [0.0, 0.0, 0.2])
    preset: str = "eg3d-ffhq512"

    def __post_init__(self):
        if self.sr_module not in SR_MODULES:
            raise CheckpointError(f"EG3D super-resolution module {self.sr_module!r} is not implemented; known: {sorted(SR_MODULES)}")
        if self.clamp_mode != "softplus":
            raise CheckpointError(f"EG3D clamp_mode {self.clamp_mode!r}: only 'softplus' exists in EG3D's renderer")
        if SR_MODULES[self.sr_module]["out"] != self.img_resolution:
            raise CheckpointError(f"{self.sr_module} produces {SR_MODULES[self.sr_module]['out']} px, the config says "
                                  f"img_resolution {self.img_resolution}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EG3DConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class SynthesisBlockNoUp(nn.Module):
    """EG3D's super-resolution block without up-sampling: conv0 -> conv1 -> torgb added to the incoming image
    (which is not resampled). ws [B, 3, w_dim]."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None, use_noise: bool = True):
        super().__init__()
        self.register_buffer("resample_filter", setup_filter((1, 3, 3, 1)))
        kw = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, use_noise=use_noise)
        self.conv0 = SynthesisLayer(in_channels, out_channels, **kw)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **kw)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv, self.num_torgb = 2, 1

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "none"):
        w = ws.unbind(1)
        x = self.conv0(x, w[0], noise_mode=noise_mode)
        x = self.conv1(x, w[1], noise_mode=noise_mode)
        y = self.torgb(x, w[2]).to(torch.float32)
        return x, (img + y if img is not None else y)


class SuperResolution(nn.Module):
    """Raw RGB [B, 3, r, r] + feature image [B, C, r, r] + ws -> image [B, 3, R, R] (one of ``SR_MODULES``): both
    are resized to the module's input resolution, then two StyleGAN2 blocks driven by the last w add detail."""

    def __init__(self, kind: str, channels: int = 32, w_dim: int = 512, img_channels: int = 3,
                 conv_clamp: float | None = None, antialias: bool = True):
        super().__init__()
        spec = SR_MODULES[kind]
        self.kind, self.input_resolution, self.only_up = kind, spec["inp"], spec["only_up"]
        self.antialias = antialias and spec["aa"]
        cin = channels
        for i, (up, cout, res) in enumerate(spec["blocks"]):
            cls = SynthesisBlock if up else SynthesisBlockNoUp
            setattr(self, f"block{i}", cls(cin, cout, w_dim, res, img_channels, conv_clamp=conv_clamp))
            cin = cout
        if spec["buf"]:
            self.register_buffer("resample_filter", setup_filter((1, 3, 3, 1)))

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, noise_mode: str = "none") -> torch.Tensor:
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        r = self.input_resolution
        if (x.shape[-1] < r) if self.only_up else (x.shape[-1] != r):
            kw = dict(size=(r, r), mode="bilinear", align_corners=False)
            if self.antialias:
                kw["antialias"] = True
            x, rgb = F.interpolate(x, **kw), F.interpolate(rgb, **kw)
        x, rgb = self.block0(x, rgb, ws, noise_mode=noise_mode)
        x, rgb = self.block1(x, rgb, ws, noise_mode=noise_mode)
        return rgb


class _Backbone(nn.Module):
    """EG3D's ``StyleGAN2Backbone`` container: ``synthesis`` (256^2, 96 channels) and ``mapping``."""

    def __init__(self, cfg: EG3DConfig):
        super().__init__()
        self.synthesis = SynthesisNetwork(cfg.w_dim, 256, 32 * 3, channel_base=cfg.channel_base,
                                          channel_max=cfg.channel_max, conv_clamp=cfg.conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, num_layers=cfg.mapping_layers,
                                      embed_features=cfg.mapping_embed_features, layer_features=cfg.mapping_layer_features,
                                      lr_multiplier=cfg.mapping_lr_multiplier)


class EG3DGenerator(nn.Module):
    """z [B, z_dim] + camera label c [B, 25] (cam2world 4x4 flattened, then normalised intrinsics 3x3) ->
    {'image' [B, 3, R, R], 'image_raw' [B, 3, r, r], 'image_depth' [B, 1, r, r], 'planes' [B, 3, 32, 256, 256],
    'feature_image' [B, 32, r, r], 'weights' [B, 1, r, r] (opacity)}; images in [-1, 1]."""

    def __init__(self, cfg: EG3DConfig):
        super().__init__()
        self.config = cfg
        self.backbone = _Backbone(cfg)
        self.num_ws = self.backbone.num_ws
        self.superresolution = SuperResolution(cfg.sr_module, 32, cfg.w_dim, cfg.img_channels,
                                               conv_clamp=256 if cfg.sr_num_fp16_res > 0 else None,
                                               antialias=cfg.sr_antialias)
        self.decoder = OSGDecoder(32, 32, lr_multiplier=cfg.decoder_lr_mul)
        self.renderer = ImportanceRenderer(cfg.depth_resolution, cfg.depth_resolution_importance, cfg.ray_start,
                                           cfg.ray_end, cfg.box_warp, cfg.disparity_space_sampling, cfg.white_back,
                                           cfg.density_noise)

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff=None) -> torch.Tensor:
        """z [B, z_dim], c [B, 25] -> ws [B, num_ws, w_dim]."""
        if self.config.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.config.c_scale, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> triplanes [B, 3, 32, 256, 256]."""
        p = self.backbone.synthesis(ws, noise_mode=noise_mode)
        return p.view(len(p), 3, 32, p.shape[-2], p.shape[-1])

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  noise_mode: str = "const", planes: torch.Tensor | None = None) -> dict:
        """ws [B, num_ws, w_dim], c [B, 25] -> the output dict (see the class). ``planes``: reuse triplanes."""
        r = int(neural_rendering_resolution or self.config.neural_rendering_resolution)
        origins, dirs = ray_bundle(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), r)
        if planes is None:
            planes = self.planes(ws, noise_mode=noise_mode)
        feats, depth, weights = self.renderer(planes, self.decoder, origins, dirs)
        N = len(ws)
        feature_image = feats.permute(0, 2, 1).reshape(N, feats.shape[-1], r, r).contiguous()
        rgb = feature_image[:, :3]
        sr = self.superresolution(rgb, feature_image, ws, noise_mode=self.config.sr_noise_mode)
        return {"image": sr, "image_raw": rgb, "image_depth": depth.permute(0, 2, 1).reshape(N, 1, r, r),
                "planes": planes, "feature_image": feature_image, "weights": weights.permute(0, 2, 1).reshape(N, 1, r, r)}

    def forward(self, z, c, truncation_psi: float = 1.0, truncation_cutoff=None, neural_rendering_resolution=None,
                noise_mode: str = "const") -> dict:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        out = self.synthesis(ws, c, neural_rendering_resolution, noise_mode)
        out["ws"] = ws
        return out


def eg3d_camera(yaw_deg, pitch_deg, cfg: EG3DConfig | None = None, radius: float | None = None,
                fov_deg: float = 18.837) -> torch.Tensor:
    """EG3D's camera label c [B, 25] as its ``gen_samples.py`` builds it: ``LookAtPoseSampler.sample(pi/2 + yaw,
    pi/2 + pitch, pivot, radius)`` (cam2world, OpenCV axes, in EG3D's world) and ``FOV_to_intrinsics(fov)``
    (normalised; EG3D's formula, its 1.414 factor included). yaw 0, pitch 0: the frontal view."""
    cfg = cfg or EG3DConfig()
    radius = cfg.avg_camera_radius if radius is None else radius
    pivot = torch.tensor(cfg.avg_camera_pivot, dtype=torch.float32)
    h = np.pi / 2 + torch.as_tensor(yaw_deg, dtype=torch.float32).reshape(-1, 1) * np.pi / 180
    v = (np.pi / 2 + torch.as_tensor(pitch_deg, dtype=torch.float32).reshape(-1, 1) * np.pi / 180).clamp(1e-5, np.pi - 1e-5)
    phi = torch.arccos(1 - 2 * v / np.pi)
    origin = torch.cat([radius * torch.sin(phi) * torch.cos(np.pi - h), radius * torch.cos(phi),
                        radius * torch.sin(phi) * torch.sin(np.pi - h)], 1)  # [B, 3], on a sphere around 0 (sic)
    return look_at_label(origin, pivot, fov_deg)


def look_at_label(origin: torch.Tensor, target: torch.Tensor, fov_deg: float = 18.837) -> torch.Tensor:
    """Camera centres [B, 3] looking at ``target`` without roll (EG3D's ``create_cam2world_matrix``, OpenCV axes,
    y up in the world) + ``FOV_to_intrinsics(fov)`` -> labels [B, 25]."""
    forward = F.normalize(target - origin, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0]).expand_as(forward)
    right = -F.normalize(torch.cross(up, forward, dim=-1), dim=-1)
    up = F.normalize(torch.cross(forward, right, dim=-1), dim=-1)
    m = torch.eye(4).repeat(len(origin), 1, 1)
    m[:, :3, :3] = torch.stack([right, up, forward], -1)
    m[:, :3, 3] = origin
    f = float(1 / (np.tan(fov_deg * 3.14159 / 360) * 1.414))
    K = torch.tensor([[f, 0, 0.5], [0, f, 0.5], [0, 0, 1.0]]).expand(len(origin), 3, 3)
    return torch.cat([m.reshape(-1, 16), K.reshape(-1, 9)], 1)
