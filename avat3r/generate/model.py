"""The GGHead generator (Kirschstein et al. 2024, "GGHead: Fast and Generalizable 3D Gaussian Heads", Sec. 3).

    z [B, z_dim], c [B, 25] --mapping (8 FC, lr x0.01)--> w [B, num_ws, w_dim]
        --StyleGAN2 synthesis ('skip', no super-resolution)--> UV maps [B, 22, R, R]
        --bilinear sampling at the template's UV grid--> raw attributes [B, G, 22]
        --activations--> Gaussians on the template surface (position = template + offset) --> splat render

One Gaussian per UV grid site; the image is the splat render itself (no neural upsampling). The camera label c
is EG3D's: cam-to-world [16] (OpenCV axes) + intrinsics normalised by the image size [9].

Activations follow GGHead's ``_apply_gaussian_attribute_activation`` with its released settings, including one
quirk kept for fidelity: GGHead converts the Rodrigues vector to a quaternion (w, x, y, z) and then reorders it as
if it were (x, y, z, w), so the renderer receives (z, w, x, y). Weights trained with that convention need it.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..cameras import Cameras
from ..gaussians import SH_C0, Gaussians
from .config import GGHeadConfig
from .layers import MappingNetwork, SynthesisNetwork
from .template import UVTemplate, sample_template, synthheads_template, uv_grid

__all__ = ["GGHeadGenerator", "Backbone", "camera_labels", "SH_C1", "rasterize_batched", "render_offset"]

SH_C1 = 0.4886025119029199


class Backbone(nn.Module):
    """EG3D's StyleGAN2 generator without its forward: ``mapping`` and ``synthesis`` (names as in GGHead)."""

    def __init__(self, cfg: GGHeadConfig):
        super().__init__()
        self.synthesis = SynthesisNetwork(cfg.w_dim, cfg.plane_resolution, cfg.n_uv_channels, channel_base=cfg.channel_base,
                                          channel_max=cfg.channel_max, conv_clamp=cfg.conv_clamp, use_noise=cfg.use_noise,
                                          pretrained_resolution=cfg.pretrained_plane_resolution)
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.synthesis.num_ws, num_layers=cfg.mapping_layers,
                                      lr_multiplier=cfg.mapping_lr_multiplier)


def camera_labels(cameras: Cameras, world_scale: float = 1.0) -> torch.Tensor:
    """EG3D camera labels [C, 25]: cam-to-world (translation in model units) + K normalised by the image size."""
    c2w = cameras.cam_to_world.clone()
    c2w[:, :3, 3] = c2w[:, :3, 3] / world_scale
    H, W = cameras.image_size
    K = cameras.K.clone()
    K[:, 0] = K[:, 0] / W
    K[:, 1] = K[:, 1] / H
    return torch.cat([c2w.reshape(-1, 16), K.reshape(-1, 9)], 1).float()


class GGHeadGenerator(nn.Module):
    """GGHead generator. ``forward(z, c) -> dict`` of the maps and per-Gaussian attributes; ``gaussians(...)`` and
    ``render(...)`` turn one sample into ``avat3r.Gaussians`` / images with the project's renderer."""

    def __init__(self, config: GGHeadConfig, template: UVTemplate | None = None):
        super().__init__()
        self.config = cfg = config
        self.backbone = Backbone(cfg)
        if cfg.zero_conv_position:
            self._zero_conv_position = nn.Conv2d(3, 3, 1)
            nn.init.zeros_(self._zero_conv_position.weight)
            nn.init.zeros_(self._zero_conv_position.bias)
        if template is None:
            if cfg.template != "synthheads":
                raise ValueError("GGHeadGenerator: a non-SynthHeads template must be passed in (see generate.official)")
            template = synthheads_template(cfg.template_resolution, cfg.world_scale)
        self.template_name = template.name
        grid = uv_grid(template.valid_map, cfg.n_uniform)
        self.register_buffer("template_uv", grid)                                      # [1, G, 1, 2]
        self.register_buffer("template_points", sample_template(template.position_map, grid)[None])  # [1, G, 3]
        self.register_buffer("template_position_map", template.position_map.contiguous())  # [3, R, R]

    def set_template(self, uv: torch.Tensor, points: torch.Tensor, position_map: torch.Tensor) -> None:
        """Replace the Gaussian sites: uv [1, G, 1, 2], points [1, G, 3] (model units), position_map [3, R, R]."""
        self.template_uv = uv.float().contiguous()
        self.template_points = points.float().contiguous()
        self.template_position_map = position_map.float().contiguous()

    # ---- sizes ------------------------------------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        return self.template_points.shape[1]

    @property
    def num_ws(self) -> int:
        return self.backbone.mapping.num_ws

    # ---- the three stages -------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        """z [B, z_dim], c [B, 25] -> ws [B, num_ws, w_dim]."""
        if self.config.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.config.c_scale, truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def uv_maps(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> raw UV attribute maps [B, C_uv, R, R] (position channels after the zero conv)."""
        maps = self.backbone.synthesis(ws, noise_mode=noise_mode)
        if self.config.zero_conv_position:
            maps = torch.cat([self._zero_conv_position(maps[:, :3]), maps[:, 3:]], 1)
        return maps

    def attributes(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """UV maps [B, C_uv, R, R] -> per-Gaussian attributes, GGHead's activations:

        position [B, G, 3] (template + offset), scale [B, G, 3] (log, model units), rotation [B, G, 4] (as GGHead hands
        it to the rasteriser), color [B, G, 3 (d+1)^2] (SH coefficients, DC first), opacity [B, G, 1] (raw logit),
        and raw_* [B, G, ·] (before activation, for the regularisers).
        """
        cfg = self.config
        B = maps.shape[0]
        raw = F.grid_sample(maps, self.template_uv.expand(B, -1, -1, -1), mode="bilinear", align_corners=False)
        raw = raw.squeeze(3).permute(0, 2, 1)  # [B, G, C_uv]
        out, i = {}, 0
        for name, n in cfg.channels.items():
            out["raw_" + name] = raw[..., i: i + n]
            i += n
        pos = out["raw_position"]
        pos = cfg.position_range * torch.tanh(cfg.position_attenuation * pos)
        out["position"] = self.template_points + pos
        s = -(out["raw_scale"] + cfg.scale_offset)
        s = s + cfg.max_scale if cfg.center_scale_activation else s
        out["scale"] = cfg.max_scale - F.softplus(s)
        r = out["raw_rotation"]
        if cfg.rotation_activation:
            r = torch.tanh(cfg.rotation_attenuation * r) * (2 * math.pi)
        q = _axis_angle_to_quaternion(r)
        out["rotation"] = torch.cat([q[..., 3:], q[..., :3]], -1)  # GGHead's reorder (see module docstring)
        col = torch.tanh(out["raw_color"]) * (1 + 2 * cfg.color_overshoot) - cfg.color_overshoot
        out["color"] = col * (0.5 / SH_C0)
        out["opacity"] = out["raw_opacity"]
        return out

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const", update_emas: bool = False) -> dict[str, torch.Tensor]:
        """z [B, z_dim], c [B, 25] -> {"ws", "maps", position, scale, rotation, color, opacity, raw_*}."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        maps = self.uv_maps(ws, noise_mode)
        return {"ws": ws, "maps": maps, **self.attributes(maps)}

    # ---- to the project's Gaussians and renderer ---------------------------------------------------------
    def opacity(self, raw: torch.Tensor) -> torch.Tensor:
        """GGHead's ``mip_sigmoid`` (overshoot 0.001), clamped to [0, 1] for our renderer."""
        o = torch.sigmoid(raw) * (1 + 2 * self.config.opacity_overshoot) - self.config.opacity_overshoot
        return o.clamp(0, 1)

    def view_colors(self, out: dict, view_from: torch.Tensor | None) -> torch.Tensor:
        """RGB [B, G, 3] (or [B, C, G, 3] for view_from [B, C, 3]) from the SH colours: degree-1 SH evaluated for the
        camera centres view_from (world metres; [B, 3] or [B, C, 3]); DC only when None. Clamped to [0, 1]."""
        cfg = self.config
        means = out["position"]                                    # [B, G, 3] model units
        shs = out["color"].reshape(*means.shape[:2], -1, 3)        # [B, G, (d+1)^2, 3]
        rgb = SH_C0 * shs[:, :, 0]
        if cfg.sh_degree >= 1 and view_from is not None:
            v = view_from.to(means) / cfg.world_scale
            if v.dim() == 3:                                       # several cameras per sample
                means, shs, rgb = means[:, None], shs[:, None], rgb[:, None]
            d = F.normalize(means - v.unsqueeze(-2), dim=-1)
            x, y, z = d[..., :1], d[..., 1:2], d[..., 2:3]
            rgb = rgb - SH_C1 * y * shs[..., 1, :] + SH_C1 * z * shs[..., 2, :] - SH_C1 * x * shs[..., 3, :]
        return (rgb + 0.5).clamp(0, 1)

    def gaussians(self, out: dict, index: int = 0, view_from: torch.Tensor | None = None) -> Gaussians:
        """Sample ``index`` of ``forward``'s output as ``avat3r.Gaussians`` in the world (metres).

        Colours: view-dependent SH evaluated for the camera centre ``view_from`` [3] (world); DC only when None.
        """
        cfg = self.config
        one = {k: out[k][index: index + 1] for k in ("position", "color")}
        rgb = self.view_colors(one, None if view_from is None else view_from.reshape(1, 3))[0]
        return Gaussians(means=out["position"][index] * cfg.world_scale, quats=out["rotation"][index],
                         scales=torch.exp(out["scale"][index]) * cfg.world_scale,
                         opacities=self.opacity(out["opacity"][index, :, 0]), colors=rgb)

    def render(self, out: dict, cameras: Cameras, index: int | None = None, background=None, backend: str = "auto"):
        """Render samples of ``forward``'s output. index=None: sample i into camera i (C == B); else one sample into
        every camera. Returns (rgb [C, H, W, 3], alpha [C, H, W, 1]) in [0, 1]. On CUDA with gsplat: one call."""
        from ..render import render

        bg = self.config.background if background is None else background
        if index is None:
            return self.render_batch(out, cameras, background=bg, backend=backend)
        dev = out["position"].device
        if _batched_ok(dev, backend):
            cams = _cams_on(cameras, dev)
            rgb = self.view_colors({k: out[k][index: index + 1] for k in ("position", "color")}, cams.centers[None])
            sel = {k: out[k][index: index + 1] for k in ("position", "rotation", "scale", "opacity")}
            return self._raster(sel, rgb, cams.world_to_cam[None], cams.K[None], cams, bg)
        rgbs, alphas = [], []
        centres = cameras.centers
        for i in range(len(cameras)):
            g = self.gaussians(out, index, view_from=centres[i])
            r = render(g, cameras[i: i + 1].to(g.device), background=bg, backend=backend)
            rgbs.append(r.color)
            alphas.append(r.alpha)
        return torch.cat(rgbs), torch.cat(alphas)

    def render_batch(self, out: dict, cameras: Cameras, background=None, backend: str = "auto"):
        """Sample i into camera i for all B samples (training). On CUDA one batched gsplat call (each sample its own
        scene: cost ~ B x G); elsewhere one render per sample. Returns (rgb [B, H, W, 3], alpha [B, H, W, 1]);
        differentiable."""
        B = out["position"].shape[0]
        dev = out["position"].device
        bg = self.config.background if background is None else background
        if _batched_ok(dev, backend):
            cams = _cams_on(cameras, dev)
            rgb = self.view_colors(out, cams.centers)[:, None]             # [B, 1, G, 3]
            sel = {k: out[k] for k in ("position", "rotation", "scale", "opacity")}
            return self._raster(sel, rgb, cams.world_to_cam[:, None], cams.K[:, None], cams, bg)
        cams = cameras.to(dev)
        gs = [self.gaussians(out, i, view_from=cams.centers[i]) for i in range(B)]
        offs = torch.zeros(B, 3, device=dev)
        offs[:, 1] = 100.0 * torch.arange(B, device=dev)
        return render_offset(gs, cams, offs, bg, backend)

    def _raster(self, sel: dict, rgb, viewmats, Ks, cams: Cameras, bg):
        """gsplat with batch dims: sel [S, G, ·], rgb [S, C, G, 3], viewmats [S, C, 4, 4], Ks [S, C, 3, 3] ->
        images of the S x C (sample, camera) pairs, flattened: (rgb [S C, H, W, 3], alpha [S C, H, W, 1])."""
        cfg = self.config
        H, W = cams.image_size
        return rasterize_batched(sel["position"] * cfg.world_scale, sel["rotation"], torch.exp(sel["scale"]) * cfg.world_scale,
                                 self.opacity(sel["opacity"][..., 0]), rgb, viewmats, Ks, W, H, bg)

    @torch.no_grad()
    def sample(self, seed: int, truncation: float = 0.7, c: torch.Tensor | None = None, device=None) -> dict:
        """One head from a seed (z ~ N(0, I) drawn by a seeded CPU generator, so seeds agree across devices)."""
        dev = device or self.template_points.device
        z = torch.randn(1, self.config.z_dim, generator=torch.Generator().manual_seed(int(seed))).to(dev)
        if c is None:
            c = self.canonical_label(dev)
        return self(z, c, truncation_psi=truncation)

    def canonical_label(self, device=None) -> torch.Tensor:
        """The conditioning label of a frontal camera at the default distance: [1, 25]."""
        from ..cameras import intrinsics_from_fov, look_at
        from ..head_template import DEFAULT_CAMERA_DISTANCE, DEFAULT_FOV_DEG

        w2c = look_at(torch.tensor([0.0, 0.0, DEFAULT_CAMERA_DISTANCE]))[None]
        K = intrinsics_from_fov(DEFAULT_FOV_DEG, 64)[None]
        return camera_labels(Cameras(K=K, world_to_cam=w2c, width=64, height=64), self.config.world_scale).to(device)


def render_offset(gaussians: list[Gaussians], cameras: Cameras, offsets: torch.Tensor, background, backend: str = "auto"):
    """Render gaussians[i] into cameras[i] -> (rgb [B, H, W, 3], alpha [B, H, W, 1]).

    On CUDA in one call: set i and camera i translated by offsets[i] [B, 3] (world), so the rasteriser's frustum
    culling drops the other heads. Elsewhere one call per pair (the torch renderer does not cull as cheaply)."""
    from ..render import render

    if gaussians[0].device.type != "cuda":
        outs = [render(g, cameras[i: i + 1].to(g.device), background=background, backend=backend) for i, g in enumerate(gaussians)]
        return torch.cat([o.color for o in outs]), torch.cat([o.alpha for o in outs])
    means = torch.cat([g.means + offsets[i] for i, g in enumerate(gaussians)])
    g = Gaussians(means=means, quats=torch.cat([g.quats for g in gaussians]), scales=torch.cat([g.scales for g in gaussians]),
                  opacities=torch.cat([g.opacities for g in gaussians]), colors=torch.cat([g.colors for g in gaussians]))
    w2c = cameras.world_to_cam.clone()
    w2c[:, :3, 3] = w2c[:, :3, 3] - (w2c[:, :3, :3] @ offsets[:, :, None])[..., 0]
    cams = Cameras.__new__(Cameras)
    cams.K, cams.world_to_cam, cams.width, cams.height = cameras.K, w2c, cameras.width, cameras.height
    r = render(g, cams, background=background, backend=backend)
    return r.color, r.alpha


def _cams_on(cameras: Cameras, device) -> Cameras:
    """K and world_to_cam on device; image sizes stay on the CPU (reading them then needs no GPU sync)."""
    if cameras.K.device == torch.device(device) and cameras.width.device.type == "cpu":
        return cameras
    out = object.__new__(Cameras)
    out.K, out.world_to_cam = cameras.K.to(device), cameras.world_to_cam.to(device)
    out.width, out.height = cameras.width.cpu(), cameras.height.cpu()
    return out


def _batched_ok(device: torch.device, backend: str) -> bool:
    if device.type != "cuda" or backend == "torch" or os.environ.get("AVAT3R_GGHEAD_LOOP_RENDER"):
        return False  # the env switch: per-sample rendering through avat3r.render (a fallback, and for comparison)
    from ..render.gsplat_backend import gsplat_available

    return gsplat_available()


def rasterize_batched(means, quats, scales, opacities, colors, viewmats, Ks, width: int, height: int, background):
    """S independent scenes, each into its own C cameras, in one gsplat call (gsplat's batch dimensions; the
    project's renderer conventions: eps2d 0.3, near 0.01, far 1e3, classic mode, background composited after).

    means/quats/scales [S, G, 3|4|3] (world metres, wxyz), opacities [S, G], colors [S, C, G, 3] (per camera),
    viewmats [S, C, 4, 4], Ks [S, C, 3, 3] -> (rgb [S*C, H, W, 3], alpha [S*C, H, W, 1])."""
    from gsplat import rasterization

    f32 = lambda t: t.to(torch.float32)  # noqa: E731  gsplat's kernels are float32 only
    out, alpha, _ = rasterization(f32(means), f32(quats), f32(scales), f32(opacities), f32(colors), f32(viewmats), f32(Ks),
                                  int(width), int(height), near_plane=0.01, far_plane=1e3, eps2d=0.3, render_mode="RGB",
                                  rasterize_mode="classic")
    S, C = viewmats.shape[:2]
    out, alpha = out.reshape(S * C, height, width, 3), alpha.reshape(S * C, height, width, 1)
    bg = torch.as_tensor(background, dtype=torch.float32, device=out.device).reshape(-1, 3)
    return out + (1 - alpha) * bg[:, None, None, :], alpha


def _axis_angle_to_quaternion(r: torch.Tensor) -> torch.Tensor:
    """Rodrigues vectors [..., 3] -> unit quaternions [..., 4], real part first (series near zero angle)."""
    angle = r.norm(dim=-1, keepdim=True)
    small = angle.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    k = torch.where(small, 0.5 - angle * angle / 48, torch.sin(0.5 * safe) / safe)
    return torch.cat([torch.cos(0.5 * angle), r * k], -1)
