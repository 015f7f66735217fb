"""Dust3rPrior: the PositionPrior of the paper (eq. 2): I^pos, I^conf = DUSt3R(I, pi).

Capture (V views, known cameras) -> prepare images (long side 512, multiples of 16) -> pairwise inference
over the scene graph -> global alignment with the known cameras (intrinsics rescaled to the prepared crop)
-> per-view depth maps, resampled to the capture's resolution and lifted along the capture's own rays into the
head-centric world, and confidences.

Confidence semantics (eq. 13, keep pixels with I^conf > tau = 0.5): DUSt3R's confidence is C = 1 + exp(c)
in (1, inf). We report ``(C - 1) / (C - 1 + t - 1)`` in [0, 1) with ``t = conf_at_half``; for the default
``t = 2`` this is ``1 - 1/C = sigmoid(c)``, the logistic of the network's raw confidence output, so tau = 0.5
keeps the pixels with C > 2 (raw logit > 0). The per-view C is the maximum over the pairs the view is in (as
DUSt3R's ``im_conf``). ``conf_at_half`` moves that point (DUSt3R's demo masks at C > 3: set it to 3).
With ``use_masks`` and a capture that has masks, background pixels (mask < 0.5) get confidence 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...cameras import Cameras, pixel_rays
from ...capture import Capture
from ...errors import InputError
from ..base import PriorOutput
from .align import AlignConfig, AlignResult, align_known_cameras, estimate_cameras
from .inference import make_pairs, pairwise_inference
from .load import load_dust3r
from .model import Dust3rNet
from .preprocess import prepare_images

__all__ = ["Dust3rPrior", "Dust3rPriorConfig", "normalise_confidence"]


def normalise_confidence(conf: torch.Tensor, conf_at_half: float = 2.0) -> torch.Tensor:
    """DUSt3R confidence C >= 1 -> [0, 1): (C-1) / (C-1 + t-1) with t = conf_at_half (t=2: 1 - 1/C = sigmoid(raw))."""
    a = (conf - 1).clamp(min=0)
    return a / (a + (conf_at_half - 1))


@dataclass
class Dust3rPriorConfig:
    long_side: int = 512            # DUSt3R's resolution (the 512 checkpoint)
    square_ok: bool = True          # keep square crops square (the official loader crops them to 4:3)
    graph: str = "complete"         # scene graph: 'complete' (all ordered pairs), 'half', 'star'
    batch_size: int = 8             # pairs per forward pass
    amp: bool = True                # bf16 transformer on CUDA
    conf_at_half: float = 2.0       # DUSt3R confidence mapped to 0.5 (tau of eq. 13)
    use_masks: bool = True          # zero the confidence outside the capture's masks
    align: AlignConfig = field(default_factory=AlignConfig)


class Dust3rPrior:
    """PositionPrior 'dust3r'. ``weights``: a file/folder (or None: $AVAT3R_DUST3R, weights/dust3r/, the Hub);
    ``model``: an already built Dust3rNet (tests, benchmarks). The network loads on first use."""

    name = "dust3r"

    def __init__(self, weights=None, *, model: Dust3rNet | None = None, config: Dust3rPriorConfig | None = None,
                 device=None, allow_download: bool = True):
        self.weights, self._model, self.config = weights, model, config or Dust3rPriorConfig()
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.allow_download = allow_download
        self.last_alignment: AlignResult | None = None

    @classmethod
    def from_pretrained(cls, weights=None, *, device=None, config: Dust3rPriorConfig | None = None,
                        allow_download: bool = True) -> "Dust3rPrior":
        """Load the official weights now (CheckpointError, saying which file to get, when they are missing)."""
        prior = cls(weights, config=config, device=device, allow_download=allow_download)
        _ = prior.model
        return prior

    @property
    def model(self) -> Dust3rNet:
        if self._model is None:
            self._model = load_dust3r(self.weights, device=self.device, allow_download=self.allow_download)
        return self._model.to(self.device).eval()

    # ---- steps ---------------------------------------------------------------------------------------
    def _predict(self, images: np.ndarray, cameras: Cameras | None):
        cfg = self.config
        if images.shape[0] < 2:
            raise InputError(f"DUSt3R needs at least 2 views, got {images.shape[0]}; use the 'visual_hull' prior for one view")
        prep = prepare_images(images, cameras, cfg.long_side, self.model.config.patch_size, cfg.square_ok)
        pred = pairwise_inference(self.model, prep.images, make_pairs(len(images), cfg.graph), cfg.batch_size, cfg.amp)
        return prep, pred

    def _to_capture_resolution(self, capture: Capture, prep, res: AlignResult) -> PriorOutput:
        """Depth at the prepared crop -> depth on the capture's pixel grid (nearest, no flying pixels) -> world points."""
        H, W = capture.size
        (H2, W2), (x0, y0) = prep.resized, prep.crop
        h, w = res.depth.shape[1:]
        dev = res.depth.device
        # capture pixel centre -> prepared-crop pixel coordinates -> grid_sample coords in [-1, 1]
        ys = (torch.arange(H, device=dev) + 0.5) * (H2 / H) - y0
        xs = (torch.arange(W, device=dev) + 0.5) * (W2 / W) - x0
        gy, gx = torch.meshgrid(ys / h * 2 - 1, xs / w * 2 - 1, indexing="ij")
        grid = torch.stack([gx, gy], -1)[None].expand(len(capture), -1, -1, -1)
        depth = F.grid_sample(res.depth[:, None], grid, mode="nearest", padding_mode="border", align_corners=False)[:, 0]
        conf = F.grid_sample(res.conf[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]
        inside = ((grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1)).float()
        conf = normalise_confidence(conf, self.config.conf_at_half) * inside
        cams = capture.cameras.to(dev)
        o, d = pixel_rays(cams, H, W)                                    # unit directions
        z_per_unit = torch.einsum("vij,vhwj->vhwi", cams.world_to_cam[:, :3, :3], d)[..., 2]
        pos = o + d * (depth / z_per_unit.clamp(min=1e-8))[..., None]
        if self.config.use_masks and capture.masks is not None:
            conf = conf * torch.as_tensor(capture.masks >= 0.5, device=dev).float()
        return PriorOutput(pos.float(), conf.float())

    # ---- PositionPrior -------------------------------------------------------------------------------
    def __call__(self, capture: Capture) -> PriorOutput:
        prep, pred = self._predict(capture.images, capture.cameras)
        res = align_known_cameras(pred, prep.cameras, self.config.align)
        self.last_alignment = res
        return self._to_capture_resolution(capture, prep, res)

    def estimate_cameras(self, images: np.ndarray, depth0: float = 1.0) -> tuple[Cameras, PriorOutput]:
        """Pose-free: images [V, H, W, 3] -> (estimated cameras at the images' resolution, prior output in the
        estimated frame: camera 0's frame, view 0's median depth = depth0). For front ends without cameras."""
        prep, pred = self._predict(images, None)
        cams_prep = estimate_cameras(pred, len(images), depth0)
        res = align_known_cameras(pred, cams_prep, self.config.align)
        self.last_alignment = res
        H, W = images.shape[1:3]
        (H2, W2), (x0, y0) = prep.resized, prep.crop
        K = cams_prep.K.clone()  # back from the prepared crop to the input images
        K[:, 0, 2] += x0
        K[:, 1, 2] += y0
        K[:, 0] /= W2 / W
        K[:, 1] /= H2 / H
        cams = Cameras(K, cams_prep.world_to_cam, W, H)
        cap = Capture(images.astype(np.float32), cams, [str(i) for i in range(len(images))])
        return cams, self._to_capture_resolution(cap, prep, res)
