"""The small text-to-portrait model: a prompt encoder over the closed vocabulary, and the UNet configuration.

``PromptEncoder``: token embedding + learned positions + a few transformer layers -> [B, L, D] hidden states for
the UNet's cross-attention (the role CLIP's text encoder plays in Stable Diffusion), trained jointly with the UNet.
``unet_config(preset)``: a pixel-space ``diffusers.UNet2DConditionModel`` at 64x64, a few M parameters, so that 20
DPM-Solver steps with classifier-free guidance run in seconds on 2 CPU cores.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .vocab import Vocabulary, caption_words


class PromptEncoder(ModelMixin, ConfigMixin):
    """ids [B, L] (0 = PAD, 1 = BOS) -> hidden states [B, L, dim]; ``mask(ids)`` [B, L] is 1 on real tokens.
    The vocabulary (its word list) is part of the config, so a saved encoder reads prompts the way it was trained."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, words: list[str] | None = None, max_len: int = 24, dim: int = 128, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        words = list(words) if words is not None else caption_words()
        self.vocab = Vocabulary(words, max_len)
        self.embed = nn.Embedding(len(self.vocab), dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.pos, std=0.02)

    @staticmethod
    def mask(ids: torch.Tensor) -> torch.Tensor:
        return (ids != 0).to(torch.long)

    def tokenize(self, prompts: list[str], device=None) -> tuple[torch.Tensor, list[list[str]]]:
        """prompts -> (ids [B, L], unknown words per prompt)."""
        enc = [self.vocab.encode(p) for p in prompts]
        ids = torch.tensor([e[0] for e in enc], dtype=torch.long, device=device)
        return ids, [e[1] for e in enc]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.blocks(x, src_key_padding_mask=ids == 0)
        return self.norm(x)


#: Named UNet sizes (pixel space, 64x64 RGB). "tiny" is for tests and CPU dry runs.
PRESETS = {
    "small": dict(block_out_channels=(32, 64, 128, 160), layers_per_block=1, attention_head_dim=4),
    "tiny": dict(block_out_channels=(16, 32, 32, 32), layers_per_block=1, attention_head_dim=2),
}


def unet_config(preset: str = "small", size: int = 64, cross_dim: int = 128) -> dict:
    """Keyword arguments of ``UNet2DConditionModel`` for a preset: cross-attention at 1/2, 1/4, 1/8 resolution."""
    p = PRESETS[preset]
    return dict(sample_size=size, in_channels=3, out_channels=3, cross_attention_dim=cross_dim,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                norm_num_groups=min(16, p["block_out_channels"][0]), **p)
