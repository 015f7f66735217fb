"""SynthHeads identities: the random parameters of one procedural head, and the seed splits.

An identity is drawn deterministically from its integer seed. Splits use disjoint seed ranges (as the paper
holds out 12 of Ava-256's 256 persons):

    train       seeds [0, 1_000_000)
    validation  seeds [1_000_000, 1_000_064)
    test        seeds [2_000_000, 2_000_012)   (12 hold-out identities)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "validation": range(1_000_000, 1_000_064),
    "test": range(2_000_000, 2_000_012),
}

HAIR_STYLES = ("bald", "buzz", "short", "bob", "long", "voluminous", "ponytail", "bun", "receding")
_STYLE_P = (0.07, 0.10, 0.22, 0.12, 0.18, 0.10, 0.08, 0.07, 0.06)

# sRGB-ish display colours (the renderer composites them as given)
_SKIN = np.array([[0.96, 0.80, 0.70], [0.90, 0.68, 0.55], [0.78, 0.56, 0.41], [0.62, 0.42, 0.28],
                  [0.45, 0.29, 0.19], [0.28, 0.17, 0.11]])
_NATURAL_HAIR = np.array([[0.04, 0.03, 0.03], [0.12, 0.07, 0.04], [0.25, 0.15, 0.08], [0.45, 0.30, 0.16],
                          [0.80, 0.64, 0.38], [0.55, 0.20, 0.07], [0.72, 0.71, 0.70], [0.90, 0.88, 0.82]])
_UNUSUAL_HAIR = np.array([[0.15, 0.35, 0.85], [0.95, 0.35, 0.65], [0.20, 0.75, 0.35], [0.55, 0.25, 0.80],
                          [0.10, 0.70, 0.70], [0.95, 0.45, 0.10], [0.85, 0.10, 0.15]])
_IRIS = np.array([[0.25, 0.13, 0.05], [0.40, 0.25, 0.10], [0.30, 0.45, 0.60], [0.35, 0.50, 0.30],
                  [0.50, 0.55, 0.55], [0.15, 0.08, 0.04]])
_ACCENT = np.array([[0.85, 0.1, 0.1], [0.1, 0.3, 0.85], [0.95, 0.8, 0.1], [0.1, 0.6, 0.3], [0.95, 0.95, 0.95],
                    [0.08, 0.08, 0.08], [0.9, 0.4, 0.7], [0.5, 0.3, 0.15]])


@dataclass(frozen=True)
class Identity:
    """Parameters of one SynthHeads person. Lengths are multipliers of the template (1 = average) unless noted."""

    seed: int
    # global shape
    scale: float = 1.0          # overall size (+-10 %)
    width: float = 1.0
    height: float = 1.0
    depth: float = 1.0
    # face shape
    forehead: float = 1.0       # forehead slope / fullness
    brow_ridge: float = 1.0
    cheekbones: float = 1.0
    cheeks: float = 1.0         # lower cheek fullness
    jaw_width: float = 1.0
    jaw_length: float = 1.0
    chin_size: float = 1.0
    chin_forward: float = 0.0   # metres
    nose_length: float = 1.0
    nose_width: float = 1.0
    nose_projection: float = 1.0
    nose_bridge: float = 1.0
    nose_tip: float = 1.0
    lip_upper: float = 1.0
    lip_lower: float = 1.0
    mouth_width: float = 1.0
    eye_size: float = 1.0
    eye_open: float = 1.0
    eye_tilt: float = 0.0       # canthal tilt (radians-ish)
    ear_size: float = 1.0
    ear_angle: float = 0.35     # protrusion, radians
    neck_width: float = 1.0
    # appearance
    skin: tuple = (0.8, 0.6, 0.45)
    skin_noise: float = 0.05
    freckles: float = 0.0
    blush: float = 0.1
    lip_color: tuple = (0.7, 0.35, 0.35)
    iris: tuple = (0.3, 0.2, 0.1)
    pupil: float = 1.0
    brow_color: tuple = (0.1, 0.07, 0.05)
    brow_thickness: float = 1.0
    brow_arch: float = 1.0
    # hair
    hair_style: str = "short"
    hair_color: tuple = (0.1, 0.07, 0.05)
    hair_length: float = 0.15   # metres below eye height for long styles
    hair_volume: float = 0.01   # metres of thickness
    hairline: float = 0.0       # metres (positive = receding)
    bangs: bool = False
    beard: str = "none"         # none | stubble | beard | moustache
    # accessories
    glasses: str = "none"       # none | clear | sun
    glasses_color: tuple = (0.05, 0.05, 0.05)
    headband: bool = False
    headband_color: tuple = (0.8, 0.1, 0.1)
    hat: bool = False
    hat_color: tuple = (0.2, 0.3, 0.6)
    # widened SynthHeads (``sample_identity(seed, wide=True)``; the defaults are the original heads)
    hair_texture: float = 0.0   # strand detail, clumps and an uneven outline (0 = original hair)
    torso: bool = False         # shoulders and clothing below the neck
    shoulder_width: float = 1.0
    shirt_color: tuple = (0.3, 0.3, 0.35)
    shirt_pattern: str = "plain"  # plain | stripes | check
    neckline: float = 0.0       # depth of a v / open collar (metres)


def _pick(rng, table):
    return tuple(float(x) for x in table[rng.integers(len(table))])


def _jitter(rng, c, s=0.04):
    return tuple(float(np.clip(x + rng.normal(0, s), 0.0, 1.0)) for x in c)


def sample_identity(seed: int, wide: bool = False) -> Identity:
    """Draw the identity of ``seed`` (deterministic; the same seed always gives the same person).

    wide: the widened SynthHeads (closer to real heads): more hair volume and texture, a neck base with shoulders
    and clothing. Its extra draws come from a separate stream, so every original parameter stays the same."""
    ident = _sample_identity(int(seed))
    if not wide:
        return ident
    rng = np.random.default_rng([int(seed), 0x31DE])
    vol = ident.hair_volume
    if ident.hair_style not in ("bald", "buzz"):
        vol = vol * float(rng.uniform(0.8, 2.4))
    shirt = _pick(rng, _SHIRT) if rng.random() < 0.6 else _pick(rng, _ACCENT)
    from dataclasses import replace

    return replace(ident, hair_volume=vol, hair_texture=float(rng.uniform(0.3, 1.0)) if ident.hair_style != "bald" else 0.0,
                   torso=bool(rng.random() < 0.92), shoulder_width=float(rng.uniform(0.85, 1.2)),
                   shirt_color=_jitter(rng, shirt, 0.05), shirt_pattern=str(rng.choice(["plain", "stripes", "check"], p=[0.7, 0.18, 0.12])),
                   neckline=float(rng.choice([0.0, rng.uniform(0.01, 0.05)], p=[0.6, 0.4])))


_SHIRT = np.array([[0.08, 0.08, 0.09], [0.9, 0.9, 0.88], [0.35, 0.38, 0.42], [0.12, 0.16, 0.3], [0.45, 0.35, 0.25],
                   [0.25, 0.3, 0.22], [0.55, 0.1, 0.12]])


def _sample_identity(seed: int) -> Identity:
    seed = int(seed)
    rng = np.random.default_rng([seed, 0x5E7D])
    n = lambda s=0.06: float(1.0 + np.clip(rng.normal(0, s), -2.2 * s, 2.2 * s))  # noqa: E731
    # skin tone: interpolate along a dark..light ramp, small hue jitter
    t = rng.uniform(0, len(_SKIN) - 1)
    i = int(min(t, len(_SKIN) - 2))
    skin = _SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)
    skin = np.clip(skin * (1 + rng.normal(0, 0.03, 3)), 0, 1)
    lip = np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 0.03, 3), 0, 1)
    if rng.random() < 0.15:  # lipstick
        lip = np.array(_pick(rng, np.array([[0.7, 0.05, 0.1], [0.5, 0.1, 0.3], [0.85, 0.3, 0.4]])))
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=_STYLE_P)]
    hair = _pick(rng, _UNUSUAL_HAIR) if rng.random() < 0.18 else _jitter(rng, _pick(rng, _NATURAL_HAIR), 0.03)
    brow = _jitter(rng, hair, 0.02) if rng.random() < 0.5 else _jitter(rng, (0.08, 0.06, 0.05), 0.03)
    volume = {"bald": 0.0, "buzz": 0.002, "short": 0.008, "bob": 0.010, "long": 0.008, "voluminous": 0.035,
              "ponytail": 0.004, "bun": 0.004, "receding": 0.005}[style]
    length = {"long": rng.uniform(0.12, 0.30), "bob": rng.uniform(0.07, 0.11), "voluminous": rng.uniform(0.0, 0.12)}
    acc = rng.random(3)
    return Identity(
        seed=seed,
        scale=float(rng.uniform(0.91, 1.09)),
        width=n(0.04), height=n(0.04), depth=n(0.035),
        forehead=n(), brow_ridge=n(0.15), cheekbones=n(0.1), cheeks=n(0.12),
        jaw_width=n(0.08), jaw_length=n(0.06), chin_size=n(0.12), chin_forward=float(rng.normal(0, 0.003)),
        nose_length=n(0.08), nose_width=n(0.12), nose_projection=n(0.1), nose_bridge=n(0.12), nose_tip=n(0.12),
        lip_upper=n(0.15), lip_lower=n(0.15), mouth_width=n(0.07),
        eye_size=n(0.05), eye_open=n(0.12), eye_tilt=float(rng.normal(0, 0.08)),
        ear_size=n(0.07), ear_angle=float(rng.uniform(0.2, 0.55)), neck_width=n(0.07),
        skin=tuple(float(x) for x in skin), skin_noise=float(rng.uniform(0.02, 0.08)),
        freckles=float(rng.uniform(0.2, 0.8)) if rng.random() < 0.15 else 0.0, blush=float(rng.uniform(0.0, 0.25)),
        lip_color=tuple(float(x) for x in lip), iris=_jitter(rng, _pick(rng, _IRIS), 0.03),
        pupil=n(0.15), brow_color=brow, brow_thickness=n(0.2), brow_arch=n(0.3),
        hair_style=style, hair_color=hair, hair_length=float(length.get(style, 0.0)),
        hair_volume=float(volume * rng.uniform(0.7, 1.4)),
        hairline=float(rng.uniform(-0.01, 0.015)) + (0.02 if style == "receding" else 0.0),
        bangs=bool(style in ("short", "bob", "long") and rng.random() < 0.3),
        beard=str(rng.choice(["none", "stubble", "beard", "moustache"], p=[0.7, 0.12, 0.12, 0.06])),
        glasses=str(rng.choice(["none", "clear", "sun"], p=[0.75, 0.19, 0.06])),
        glasses_color=_pick(rng, _ACCENT) if acc[0] < 0.4 else (0.04, 0.04, 0.04),
        headband=bool(acc[1] < 0.08 and style not in ("bald", "buzz")), headband_color=_pick(rng, _ACCENT),
        hat=bool(acc[2] < 0.08), hat_color=_pick(rng, _ACCENT),
    )


def split_seeds(split: str) -> range:
    """The seed range of a split ('train', 'validation' or 'test')."""
    if split not in SPLITS:
        raise InputError(f"unknown SynthHeads split {split!r}; use one of {sorted(SPLITS)}")
    return SPLITS[split]
