"""SynthHeads expression space: the interpretable code z_exp of models trained on SynthHeads.

Every dimension is a named, smooth deformation of the procedural head (``avat3r.data.headgeom``). Values lie
in [0, 1] except the two gaze dimensions, which are signed in [-1, 1]. The code is what a model trained on
SynthHeads receives as z_exp (the paper's 256-d Ava-256 codes play the same role there).
"""

from __future__ import annotations

import numpy as np

#: Names of the expression dimensions, in code order.
EXPRESSION_NAMES: list[str] = [
    "jaw_open",         # 0  lower jaw rotates about the hinge; lips part, teeth, tongue and dark mouth show
    "smile",            # 1  mouth corners up and back, cheeks raise
    "frown",            # 2  mouth corners down
    "pucker",           # 3  lips pushed forward and together (kiss)
    "mouth_left",       # 4  mouth and jaw shift towards the subject's left (+x)
    "mouth_right",      # 5  ... towards the subject's right (-x)
    "lip_stretch",      # 6  mouth corners pulled sideways (fear, grimace)
    "upper_lip_raise",  # 7  upper lip lifts, baring the upper teeth
    "cheek_puff",       # 8  cheeks inflate
    "tongue_out",       # 9  tongue slides out (forces the jaw at least half open)
    "blink_left",       # 10 subject's left eyelids close
    "blink_right",      # 11 subject's right eyelids close
    "eye_wide",         # 12 upper lids lift
    "squint",           # 13 lower lids lift, cheeks tighten
    "brow_raise",       # 14 brows and forehead up
    "brow_furrow",      # 15 inner brows down and together
    "brow_inner_up",    # 16 inner brows up (sad)
    "nose_wrinkle",     # 17 sneer: nose and upper lip up
    "gaze_x",           # 18 signed: eyes look towards +x (subject's left, image right)
    "gaze_y",           # 19 signed: eyes look up
]
EXPRESSION_DIM = len(EXPRESSION_NAMES)
_IDX = {n: i for i, n in enumerate(EXPRESSION_NAMES)}
SIGNED_DIMS = ("gaze_x", "gaze_y")


def expression(**values: float) -> np.ndarray:
    """Build a code from named values, e.g. ``expression(smile=0.8, squint=0.2)`` -> [C] float32."""
    z = np.zeros(EXPRESSION_DIM, np.float32)
    for k, v in values.items():
        if k not in _IDX:
            raise KeyError(f"unknown expression dimension {k!r}; known: {EXPRESSION_NAMES}")
        z[_IDX[k]] = v
    return z


#: Named expressions (also the presets a SynthHeads-trained model exposes).
EXPRESSION_PRESETS: dict[str, np.ndarray] = {
    "neutral": expression(),
    "smile": expression(smile=0.9, squint=0.25, upper_lip_raise=0.2),
    "big_smile": expression(smile=1.0, jaw_open=0.3, upper_lip_raise=0.6, squint=0.4),
    "surprise": expression(jaw_open=0.6, eye_wide=1.0, brow_raise=1.0),
    "angry": expression(brow_furrow=1.0, squint=0.5, frown=0.5, nose_wrinkle=0.3, lip_stretch=0.2),
    "sad": expression(frown=0.8, brow_inner_up=1.0, gaze_y=-0.3),
    "kiss": expression(pucker=1.0, blink_left=0.15, blink_right=0.15),
    "tongue": expression(jaw_open=0.55, tongue_out=1.0),
    "wink_left": expression(blink_left=1.0, smile=0.5),
    "wink_right": expression(blink_right=1.0, smile=0.5),
    "eyes_closed": expression(blink_left=1.0, blink_right=1.0),
    "disgust": expression(nose_wrinkle=1.0, upper_lip_raise=0.6, frown=0.3, squint=0.4, brow_furrow=0.4),
    "fear": expression(lip_stretch=0.8, eye_wide=0.9, brow_inner_up=0.8, brow_raise=0.5, jaw_open=0.2),
    "puff": expression(cheek_puff=1.0),
    "jaw_open": expression(jaw_open=1.0),
    "scream": expression(jaw_open=1.0, lip_stretch=0.6, eye_wide=0.7, brow_raise=0.8),
    "mouth_left": expression(mouth_left=1.0, smile=0.2),
    "look_left": expression(gaze_x=0.9),
    "look_up": expression(gaze_y=0.8, brow_raise=0.3),
}

# Extreme "segments" mimicking Ava-256's EXP_eye_wide / EXP_tongue / EXP_jaw recordings (paper supp. C).
_EXTREME = {
    "eye_wide": expression(eye_wide=1.0, brow_raise=0.9, jaw_open=0.15),
    "tongue": expression(jaw_open=0.6, tongue_out=1.0),
    "jaw": expression(jaw_open=1.0, lip_stretch=0.3),
}


def clip_expression(z: np.ndarray) -> np.ndarray:
    """Clamp a code [..., C] to its valid ranges ([0, 1], gaze in [-1, 1])."""
    z = np.asarray(z, np.float32)
    lo = np.zeros(EXPRESSION_DIM, np.float32)
    lo[[_IDX[n] for n in SIGNED_DIMS]] = -1
    return np.clip(z, lo, 1.0)


def sample_expression(rng: np.random.Generator) -> np.ndarray:
    """One random, realistic expression [C]: sparse mixes of presets and single actions, sometimes extreme."""
    u = rng.random()
    if u < 0.08:
        z = expression()
    elif u < 0.40:  # a preset at a random intensity
        name = list(EXPRESSION_PRESETS)[rng.integers(len(EXPRESSION_PRESETS))]
        z = EXPRESSION_PRESETS[name] * rng.uniform(0.4, 1.1)
    elif u < 0.60:  # an extreme segment sample (paper: EXP_eye_wide, EXP_tongue, EXP_jaw)
        name = list(_EXTREME)[rng.integers(len(_EXTREME))]
        z = _EXTREME[name] * rng.uniform(0.6, 1.0)
    else:  # a sparse random mix of 1..4 actions
        z = expression()
        active = rng.choice(EXPRESSION_DIM - 2, size=rng.integers(1, 5), replace=False)
        z[active] = rng.uniform(0.2, 1.0, size=len(active)) ** 0.7
    z = z.astype(np.float32).copy()
    z[_IDX["gaze_x"]] += rng.normal(0, 0.25)
    z[_IDX["gaze_y"]] += rng.normal(0, 0.15)
    if rng.random() < 0.08:  # spontaneous blink
        z[[_IDX["blink_left"], _IDX["blink_right"]]] = rng.uniform(0.5, 1.0)
    return clip_expression(z)


def sample_expressions(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random expressions [n, C] (independent draws)."""
    return np.stack([sample_expression(rng) for _ in range(n)])
