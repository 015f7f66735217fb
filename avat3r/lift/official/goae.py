"""GOAE (Yuan et al. 2023, "Make Encoder Great Again in 3D GAN Inversion through Geometry and Occlusion-Aware
Encoding"), the inversion the Avat3r paper lifts photos into EG3D with (Sec. 4.5): written from jiangyzy/GOAE
(``training/goae.py``, ``models/afa.py``, ``models/attention.py``, ``models/helpers.py``); names match, so GOAE's
state dicts (``encoder_FFHQ.pt``, ``afa_FFHQ.pt``) load key for key.

    ws   = w_avg + base + [0, coarse(3), mid(3), fine(7)]        Swin-V2 features -> w+ (14 x 512)
    x32  = EG3D synthesis up to 32^2 (features, 512 ch); planes_w = the rest of the synthesis from x32
    x32' = gamma * x32 + beta, (gamma, beta) = cross-attention of x32 over features of (render(planes_w) - photo)  (AFA)
    planes = plane xy: mask * planes(x32') + (1 - mask) * planes_w, other planes: planes(x32')   (occlusion-aware mix;
             mask: where the photo's visible surface projects on the xy plane, blurred, thresholded, blurred)

The files are ``torch.save`` state dicts: read with ``torch.load(weights_only=True)`` (torch's restricted
unpickler: tensors and plain containers only); anything else is refused with a CheckpointError.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError
from .swin import SwinV2

__all__ = ["GOAEConfig", "GOAEncoder", "AFA", "CrossAttention", "GOAE", "load_goae", "find_goae", "goae_missing",
           "read_state_dict", "GOAE_ENV", "GOAE_HELP", "visible_mask", "gaussian_blur"]

GOAE_ENV = "AVAT3R_GOAE_WEIGHTS"
GOAE_HELP = ("download GOAE's encoder_FFHQ.pt (and afa_FFHQ.pt for the occlusion-aware correction) from the "
             f"jiangyzy/GOAE README's links into weights/goae/, or point ${GOAE_ENV} at that folder")


@dataclass
class GOAEConfig:
    """GOAE's encoder (its configs/swinv2.yaml + infer_config defaults)."""

    img_size: int = 256
    embed_dim: int = 128
    depths: list = field(default_factory=lambda: [2, 2, 18, 2])
    heads: list = field(default_factory=lambda: [4, 8, 16, 32])
    window: int = 16
    pretrained_windows: list = field(default_factory=lambda: [12, 12, 12, 6])
    mlp_layer: int = 2
    num_ws: int = 14
    w_dim: int = 512

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(i: int, o: int, layers: int = 2) -> nn.Sequential:
    """GOAE's ``get_mlp_layer``: (Linear(i, i), LeakyReLU) x (layers - 1), Linear(i, o)."""
    mods = []
    for _ in range(layers - 1):
        mods += [nn.Linear(i, i), nn.LeakyReLU()]
    return nn.Sequential(*mods, nn.Linear(i, o))


class CrossAttention(nn.Module):
    """DETR-style: tgt + MHA(tgt, memory) -> LayerNorm (no affine) -> + FFN (ReLU). [B, Q, D], [B, K, D] -> [B, Q, D]."""

    def __init__(self, d: int = 512, heads: int = 4, ff: int = 1024):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)

    def forward(self, tgt, memory):
        tgt = self.norm2(tgt + self.multihead_attn(query=tgt, key=memory, value=memory)[0])
        return tgt + self.linear2(F.relu(self.linear1(tgt)))


class GOAEncoder(nn.Module):
    """photo [B, 3, 256, 256] in [-1, 1] -> w+ offsets [B, 14, 512] (add EG3D's w_avg): a base w from the final
    Swin tokens for every layer, plus coarse (layers 1-3), mid (4-6) and fine (7-13) corrections, each a set of
    learned queries (from the stage-3 input) cross-attending to key/values built from the stage-2 / 1 / 0 inputs."""

    def __init__(self, cfg: GOAEConfig = GOAEConfig()):
        super().__init__()
        self.config = cfg
        self.swin_model = SwinV2(cfg.img_size, 4, cfg.embed_dim, cfg.depths, cfg.heads, cfg.window, 4.0, cfg.pretrained_windows)
        E, n, L = cfg.embed_dim, (cfg.img_size // 32) ** 2, cfg.mlp_layer  # n: tokens of the last stage (64)
        C4 = E * 8
        self.mapper_base_spatial, self.mapper_base_channel = _mlp(n, 1, L), _mlp(C4, cfg.w_dim, L)
        self.mapper_query_spatial_coarse, self.mapper_query_channel_coarse = _mlp(n, 3, L), _mlp(C4, cfg.w_dim, L)
        self.mapper_query_spatial_mid, self.mapper_query_channel_mid = _mlp(n, 3, L), _mlp(C4, cfg.w_dim, L)
        self.mapper_query_spatial_fine, self.mapper_query_channel_fine = _mlp(n, 7, L), _mlp(C4, cfg.w_dim, L)
        self.mapper_coarse_channel = nn.Sequential(nn.Linear(E * 4, 512), nn.LeakyReLU())
        self.mapper_mid_channel = nn.Sequential(nn.Linear(E * 2, 512), nn.LeakyReLU())
        self.mapper_fine_channel = nn.Sequential(nn.Linear(E, 256), nn.LeakyReLU(), nn.Linear(256, 512), nn.LeakyReLU())
        t2, t1, t0 = (cfg.img_size // 16) ** 2, (cfg.img_size // 8) ** 2, (cfg.img_size // 4) ** 2
        self.mapper_coarse_to_mid_spatial = nn.Sequential(nn.Linear(t2, t2 * 2), nn.LeakyReLU(), nn.Linear(t2 * 2, t1), nn.LeakyReLU())
        self.mapper_mid_to_fine_spatial = nn.Sequential(nn.Linear(t1, t1 * 2), nn.LeakyReLU(), nn.Linear(t1 * 2, t0), nn.LeakyReLU())
        self.cross_att_coarse, self.cross_att_mid, self.cross_att_fine = CrossAttention(), CrossAttention(), CrossAttention()

    @staticmethod
    def _pool(x, spatial, channel):
        """[B, C, T] -> spatial MLP over tokens (+ the max over tokens) -> channel MLP -> [B, k, 512]."""
        return channel(spatial(x).transpose(1, 2) + x.amax(dim=2, keepdim=True).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base, query, coarse, mid, fine = self.swin_model(x)
        B = x.shape[0]
        ws_base = self._pool(base, self.mapper_base_spatial, self.mapper_base_channel).repeat(1, self.config.num_ws, 1)
        q_c = self._pool(query, self.mapper_query_spatial_coarse, self.mapper_query_channel_coarse)
        q_m = self._pool(query, self.mapper_query_spatial_mid, self.mapper_query_channel_mid)
        q_f = self._pool(query, self.mapper_query_spatial_fine, self.mapper_query_channel_fine)
        kv_c = self.mapper_coarse_channel(coarse)
        kv_m = self.mapper_mid_channel(mid) + self.mapper_coarse_to_mid_spatial(kv_c.transpose(1, 2)).transpose(1, 2)
        kv_f = self.mapper_fine_channel(fine) + self.mapper_mid_to_fine_spatial(kv_m.transpose(1, 2)).transpose(1, 2)
        delta = torch.cat([torch.zeros(B, 1, ws_base.shape[-1], device=x.device), self.cross_att_coarse(q_c, kv_c),
                           self.cross_att_mid(q_m, kv_m), self.cross_att_fine(q_f, kv_f)], 1)
        return ws_base + delta


# ---- AFA: the occlusion-aware correction of the 32^2 synthesis features ------------------------------------
class SEModule(nn.Module):
    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(c // reduction, c, 1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class BottleneckIRSE(nn.Module):
    """ArcFace's IR-SE unit: BN, 3x3 conv, PReLU, 3x3 conv (stride), BN, squeeze-excitation + shortcut."""

    def __init__(self, cin: int, depth: int, stride: int):
        super().__init__()
        self.shortcut_layer = (nn.MaxPool2d(1, stride) if cin == depth else
                               nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)))
        self.res_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
                                       nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth), SEModule(depth))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.padding = 1 / math.sqrt(cin * k * k), padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, padding=self.padding)


class _ScaledLeakyReLU(nn.Module):
    def forward(self, x):
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class AFA(nn.Module):
    """(photo, render of planes_w) [B, 3, H, W] in [-1, 1], features x32 [B, 512, M, M] -> gamma * x32 + beta [B, 512,
    M, M]: the residual (render - photo) through an IR-SE ResNet (H/8 x W/8, 512 ch) is the memory that the
    normalised x32 tokens cross-attend to, once for gamma and once for beta."""

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for cin, depth in ((64, 64), (64, 128), (128, 256)):
            units += [BottleneckIRSE(cin, depth, 2), BottleneckIRSE(depth, depth, 1), BottleneckIRSE(depth, depth, 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(EqualConv2d(256, 512, 3, padding=1), _ScaledLeakyReLU(), EqualConv2d(512, 512, 3, padding=1))
        self.norm_kv = nn.LayerNorm(512, elementwise_affine=False)
        self.norm_x = nn.LayerNorm(512, elementwise_affine=False)
        self.cross_att_gamma, self.cross_att_beta = CrossAttention(), CrossAttention()

    def forward(self, img, rec_img, feature_map):
        B, L, M, _ = feature_map.shape
        kv = self.norm_kv(self.output_layer(self.body(self.input_layer(rec_img - img))).flatten(2).permute(0, 2, 1))
        q = self.norm_x(feature_map.flatten(2).permute(0, 2, 1))
        gamma = self.cross_att_gamma(q, kv).permute(0, 2, 1).reshape(B, L, M, M)
        beta = self.cross_att_beta(q, kv).permute(0, 2, 1).reshape(B, L, M, M)
        return gamma * feature_map + beta


# ---- the occlusion-aware mix ------------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, k: int = 9, sigma_range=(1.0, 2.0)) -> torch.Tensor:
    """torchvision's ``GaussianBlur(k, sigma=(1, 2))`` as GOAE calls it: sigma drawn uniformly per call from the
    torch RNG (as torchvision draws it), reflect padding. x [C, H, W]."""
    sigma = float(torch.empty(1).uniform_(sigma_range[0], sigma_range[1]).item())
    r = torch.linspace(-(k - 1) * 0.5, (k - 1) * 0.5, steps=k)
    g = torch.exp(-0.5 * (r / sigma).pow(2))
    g = (g / g.sum()).to(x.dtype)
    kern = (g[:, None] * g[None, :]).expand(x.shape[0], 1, k, k)
    y = F.pad(x[None], [k // 2] * 4, mode="reflect")
    return F.conv2d(y, kern, groups=x.shape[0])[0]


def visible_mask(origins: torch.Tensor, dirs: torch.Tensor, depth: torch.Tensor, res: int = 256) -> torch.Tensor:
    """Surface points origins + depth * dirs [B, M, 3] (EG3D units, box side 1) -> [B, 1, res, res]: where they fall
    on the xy plane (GOAE's ``mix_fusion``: blur, > 0.35, blur)."""
    B = origins.shape[0]
    xyz = origins + depth.reshape(B, -1, 1) * dirs
    x = torch.clamp((xyz[..., 0] + 0.5) * res, 0, res - 1).long()
    y = torch.clamp((xyz[..., 1] + 0.5) * res, 0, res - 1).long()
    mask = torch.zeros((B, 1, res, res))
    for j in range(B):
        mask[j, :, y[j].cpu(), x[j].cpu()] = 1
        m = gaussian_blur(mask[j])
        m = torch.where(m > 0.35, 1, 0).float()
        mask[j] = gaussian_blur(m)
    return mask.to(origins.device)


class GOAE(nn.Module):
    """GOAE's encoder and (optionally) AFA: ``encode`` gives w+, ``correct`` the occlusion-aware triplanes."""

    def __init__(self, cfg: GOAEConfig = GOAEConfig(), with_afa: bool = True):
        super().__init__()
        self.encoder = GOAEncoder(cfg)
        self.afa = AFA() if with_afa else None

    @torch.no_grad()
    def encode(self, photo: torch.Tensor, w_avg: torch.Tensor) -> torch.Tensor:
        """photo [B, 3, H, W] in [-1, 1] (EG3D's framing) -> ws [B, 14, 512] (w_avg added, as GOAE's Net does)."""
        s = self.encoder.config.img_size
        if photo.shape[-1] != s:
            photo = F.interpolate(photo, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return self.encoder(photo) + w_avg[None, None]

    @torch.no_grad()
    def correct(self, G, ws: torch.Tensor, c: torch.Tensor, photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GOAE's Net.forward after the encoder: photo [B, 3, R, R] in [-1, 1] at EG3D's output size, camera c [B, 25]
        -> (mixed triplanes [B, 3, 32, 256, 256], mask [B, 1, 256, 256])."""
        syn = G.backbone.synthesis
        x32, img32 = synthesis_until(syn, ws, 32)
        planes_w = synthesis_from(syn, ws, x32, img32, 32)
        out_w = G.synthesis(ws, c, planes=_as_planes(planes_w))
        if self.afa is None:
            return _as_planes(planes_w), None
        x32f = self.afa(photo, out_w["image"], x32)
        planes_f = _as_planes(synthesis_from(syn, ws, x32f, img32, 32))
        out_f = G.synthesis(ws, c, planes=planes_f)
        r = G.config.neural_rendering_resolution
        from .volume import ray_bundle

        origins, dirs = ray_bundle(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), r)
        mask = visible_mask(origins, dirs, out_f["image_depth"])
        planes_w = _as_planes(planes_w)
        mix = planes_f.clone()
        mix[:, 0] = mask * planes_f[:, 0] + (1 - mask) * planes_w[:, 0]
        return mix, mask


def _as_planes(p: torch.Tensor) -> torch.Tensor:
    return p.view(len(p), 3, 32, p.shape[-2], p.shape[-1])


def synthesis_until(syn, ws: torch.Tensor, res: int, noise_mode: str = "const"):
    """EG3D's synthesis blocks up to ``res`` -> (features x [B, C, res, res], accumulated image [B, 96, res, res])."""
    ws = ws.to(torch.float32)
    x = img = None
    i = 0
    for r in syn.block_resolutions:
        if r > res:
            break
        blk = getattr(syn, f"b{r}")
        x, img = blk(x, img, ws.narrow(1, i, blk.num_conv + blk.num_torgb), noise_mode=noise_mode)
        i += blk.num_conv
    return x, img


def synthesis_from(syn, ws: torch.Tensor, x: torch.Tensor, img: torch.Tensor, res: int, noise_mode: str = "const"):
    """The remaining blocks (above ``res``) from (x, img) -> the 256^2 x 96 output."""
    ws = ws.to(torch.float32)
    i = 0
    for r in syn.block_resolutions:
        blk = getattr(syn, f"b{r}")
        if r > res:
            x, img = blk(x, img, ws.narrow(1, i, blk.num_conv + blk.num_torgb), noise_mode=noise_mode)
        i += blk.num_conv
    return img


# ---- files --------------------------------------------------------------------------------------------------
def read_state_dict(path) -> dict[str, torch.Tensor]:
    """A ``torch.save`` state dict read with torch's restricted loader (tensors / containers only); 'module.'
    prefixes (DataParallel) dropped; a {'state_dict': ...} wrapper unwrapped."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist: {GOAE_HELP}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError / EOFError for what it refuses
        raise CheckpointError(f"{p}: not a plain tensor state dict ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                              "It was refused without running anything; use GOAE's released files") from e
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{p}: expected a dict of tensors (a state dict), found {type(sd).__name__}")
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def _fill(module: nn.Module, sd: dict, where: str) -> int:
    ours = module.state_dict()
    missing = sorted(set(ours) - set(sd))
    if missing:
        more = f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""
        raise CheckpointError(f"{where}: lacks {len(missing)} of the {len(ours)} tensors: {missing[:8]}{more}; the file is "
                              f"partial or another model's ({GOAE_HELP})")
    bad = [f"{k} {list(sd[k].shape)} (expected {list(v.shape)})" for k, v in ours.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise CheckpointError(f"{where}: mis-shaped tensors {bad[:5]}")
    module.load_state_dict({k: sd[k].to(v.dtype) for k, v in ours.items()})
    return len(ours)


def config_from_state(sd: dict) -> GOAEConfig:
    """Depths, heads, embedding width and window from the encoder state dict's names and shapes."""
    try:
        E = int(sd["swin_model.patch_embed.proj.weight"].shape[0])
        depths, heads = [], []
        for i in range(8):
            blocks = {int(k.split(".")[4]) for k in sd if k.startswith(f"swin_model.layers.{i}.blocks.")}
            if not blocks:
                break
            depths.append(max(blocks) + 1)
            heads.append(int(sd[f"swin_model.layers.{i}.blocks.0.attn.logit_scale"].shape[0]))
        window = int(round(math.sqrt(sd["swin_model.layers.0.blocks.0.attn.relative_position_index"].shape[0])))
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"not a GOAE encoder state dict (no Swin-V2 'swin_model.*' tensors: {e})") from e
    return GOAEConfig(embed_dim=E, depths=depths, heads=heads, window=window)


def _location() -> Path:
    env = os.environ.get(GOAE_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "weights" / "goae"


def find_goae(path=None) -> tuple[Path, Path | None] | None:
    """(encoder file, AFA file or None) in ``path`` or ``$AVAT3R_GOAE_WEIGHTS`` / ``weights/goae/``: ``encoder*.pt[h]``
    and ``afa*.pt[h]``. None when there is no encoder file."""
    d = Path(path) if path is not None else _location()
    if not d.is_dir():
        return None
    enc = sorted([*d.glob("encoder*.pt"), *d.glob("encoder*.pth")])
    afa = sorted([*d.glob("afa*.pt"), *d.glob("afa*.pth")])
    if not enc:
        return None
    if len(enc) > 1 or len(afa) > 1:
        raise CheckpointError(f"{d} holds several GOAE files ({[p.name for p in enc + afa]}): keep one encoder and one AFA")
    return enc[0], (afa[0] if afa else None)


def goae_missing() -> str | None:
    try:
        return None if find_goae() is not None else f"no GOAE encoder ({GOAE_HELP})"
    except CheckpointError as e:
        return str(e)


def load_goae(path=None, device="cpu") -> tuple[GOAE, str]:
    """GOAE from its state dicts -> (module, report line). CheckpointError for missing, partial or unsafe files."""
    found = find_goae(path)
    if found is None:
        raise CheckpointError(f"no GOAE encoder at {Path(path) if path is not None else _location()}: {GOAE_HELP}")
    enc_p, afa_p = found
    sd = read_state_dict(enc_p)
    net = GOAE(config_from_state(sd), with_afa=afa_p is not None)
    n = _fill(net.encoder, sd, str(enc_p))
    line = f"GOAE encoder {enc_p.name}: {n} tensors mapped"
    if afa_p is not None:
        n = _fill(net.afa, read_state_dict(afa_p), str(afa_p))
        line += f"; AFA {afa_p.name}: {n} tensors mapped (occlusion-aware correction on)"
    else:
        line += "; no AFA file: no occlusion-aware correction"
    return net.to(device).eval().requires_grad_(False), line
