"""Attribute classifier: 64x64 portrait -> one class per attribute group (hair, colour, skin, beard, glasses, hat,
headband, expression, view). Trained on SynthHeads renders (``data.build_portraits``); it is the judge of the
prompt-adherence benchmark (bench/text2img.py), never part of generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .vocab import GROUPS


class AttributeClassifier(ModelMixin, ConfigMixin):
    """images [B, 3, 64, 64] in [-1, 1] -> {group: logits [B, classes]}."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, width: int = 48, groups: dict | None = None):
        super().__init__()
        groups = {g: len(c) for g, c in GROUPS.items()} if groups is None else dict(groups)
        w = width
        chans = [3, w, 2 * w, 4 * w, 4 * w]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU(), nn.Conv2d(b, b, 3, padding=1),
                       nn.GroupNorm(8, b), nn.SiLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({g: nn.Linear(4 * w * 16, n) for g, n in groups.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x).flatten(1)
        return {g: h(f) for g, h in self.heads.items()}

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """labels [B, G] (-1 = not visible, ignored)."""
        out = self(x)
        return sum(F.cross_entropy(out[g], labels[:, i], ignore_index=-1) for i, g in enumerate(out)) / len(out)

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """-> [B, G] predicted class per group."""
        out = self(x)
        return torch.stack([out[g].argmax(1) for g in out], 1)
