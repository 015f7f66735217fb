"""The training objective of Avat3r (paper Sec. 3.3, eqs. 15-18).

    L = 0.8 * L1(I_nv, I_gt) + 0.2 * (1 - SSIM(I_nv, I_gt)) + 0.01 * LPIPS(I_nv, I_gt)

``L_ssim`` of eq. 16 is written as SSIM in the paper; as in 3D Gaussian Splatting (which the paper follows) the
term that is minimised is ``1 - SSIM``. LPIPS is switched on after ``lpips_start`` steps (paper: 3M of 3.5M) and
only when its pretrained weights are present (see ``avat3r.model.lpips``); otherwise the objective says so once.
SSIM and L1 are ``avat3r.similarity``'s (the evaluation metrics use the same functions).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..similarity import l1, ssim

__all__ = ["ObjectiveConfig", "Objective"]

log = logging.getLogger(__name__)


@dataclass
class ObjectiveConfig:
    """Weights of eq. 18 and the step at which LPIPS joins (paper: 3M of 3.5M steps)."""

    lambda_l1: float = 0.8
    lambda_ssim: float = 0.2
    lambda_lpips: float = 0.01
    lpips_start: int = 3_000_000
    lpips_net: str = "vgg"  # "vgg" or "alex"
    lpips_weights: str | None = None  # folder / file / Hub repo of the LPIPS weights (see avat3r.model.lpips)


class Objective(torch.nn.Module):
    """Eq. 18 on renders and targets [B, 3, H, W] in [0, 1]. Returns (loss, {term: detached 0-d tensor}).

    The terms stay tensors so that a training step does not wait for the GPU; call ``float`` when logging."""

    def __init__(self, cfg: ObjectiveConfig | None = None, lpips: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ObjectiveConfig()
        self.lpips = lpips
        self._said_off = False
        if lpips is None and self.cfg.lambda_lpips > 0:
            from ..model.lpips import try_load_lpips

            self.lpips = try_load_lpips(self.cfg.lpips_net, self.cfg.lpips_weights)
        if self.lpips is not None:
            self.lpips.requires_grad_(False).eval()

    @property
    def lpips_available(self) -> bool:
        return self.lpips is not None

    def lpips_active(self, step: int) -> bool:
        return self.lpips is not None and self.cfg.lambda_lpips > 0 and step >= self.cfg.lpips_start

    def forward(self, pred: torch.Tensor, target: torch.Tensor, step: int = 0,
                weight: torch.Tensor | None = None, region: torch.Tensor | None = None,
                lambda_region: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """weight [B, 1, H, W] (optional): per-pixel weights of the L1 term (TrainConfig.lambda_expression, "area").
        region [B, 1, H, W] (optional, "mean"): adds lambda_region x the mean L1 inside each image's region (images
        without one left out), so that a blink's few pixels weigh as much as an open jaw's many. The logged ``l1``
        stays the unweighted one so that runs with and without either compare."""
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = pred.float(), target.float()
            l_l1 = l1(pred, target)
            l_ssim = 1.0 - ssim(pred, target)
            terms = {"l1": l_l1.detach(), "ssim": 1.0 - l_ssim.detach()}
            if weight is not None:
                l_l1 = ((pred - target).abs() * weight.float()).mean()
                terms["l1_weighted"] = l_l1.detach()
            if region is not None:
                r = region.float()
                area = r.flatten(1).sum(1)  # [B] pixels
                err = ((pred - target).abs() * r).flatten(1).sum(1) / (pred.shape[1] * area.clamp_min(1.0))
                has = (area > 0).float()
                l_region = (err * has).sum() / has.sum().clamp_min(1.0)
                l_l1 = l_l1 + lambda_region * l_region
                terms["l1_region"] = l_region.detach()
            loss = self.cfg.lambda_l1 * l_l1 + self.cfg.lambda_ssim * l_ssim
            if self.lpips_active(step):
                l_lp = self.lpips(pred, target).mean()
                loss = loss + self.cfg.lambda_lpips * l_lp
                terms["lpips"] = l_lp.detach()
            elif step >= self.cfg.lpips_start and self.cfg.lambda_lpips > 0 and not self._said_off:
                log.warning(
                    "LPIPS is OFF from step %d on although lpips_start=%d: no LPIPS weights were found "
                    "(give --lpips-weights DIR; see docs/TRAINING.md). Training continues with 0.8 L1 + 0.2 (1-SSIM).",
                    step, self.cfg.lpips_start,
                )
                self._said_off = True
        terms["loss"] = loss.detach()
        return loss, terms
