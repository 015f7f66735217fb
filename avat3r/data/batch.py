"""One training/evaluation batch and the differentiable path from it to rendered supervision views.

A batch (paper Sec. 4.1) = per item V = 4 input views (images, prior positions, confidence, Plücker rays, the
input views' own expressions) + T = 8 supervision views of one target expression (images and cameras) + the
target expression code z_exp. The network inputs are built by the one adapter ``avat3r.model.inputs``
(as at inference); ``render_batch`` runs network -> Gaussians (eq. 13) -> splatting (eq. 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ..cameras import Cameras
from ..errors import InputError
from ..model.inputs import NetworkInputs, channels_first

__all__ = ["Batch", "collate", "render_batch", "predict_gaussians"]


@dataclass
class Batch:
    """B items. images/positions [B, V, 3, H, W]; confidence/masks [B, V, 1, H, W]; plucker [B, V, 6, H, W];
    expression [B, C]; input_expressions [B, V, C]; target_images [B, T, 3, Ht, Wt]; target_cameras /
    input_cameras: one Cameras per item; features [B, V, Cf, Hf, Wf] or None; meta: one dict per item."""

    images: torch.Tensor
    positions: torch.Tensor
    confidence: torch.Tensor
    plucker: torch.Tensor
    expression: torch.Tensor
    target_images: torch.Tensor
    target_cameras: list[Cameras]
    input_cameras: list[Cameras]
    masks: torch.Tensor | None = None
    input_expressions: torch.Tensor | None = None
    features: torch.Tensor | None = None
    target_regions: torch.Tensor | None = None  # [B, T, 1, Ht, Wt] pixels the target expression changes (optional)
    meta: list[dict] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def inputs(self) -> NetworkInputs:
        """What the network reads (views, prior maps, rays, features) as ``NetworkInputs``."""
        return NetworkInputs(self.images, self.positions, self.confidence, self.plucker, self.features)

    def to(self, device, non_blocking: bool = False) -> "Batch":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device, non_blocking=non_blocking)
            elif f.name.endswith("_cameras"):
                v = [c.to(device) for c in v]
            out[f.name] = v
        return Batch(**out)

    def without_prior(self) -> "Batch":
        """The 'no prior' ablation: zero position maps; Gaussians spawn on the foreground mask."""
        inp = self.inputs.without_prior(self.masks)
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["positions"], out["confidence"] = inp.positions, inp.confidence
        return Batch(**out)

    def with_views(self, keep: int, prior: str = "visual_hull", hull_config=None) -> "Batch":
        """The first ``keep`` input views of every item (view dropout in training, TrainConfig.view_dropout). A
        visual-hull prior is carved again from the kept views' masks, as inference carves it from the views it is
        given (the maps of all V views would tell the network about views it no longer sees); the other render
        priors are per view ("oracle" depth, "none") and are cut like the rest."""
        V = self.images.shape[1]
        if not 1 <= keep <= V:
            raise InputError(f"with_views: keep must be in 1..{V}, got {keep}")
        cut = lambda x: None if x is None else x[:, :keep]  # noqa: E731
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("images", "positions", "confidence", "plucker", "masks", "input_expressions", "features"):
            out[k] = cut(out[k])
        out["input_cameras"] = [c[list(range(keep))] for c in self.input_cameras]
        if prior == "visual_hull" and keep < V:
            if self.masks is None:
                raise InputError("with_views: a visual-hull prior needs the input masks to be carved again")
            from ..priors.visual_hull import visual_hull_maps_batched

            pos, conf = visual_hull_maps_batched(out["masks"][:, :, 0].clamp(0, 1), Cameras.cat(out["input_cameras"]),
                                                 hull_config)
            out["positions"] = pos.permute(0, 1, 4, 2, 3).contiguous()
            out["confidence"] = conf[:, :, None].contiguous()
        elif prior not in ("visual_hull", "oracle", "none"):
            raise InputError(f"with_views: the {prior!r} prior's maps cannot be recomputed from fewer views here; "
                             "train with view_dropout=0 or the visual-hull prior")
        return Batch(**out)

    def with_expression(self, expression: torch.Tensor) -> "Batch":
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["expression"] = expression.to(self.expression).expand_as(self.expression)
        return Batch(**out)


def _t(x, name: str) -> torch.Tensor:
    if x is None:
        raise InputError(f"training sample has no {name!r}")
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()


def _get(sample, *names):
    for n in names:
        v = sample.get(n) if isinstance(sample, dict) else getattr(sample, n, None)
        if v is not None:
            return v
    return None


def collate(samples: list) -> Batch:
    """Stack dataset samples (SynthHeads' sampler dicts, or the same keys channel-last) into a Batch (tensors
    stay on the device the samples were made on; ``Batch.to`` moves them).

    A sample provides input_images [V, 3, H, W], input_cameras (Cameras), prior_positions [V, 3, H, W]
    (alias input_positions), prior_confidence [V, 1, H, W] (alias input_confidence), target_images
    [T, 3, Ht, Wt], target_cameras (Cameras), target_expression [C]; optionally input_masks [V, 1, H, W],
    input_expressions [V, C], input_features [V, Cf, Hf, Wf], target_expression_region [T, 1, Ht, Wt]; anything else
    goes to ``meta``."""
    known = {"input_images", "images", "input_cameras", "cameras", "prior_positions", "input_positions", "positions",
             "prior_confidence", "input_confidence", "confidence", "input_masks", "masks", "input_features", "features",
             "target_images", "target_cameras", "target_expression", "expression", "input_expressions", "target_masks",
             "target_expression_region"}
    items = []
    for s in samples:
        imgs = channels_first(_t(_get(s, "input_images", "images"), "input_images"), 3, "input_images")
        cams = _get(s, "input_cameras", "cameras")
        tcams = _get(s, "target_cameras")
        if not isinstance(cams, Cameras) or not isinstance(tcams, Cameras):
            raise InputError("training sample: input_cameras and target_cameras must be avat3r.cameras.Cameras")
        tcams = tcams.to(imgs.device)
        V, _, H, W = imgs.shape
        inp = NetworkInputs.from_views(  # the adapter inference uses too
            imgs, cams, _t(_get(s, "prior_positions", "input_positions", "positions"), "prior_positions"),
            _t(_get(s, "prior_confidence", "input_confidence", "confidence"), "prior_confidence"),
            None if _get(s, "input_features", "features") is None else _t(_get(s, "input_features", "features"), "input_features"))
        masks = _get(s, "input_masks", "masks")
        zin = _get(s, "input_expressions")
        region = _get(s, "target_expression_region")
        meta = dict(_get(s, "meta") or {})
        if isinstance(s, dict):
            meta.update({k: v for k, v in s.items() if k not in known and k != "meta"})
        items.append(dict(
            images=inp.images[0], positions=inp.positions[0], confidence=inp.confidence[0], plucker=inp.plucker[0],
            features=None if inp.features is None else inp.features[0],
            expression=_t(_get(s, "target_expression", "expression"), "target_expression").reshape(-1),
            target_images=channels_first(_t(_get(s, "target_images"), "target_images"), 3, "target_images"),
            masks=None if masks is None else _t(masks, "input_masks").reshape(V, 1, H, W),
            input_expressions=None if zin is None else _t(zin, "input_expressions"),
            target_regions=None if region is None else _t(region, "target_expression_region"),
            input_cameras=cams.to(imgs.device), target_cameras=tcams, meta=meta,
        ))

    def stack(k):
        vals = [it[k] for it in items]
        if any(v is None for v in vals):
            return None
        return torch.stack(vals)

    return Batch(
        images=stack("images"), positions=stack("positions"), confidence=stack("confidence"),
        plucker=stack("plucker"), expression=stack("expression"), target_images=stack("target_images"),
        target_cameras=[it["target_cameras"] for it in items], input_cameras=[it["input_cameras"] for it in items],
        masks=stack("masks"), input_expressions=stack("input_expressions"), features=stack("features"),
        target_regions=stack("target_regions"), meta=[it["meta"] for it in items],
    )


def predict_gaussians(model, batch: Batch, expression: torch.Tensor | None = None):
    """Network forward (eqs. 4-13) -> list of B Gaussians (masked, eq. 13)."""
    net = model.module if hasattr(model, "module") else model
    return net.to_gaussians(batch.inputs.forward(model, batch.expression if expression is None else expression))


def render_batch(model, batch: Batch, background=(0.0, 0.0, 0.0), backend: str = "auto") -> torch.Tensor:
    """Render every item's Gaussians into its supervision cameras -> [B, T, 3, Ht, Wt] float32 (eq. 14)."""
    from ..render import render

    gs = predict_gaussians(model, batch)
    out = []
    for g, cams in zip(gs, batch.target_cameras):
        g = g.to(torch.float32)  # the rasteriser runs in float32 even under bf16 autocast
        with torch.autocast(device_type=g.means.device.type, enabled=False):
            color = render(g, cams, background=background, backend=backend).color  # [T, Ht, Wt, 3]
        out.append(color.permute(0, 3, 1, 2))
    return torch.stack(out)
