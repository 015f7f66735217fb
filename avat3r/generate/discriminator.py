"""Camera-conditioned StyleGAN2 discriminator for training GGHead (EG3D's ``Discriminator``, 'resnet' architecture,
projection conditioning on the camera label; input RGB + mask as GGHead trains with masks)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork

__all__ = ["Discriminator", "Encoder"]


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, tmp_ch: int, out_ch: int, img_ch: int, first: bool):
        super().__init__()
        self.first = first
        if first:
            self.fromrgb = Conv2dLayer(img_ch, tmp_ch, 1, activation="lrelu")
        self.conv0 = Conv2dLayer(tmp_ch, tmp_ch, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(tmp_ch, out_ch, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(tmp_ch, out_ch, 1, bias=False, down=2)

    def forward(self, x, img):
        if self.first:
            x = self.fromrgb(img)
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=np.sqrt(0.5))
        return y + x


def _add_blocks(m: nn.Module, img_resolution: int, img_channels: int, channel_base: int, channel_max: int) -> dict:
    """The 'resnet' trunk's blocks b{R} .. b8 as attributes of m (m.resolutions); returns channels per resolution."""
    res_log2 = int(np.log2(img_resolution))
    m.resolutions = [2**i for i in range(res_log2, 2, -1)]
    ch = {r: min(channel_base // r, channel_max) for r in m.resolutions + [4]}
    for i, r in enumerate(m.resolutions):
        setattr(m, f"b{r}", DiscriminatorBlock(ch[r], ch[r], ch[r // 2], img_channels, first=(i == 0)))
    return ch


def _run_blocks(m: nn.Module, img: torch.Tensor) -> torch.Tensor:
    """img [B, C, R, R] -> trunk features [B, ch4, 4, 4]."""
    x = None
    for r in m.resolutions:
        x = getattr(m, f"b{r}")(x, img)
    return x


class Discriminator(nn.Module):
    """img [B, C, R, R] in [-1, 1], c [B, c_dim] -> logits [B, 1]."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int = 4, channel_base: int = 8192,
                 channel_max: int = 256, cmap_dim: int = 128, mbstd_group: int = 4):
        super().__init__()
        ch = _add_blocks(self, img_resolution, img_channels, channel_base, channel_max)
        self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, num_layers=2, w_avg_beta=None)
        self.mbstd_group = mbstd_group
        self.conv = Conv2dLayer(ch[4] + 1, ch[4], 3, activation="lrelu")
        self.fc = FullyConnectedLayer(ch[4] * 16, ch[4], activation="lrelu")
        self.out = FullyConnectedLayer(ch[4], cmap_dim)
        self.cmap_dim = cmap_dim

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = _run_blocks(self, img)
        cmap = self.mapping(None, c)
        # minibatch standard deviation (one feature)
        B, C, H, W = x.shape
        G = min(self.mbstd_group, B) if B % min(self.mbstd_group, B) == 0 else 1
        x = x.float()  # the statistic in fp32 (under bf16 autocast a zero variance would make sqrt's gradient inf)
        y = x.reshape(G, -1, 1, C, H, W)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, 1, 1, 1)
        y = y.repeat(G, 1, H, W)
        x = torch.cat([x, y], 1)
        x = self.fc(self.conv(x).flatten(1))
        x = self.out(x)
        return (x * cmap).sum(dim=1, keepdim=True) / np.sqrt(self.cmap_dim)


class Encoder(nn.Module):
    """The discriminator's trunk as a VAE encoder for the warm start (TrainConfig.lambda_recon): a real view
    img [B, C, R, R] in [-1, 1] and its camera label c [B, c_dim] -> (mu, logvar) [B, z_dim] of the latent that should
    regenerate the head. Not part of GGHead: it only speeds up the first stage of training (docs/GGHEAD.md)."""

    def __init__(self, z_dim: int, c_dim: int, img_resolution: int, img_channels: int = 4, channel_base: int = 8192,
                 channel_max: int = 256):
        super().__init__()
        ch = _add_blocks(self, img_resolution, img_channels, channel_base, channel_max)
        self.conv = Conv2dLayer(ch[4], ch[4], 3, activation="lrelu")
        self.fc = FullyConnectedLayer(ch[4] * 16 + c_dim, ch[4], activation="lrelu")
        self.out = FullyConnectedLayer(ch[4], 2 * z_dim)

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _run_blocks(self, img)
        x = self.fc(torch.cat([self.conv(x).flatten(1).float(), c.float()], 1))
        mu, logvar = self.out(x).float().chunk(2, dim=1)
        return mu, logvar.clamp(-10, 4)
