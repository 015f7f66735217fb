"""Configuration of the single-image lift (a dataclass saved inside the encoder's checkpoint) and its presets.

The encoder follows GOAE's design (Yuan et al. 2023, "Make Encoder Great Again in 3D GAN Inversion through
Geometry and Occlusion-Aware Encoding"): w+ = w_avg + corrections, the coarse / mid / fine groups of the
generator's ws predicted from the deep / middle / shallow levels of a CNN feature pyramid. The generator's sizes
(num_ws, w_dim) are part of the config: an encoder belongs to one generator architecture.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import CheckpointError

__all__ = ["EncoderConfig", "InvertConfig", "ENCODER_PRESETS", "encoder_preset", "MODES"]

#: How one photo becomes an avatar: "lift" (GAN inversion -> four rendered views, the paper's Sec. 4.5),
#: "lift+photo" (those four views and the photo itself) or "native" (the photo straight into Avat3r, V = 1).
MODES = ("lift", "lift+photo", "native")


@dataclass
class EncoderConfig:
    """image_size: side of the square crop the encoder sees (RGB + mask); width: channels of the first level,
    doubled per level up to max_width; levels: stride-2 stages (the last three give fine / mid / coarse);
    num_ws, w_dim: the generator's w+ shape; coarse_frac / mid_frac: share of the ws (first the low-resolution
    layers) corrected from the coarse / mid level, the rest from the fine one; pose_input: the camera's azimuth
    and elevation (from the front end) enter every head."""

    image_size: int = 128
    width: int = 32
    max_width: int = 128
    levels: int = 5
    hidden: int = 256
    num_ws: int = 12
    w_dim: int = 256
    coarse_frac: float = 0.34
    mid_frac: float = 0.33
    pose_input: bool = True
    generator_preset: str = "small"   # which generator it was built for (checked when loading)
    preset: str = "small"

    def groups(self) -> tuple[range, range, range]:
        """Index ranges of the coarse, mid and fine ws."""
        n = self.num_ws
        c = min(n, max(1, round(n * self.coarse_frac)))
        m = min(n - c, max(1 if n - c > 1 else 0, round(n * self.mid_frac)))
        return range(0, c), range(c, c + m), range(c + m, n)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"model_type", "training", "bench"})
        if unknown:
            raise CheckpointError(f"lift encoder config has unknown keys {unknown}: is this a lift config.json of this version?")
        return cls(**{k: v for k, v in d.items() if k in names})


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "small": EncoderConfig(),
    "tiny": EncoderConfig(image_size=64, width=8, max_width=32, levels=4, hidden=32, preset="tiny"),
}


def encoder_preset(name: str, G=None, **overrides) -> EncoderConfig:
    """A copy of a named preset sized for generator ``G`` (num_ws, w_dim, preset), with field overrides."""
    if name not in ENCODER_PRESETS:
        raise CheckpointError(f"unknown lift encoder preset {name!r}; choose one of {sorted(ENCODER_PRESETS)}")
    kw = {}
    if G is not None:
        kw = dict(num_ws=int(G.num_ws), w_dim=int(G.config.w_dim), generator_preset=str(G.config.preset))
    return dataclasses.replace(ENCODER_PRESETS[name], **{**kw, **overrides})


@dataclass
class InvertConfig:
    """The per-photo stages after the encoder.

    steps: Adam steps on w+ against the photo inside its mask (0 = the encoder's guess only); lr: their learning
    rate (in units of the ws' spread); render_size: side of the renders compared with the photo; w_reg: pull
    toward the encoder's guess (keeps the unseen side plausible); pti_steps: pivotal tuning of the synthesis
    network around the optimised w+ (GPU; 0 = off); pti_lr; correct: strength in [0, 1] of the colour
    correction of the Gaussians the photo sees (0 = off); depth_tol: metres behind the rendered surface a
    Gaussian may lie and still count as seen; correct_iterations: residual transfers (each against a new
    render); correct_size: the side at which the photo and the render are compared for it; correct_shift_all: first
    move every Gaussian's colour (the unseen ones too) by this x the mean colour difference inside the mask, so the
    generator's colours beyond the photo's view come closer to the photo's (session 7: +0.07-0.09 dB, docs/LIFT.md)."""

    steps: int = 12
    lr: float = 0.05
    render_size: int = 64
    w_reg: float = 0.05
    pti_steps: int = 0
    pti_lr: float = 3e-4
    correct: float = 1.0
    depth_tol: float = 0.01
    correct_iterations: int = 3
    correct_size: int = 128
    correct_shift_all: float = 1.0

    @classmethod
    def for_device(cls, device) -> "InvertConfig":
        """Defaults for where it runs: 12 steps at 64 px on a CPU (with the shipped GGHead: 4.8 s of a 10.4 s photo ->
        animated avatar on 2 cores, and 2 steps gave half the gain at +-60 deg; docs/LIFT.md), 40 steps and 30 of PTI
        at 128 px on a GPU."""
        if str(device).startswith("cuda"):
            return cls(steps=40, render_size=128, pti_steps=30, correct_size=256)
        return cls()
