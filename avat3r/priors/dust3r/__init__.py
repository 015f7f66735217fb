"""DUSt3R (naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt) as the paper's position prior (eq. 2); see docs/PRIORS.md."""

from .align import AlignConfig, AlignResult, align_known_cameras, estimate_cameras
from .inference import PairPredictions, make_pairs, pairwise_inference
from .load import HUB_REPO, config_from_hub, convert_state_dict, find_dust3r_weights, load_dust3r
from .model import PRESETS, Dust3rConfig, Dust3rNet, postprocess_pointmap
from .preprocess import PreparedViews, prepare_images
from .prior import Dust3rPrior, Dust3rPriorConfig, normalise_confidence

__all__ = [
    "AlignConfig", "AlignResult", "align_known_cameras", "estimate_cameras", "PairPredictions", "make_pairs",
    "pairwise_inference", "HUB_REPO", "config_from_hub", "convert_state_dict", "find_dust3r_weights", "load_dust3r",
    "PRESETS", "Dust3rConfig", "Dust3rNet", "postprocess_pointmap", "PreparedViews", "prepare_images", "Dust3rPrior",
    "Dust3rPriorConfig", "normalise_confidence",
]
