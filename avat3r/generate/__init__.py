"""Generated heads: GGHead (a StyleGAN2 generator of UV-space Gaussian attribute maps on a template head).

``GGHeadGenerator`` (model.py) with ``GGHeadConfig`` presets (config.py), StyleGAN2 layers (layers.py), the UV
template (template.py), official checkpoints read without executing pickles (official.py), training (train.py),
and the shipped weights' loader (``load_generator``, hub.py).
"""

from .config import PRESETS, GGHeadConfig, preset
from .model import GGHeadGenerator, camera_labels

__all__ = ["GGHeadConfig", "PRESETS", "preset", "GGHeadGenerator", "camera_labels"]
