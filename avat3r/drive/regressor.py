"""The driving regressor: pose-free landmark features minus the neutral's -> SynthHeads expression code.

A small MLP (136 -> 256 -> 256 -> C) trained on SynthHeads (``avat3r.drive.train``); its weights ship as
``weights/drive/regressor.safetensors`` with ``config.json`` (feature scale, code names, ranges) beside them.
An optional ``gaze.json`` beside them (the gaze gains, ``avat3r.drive.gaze``) switches on gaze from the eyes.
It predicts codes of the SynthHeads expression space; a loaded model with another space gets a mapping by
dimension name (dims the driver does not know stay 0).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["DriveRegressor", "RegressorConfig", "default_regressor_dir", "load_regressor"]


@dataclass
class RegressorConfig:
    """feature_dim: 136 (68 landmarks x 2); hidden: MLP width; names: the code dims predicted (in order);
    lo/hi: their ranges (outputs are clipped); feature_scale: features are divided by it (metres); dropout: during
    training only (the regressor must generalise across identities from a dozen)."""

    feature_dim: int = 136
    hidden: int = 256
    names: list = field(default_factory=list)
    lo: list = field(default_factory=list)
    hi: list = field(default_factory=list)
    feature_scale: float = 0.003
    dropout: float = 0.0


class DriveRegressor(nn.Module):
    def __init__(self, config: RegressorConfig):
        super().__init__()
        self.config = config
        c = len(config.names)
        h, p = config.hidden, config.dropout
        self.net = nn.Sequential(nn.Linear(config.feature_dim, h), nn.GELU(), nn.Dropout(p),
                                 nn.Linear(h, h), nn.GELU(), nn.Dropout(p), nn.Linear(h, c))
        self.register_buffer("lo", torch.tensor(config.lo, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(config.hi, dtype=torch.float32))
        self.gaze = None  # a GazeConfig when the folder has gaze.json: the driver then reads gaze_x, gaze_y too

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B, 136] (minus the neutral's, metres) -> codes [B, C] within [lo, hi]."""
        y = self.net(feats / self.config.feature_scale)
        return torch.minimum(torch.maximum(y, self.lo), self.hi)

    @torch.no_grad()
    def predict(self, feats: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(np.asarray(feats, np.float32)).reshape(-1, self.config.feature_dim)).numpy()

    def save(self, folder) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "regressor.safetensors"))
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=1) + "\n")
        return folder


def default_regressor_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "weights" / "drive"


def load_regressor(folder=None) -> DriveRegressor:
    """weights/drive (or ``folder``) -> DriveRegressor in eval mode; CheckpointError saying what is missing."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else default_regressor_dir()
    cfg_p, w_p = folder / "config.json", folder / "regressor.safetensors"
    if not (cfg_p.is_file() and w_p.is_file()):
        raise CheckpointError(f"no driving regressor in {folder} (needs config.json + regressor.safetensors); "
                              "train one with `python -m avat3r.drive.train` (docs/DRIVE.md)")
    try:
        cfg = RegressorConfig(**json.loads(cfg_p.read_text()))
        model = DriveRegressor(cfg)
        model.load_state_dict(load_file(str(w_p)))
    except (TypeError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"cannot load the driving regressor from {folder}: {e}") from None
    gaze_p = folder / "gaze.json"
    if gaze_p.is_file():
        from .gaze import GazeConfig

        try:
            model.gaze = GazeConfig(gain=tuple(json.loads(gaze_p.read_text())["gain"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"cannot read {gaze_p}: {e}; delete it to drive without gaze") from None
    return model.eval()
