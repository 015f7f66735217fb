"""Captions and the closed vocabulary of the small text-to-portrait model.

A SynthHeads portrait's attributes (hair, skin, beard, glasses, hat, headband, expression, view) come from its
identity, expression preset and camera; ``caption`` writes them as a prompt (a random subset of the visible ones,
in random order, so partial prompts work), ``Vocabulary.encode`` turns a user's prompt into token ids and names the
words it does not know. Only what a 64 px frontal-ish render really shows is captioned (no hair under a hat, no
hair colour on a bald head).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..limits import MAX_PROMPT_CHARS, MAX_PROMPT_WORDS

#: Attribute groups -> their classes. Class 0 of the optional groups is "absent" and never captioned.
#: The attribute classifier has one head per group; adherence counts the requested (captioned) classes.
GROUPS: dict[str, tuple[str, ...]] = {
    "hair": ("bald", "short hair", "long hair", "voluminous hair"),
    "hair_colour": ("black", "brown", "blond", "auburn", "grey", "white", "blue", "pink", "green", "purple",
                    "teal", "orange", "red"),
    "skin": ("light skin", "medium skin", "dark skin"),
    "beard": ("clean-shaven", "stubble", "beard", "moustache"),
    "glasses": ("no glasses", "glasses", "sunglasses"),
    "hat": ("no hat", "hat"),
    "headband": ("no headband", "headband"),
    "expression": ("neutral", "smiling", "laughing", "open mouth", "surprised", "eyes closed", "angry",
                   "tongue out"),
    "view": ("frontal", "facing left", "facing right"),
}
#: Groups whose class 0 is "absent": captioned only when present (class > 0); "no hat" etc. are never asked for.
ABSENT_ZERO = ("hat", "headband", "glasses")

#: Expression class -> SynthHeads preset (avat3r.data.expressions) rendered for it.
EXPRESSION_PRESET = {"neutral": "neutral", "smiling": "smile", "laughing": "big_smile", "open mouth": "jaw_open",
                     "surprised": "surprise", "eyes closed": "eyes_closed", "angry": "angry", "tongue out": "tongue"}
_EXPRESSION_P = np.array([0.22, 0.18, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
#: View class -> camera azimuth in degrees (azimuth > 0: the camera at the subject's left, the face looks to image left).
VIEW_AZIMUTH = {"frontal": 0.0, "facing left": 20.0, "facing right": -20.0}
PORTRAIT_FOV_DEG = 17.0    # the portraits' camera (orbit_camera at distance 1): head and a little neck
BACKGROUND = (0.85, 0.85, 0.85)

_NATURAL = ("black", "brown", "brown", "brown", "blond", "auburn", "grey", "white")
_UNUSUAL = ("blue", "pink", "green", "purple", "teal", "orange", "red")
_HAIR_OF_STYLE = {"bald": "bald", "buzz": "short hair", "short": "short hair", "receding": "short hair",
                  "ponytail": "short hair", "bun": "short hair", "bob": "long hair", "long": "long hair",
                  "voluminous": "voluminous hair"}

# words a prompt may hold that carry no attribute (articles, the subject)
FILLER = ("a", "an", "the", "of", "with", "and", "photo", "portrait", "picture", "image", "person", "head", "face",
          "someone", "who", "is", "has", "having", "wearing", "in", "view", "hair", "skin", "skinned", "haired",
          "eyes", "mouth", "man", "woman", "boy", "girl", "guy", "lady", "young", "old", "render", "3d", "avatar")
# user spellings -> the caption's words
SYNONYMS = {"blonde": "blond", "gray": "grey", "silver": "grey", "ginger": "auburn", "redhead": "auburn",
            "smile": "smiling", "smiles": "smiling", "happy": "smiling", "laugh": "laughing", "grinning": "laughing",
            "mustache": "moustache", "bearded": "beard", "shaven": "clean-shaven", "spectacles": "glasses",
            "eyeglasses": "glasses", "shades": "sunglasses", "cap": "hat", "beanie": "hat", "surprise": "surprised",
            "shocked": "surprised", "mad": "angry", "closed": "closed", "turquoise": "teal", "violet": "purple",
            "fair": "light", "pale": "light", "tan": "medium", "olive": "medium", "curly": "voluminous",
            "afro": "voluminous", "bushy": "voluminous", "open-mouthed": "open", "stubbled": "stubble",
            "front": "frontal", "forward": "frontal"}

PAD, BOS = "<pad>", "<bos>"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())


def caption_words() -> list[str]:
    """Every word any caption uses (the model's vocabulary, besides PAD and BOS)."""
    out = set()
    for classes in GROUPS.values():
        for c in classes:
            out.update(_words(c))
    out.update(_words(" ".join(_TEMPLATES)))
    return sorted(out)


_TEMPLATES = ("a portrait of a person with {}", "a person with {}", "{}", "a photo of a head, {}", "portrait, {}")


@dataclass(frozen=True)
class Attributes:
    """One portrait's classes by group (None = not visible / not applicable)."""

    labels: dict

    def requested(self) -> dict:
        """The classes a caption may ask for: visible ones, without the 'absent' class of optional groups."""
        return {g: c for g, c in self.labels.items() if c is not None and not (g in ABSENT_ZERO and c == GROUPS[g][0])}


def attributes_of(identity, expression_name: str, view: str) -> Attributes:
    """The visible attributes of a SynthHeads identity (``avat3r.data.identity.Identity``) rendered with the
    expression class ``expression_name`` (a key of EXPRESSION_PRESET) from the view class ``view``."""
    from ..data.identity import _NATURAL_HAIR, _SKIN, _UNUSUAL_HAIR

    hat = bool(identity.hat)
    hair = None if hat else _HAIR_OF_STYLE[identity.hair_style]
    colour = None
    if hair not in (None, "bald"):
        table = np.concatenate([_NATURAL_HAIR, _UNUSUAL_HAIR])
        names = _NATURAL + _UNUSUAL
        colour = names[int(np.argmin(((table - np.asarray(identity.hair_color)) ** 2).sum(1)))]
    lum = float(np.asarray(identity.skin) @ np.array([0.3, 0.59, 0.11]))
    ramp = _SKIN @ np.array([0.3, 0.59, 0.11])
    # thirds of the skin ramp (light .. dark)
    skin = "light skin" if lum > ramp[1] - 0.02 else ("medium skin" if lum > ramp[3] + 0.02 else "dark skin")
    beard = {"none": "clean-shaven", "stubble": "stubble", "beard": "beard", "moustache": "moustache"}[identity.beard]
    glasses = {"none": "no glasses", "clear": "glasses", "sun": "sunglasses"}[identity.glasses]
    eyes_hidden = identity.glasses == "sun"
    if eyes_hidden and expression_name == "eyes closed":
        expression_name = None
    return Attributes({
        "hair": hair, "hair_colour": colour, "skin": skin, "beard": beard, "glasses": glasses,
        "hat": "hat" if hat else "no hat", "headband": "headband" if (identity.headband and not hat) else "no headband",
        "expression": expression_name, "view": view,
    })


def phrase(group: str, cls: str) -> str:
    """The words of one attribute in a caption."""
    if group == "hair_colour":
        return f"{cls} hair"
    return cls


def caption(attrs: Attributes, rng: np.random.Generator, keep: float = 0.75) -> str:
    """A random caption of ``attrs``: each requested attribute kept with probability ``keep`` (at least one),
    phrases shuffled, a random template. Hair colour merges with the hair style ("long blond hair")."""
    req = attrs.requested()
    groups = [g for g in req if rng.random() < keep] or [list(req)[rng.integers(len(req))]]
    parts = []
    if "hair_colour" in groups and "hair" in groups and req["hair"] != "bald":
        parts.append(req["hair"].replace(" hair", f" {req['hair_colour']} hair"))
        groups = [g for g in groups if g not in ("hair", "hair_colour")]
    parts += [phrase(g, req[g]) for g in groups]
    order = rng.permutation(len(parts))
    text = ", ".join(parts[i] for i in order)
    return _TEMPLATES[rng.integers(len(_TEMPLATES))].format(text)


def parse_prompt(prompt: str) -> dict:
    """The attribute classes a prompt asks for, by group (what the adherence benchmark checks): the longest
    class phrase of each group found in the prompt's normalised words."""
    words = " ".join(Vocabulary.normalise(_words(prompt)))
    found = {}
    for g, classes in GROUPS.items():
        best = None
        for c in classes:
            if c in ABSENT_ZERO_CLASSES:
                continue
            pat = re.escape(c).replace(r"\ hair", r"(\ [a-z-]+)?\ hair")  # "long blond hair" asks for long hair
            if re.search(rf"(^| ){pat}( |$)", words) and (best is None or len(c) > len(best)):
                best = c
        if best is not None:
            found[g] = best
    return found


ABSENT_ZERO_CLASSES = {GROUPS[g][0] for g in ABSENT_ZERO}


class Vocabulary:
    """Closed vocabulary: words -> ids (0 = PAD, 1 = BOS), synonyms folded, fillers dropped, unknown words reported."""

    def __init__(self, words: list[str], max_len: int = 24):
        self.words = list(words)
        self.index = {w: i + 2 for i, w in enumerate(self.words)}
        self.max_len = int(max_len)

    def __len__(self) -> int:
        return len(self.words) + 2

    @staticmethod
    def normalise(words: list[str]) -> list[str]:
        return [SYNONYMS.get(w, w) for w in words]

    def check(self, prompt) -> str:
        """A prompt's text, or InputError naming the bound (limits.MAX_PROMPT_CHARS / MAX_PROMPT_WORDS)."""
        if not isinstance(prompt, str):
            raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed "
                             "(limits.MAX_PROMPT_CHARS): describe the head in a few words")
        if len(_words(prompt)) > MAX_PROMPT_WORDS:
            raise InputError(f"the prompt has {len(_words(prompt))} words; at most {MAX_PROMPT_WORDS} are allowed "
                             "(limits.MAX_PROMPT_WORDS)")
        return prompt

    def encode(self, prompt: str) -> tuple[list[int], list[str]]:
        """prompt -> (ids [max_len] starting with BOS, padded with PAD; the words not understood). An empty
        prompt gives BOS alone: the unconditional input of classifier-free guidance."""
        ids, unknown = [1], []
        for w in self.normalise(_words(prompt)):
            if w in self.index:
                ids.append(self.index[w])
            elif w not in FILLER:
                unknown.append(w)
        ids = ids[: self.max_len]
        return ids + [0] * (self.max_len - len(ids)), unknown

    def understood(self, prompt: str) -> list[str]:
        """The words of ``prompt`` that carry meaning for the model (after synonyms)."""
        return [w for w in self.normalise(_words(prompt)) if w in self.index and w not in FILLER]

    def vocabulary_help(self) -> str:
        return "; ".join(f"{g}: " + ", ".join(c for c in cs if c not in ABSENT_ZERO_CLASSES) for g, cs in GROUPS.items())
