"""GGHead generator configuration (a dataclass saved inside every checkpoint) and its named presets.

Defaults are GGHead's released training configuration (``scripts/train_gghead.py`` of tobias-kirschstein/gghead):
z, w 512, 8 mapping layers (lr x0.01), a 256^2 'skip' StyleGAN2 synthesis network writing 22 UV channels
(position 3, scale 3, Rodrigues rotation 3, SH degree-1 colour 12, opacity 1), 256^2 Gaussians sampled on the
template's UV grid, position offsets tanh x 0.25 behind a zero-initialised 1x1 conv, log-scales capped at -3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import CheckpointError

__all__ = ["GGHeadConfig", "PRESETS", "preset", "ATTRIBUTES"]

#: The UV attribute channels in GGHead's order (``uv_attributes='position,scale,rotation,color,opacity'``).
ATTRIBUTES = ("position", "scale", "rotation", "color", "opacity")


@dataclass
class GGHeadConfig:
    # latent spaces and camera label (EG3D: 16 cam-to-world + 9 normalised intrinsics)
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    c_gen_conditioning_zero: bool = False   # GGHead trains with generator pose conditioning (gen_pose_cond=True)
    c_scale: float = 1.0
    # synthesis network (writes the UV attribute maps)
    plane_resolution: int = 256
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None         # EG3D: 256 only when fp16 layers are used
    use_noise: bool = True
    pretrained_plane_resolution: int | None = None  # GGHead stage 2 (grown from this resolution)
    # Gaussians on the template
    n_uniform: int = 256                    # UV samples per side; Gaussians = valid samples (~n^2)
    template: str = "synthheads"            # "synthheads" (ours, built in code) or "flame" (GGHead's, licence-gated)
    template_resolution: int = 256          # texels of the template position map
    sh_degree: int = 1
    zero_conv_position: bool = True
    position_range: float = 0.25            # max |offset| from the template, model units
    position_attenuation: float = 1.0
    scale_offset: float = -5.0
    max_scale: float = -3.0                 # log-scale cap (model units)
    center_scale_activation: bool = True
    rotation_activation: bool = True        # tanh(r) * 2 pi before Rodrigues
    rotation_attenuation: float = 1.0
    color_overshoot: float = 0.001
    opacity_overshoot: float = 0.001
    # rendering / world
    world_scale: float = 1.0                # metres per model unit (GGHead's BFM-scaled frame ~ 2.68 units per metre)
    image_resolution: int = 256
    background: tuple = (1.0, 1.0, 1.0)     # GGHead trains on white
    # bookkeeping
    preset: str = "gghead"

    @property
    def n_color_channels(self) -> int:
        return 3 * (self.sh_degree + 1) ** 2

    @property
    def channels(self) -> dict[str, int]:
        """Channels per attribute in map order."""
        return {"position": 3, "scale": 3, "rotation": 3, "color": self.n_color_channels, "opacity": 1}

    @property
    def n_uv_channels(self) -> int:
        return sum(self.channels.values())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["background"] = list(self.background)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GGHeadConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"model_type", "format_version"})
        if unknown:
            raise CheckpointError(f"GGHead config has unknown keys {unknown}: is this a GGHead config.json of this version?")
        kw = {k: v for k, v in d.items() if k in names}
        if "background" in kw:
            kw["background"] = tuple(kw["background"])
        return cls(**kw)


_M = 1 / 2.682716929557429  # GGHead registers FLAME (metres) to a BFM frame scaled by ~2.68: one model unit in metres

PRESETS: dict[str, GGHeadConfig] = {
    # GGHead's own architecture on GGHead's FLAME template (official checkpoints)
    "gghead": GGHeadConfig(template="flame", world_scale=1.0, preset="gghead"),
    # small: our shipped weights (SynthHeads template, 128^2 maps, 128^2 Gaussians, black background as SynthHeads)
    "small": GGHeadConfig(z_dim=256, w_dim=256, mapping_layers=4, plane_resolution=128, channel_base=8192,
                          channel_max=256, n_uniform=128, template_resolution=128, world_scale=_M,
                          image_resolution=128, background=(0.0, 0.0, 0.0), preset="small"),
    # tiny: tests and notebooks (random weights in a second)
    "tiny": GGHeadConfig(z_dim=32, w_dim=32, mapping_layers=2, plane_resolution=32, channel_base=512, channel_max=32,
                         n_uniform=48, template_resolution=64, world_scale=_M, image_resolution=64,
                         background=(0.0, 0.0, 0.0), preset="tiny"),
}


def preset(name: str, **overrides) -> GGHeadConfig:
    """A copy of a named preset, with field overrides."""
    if name not in PRESETS:
        raise CheckpointError(f"unknown GGHead preset {name!r}; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
