"""One photo -> 3D: GAN inversion into GGHead, four rendered views, Avat3r (the paper's Sec. 4.5, Fig. 5).

    from avat3r.lift import lift_photo, photo_avatar
    cap, result, view, report = lift_photo("me.jpg")          # the four lifted views (a Capture) + what was done
    avatar, cap, result, report = photo_avatar("me.jpg", pipe, mode="lift")   # ... -> Avat3r -> Avatar

Modules: ``config`` (EncoderConfig presets, InvertConfig), ``encoder`` (GOAE-style image -> w+), ``train`` (the
encoder on generator samples + SynthHeads renders), ``invert`` (encoder guess, w+ optimisation, PTI, correction of
the Gaussians the photo sees), ``views`` (training cameras), ``route`` (photo -> views -> avatar), ``hub`` (weights).
See docs/LIFT.md.
"""

from .config import MODES, EncoderConfig, InvertConfig, encoder_preset
from .encoder import LiftEncoder
from .invert import LiftResult, invert_photo
from .route import DEFAULT_MODE, lift_photo, photo_avatar

__all__ = ["MODES", "DEFAULT_MODE", "EncoderConfig", "InvertConfig", "encoder_preset", "LiftEncoder", "LiftResult",
           "invert_photo", "lift_photo", "photo_avatar"]
