"""The Avat3r network (paper Sec. 3): config presets, the model, its Gaussian maps, and checkpoint I/O."""

from .config import PRESETS, ExpressionSpace, ModelConfig
from .heads import GaussianMaps
from .network import Avat3rModel, AvatarState

__all__ = ["ModelConfig", "ExpressionSpace", "PRESETS", "Avat3rModel", "AvatarState", "GaussianMaps"]
