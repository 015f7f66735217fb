"""The one registry of position priors: name -> constructor, and the rules that tie a checkpoint to its prior.

Every stage that names a prior goes through here: the pipeline builds the prior a checkpoint records
(``serving_prior``), the training config derives the recorded prior from its data (``data_prior``), the SynthHeads
sampler computes training maps by name (``render_maps``), evaluation builds its data with the model's prior.

    name          what                                                            serves user captures
    visual_hull   weight-free: masks + cameras -> carved hull (``visual_hull``)    yes
    dust3r        DUSt3R pairs + alignment (``dust3r/``); training reads a cache   yes (needs its weights)
    oracle        ground-truth depth (SynthHeads ablations only)                  no
    none          no positions; confidence = the foreground mask ("no_prior")     yes (needs masks)

A network only works with the prior it was trained with: a checkpoint records it (``ModelConfig.prior``), derived
from its training data, and ``check_checkpoint_prior`` refuses to serve it with another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import Avat3rError, CheckpointError, InputError
from .base import hard_confidence

if TYPE_CHECKING:
    from ..cameras import Cameras
    from .base import PositionPrior

__all__ = ["PriorSpec", "PRIORS", "get_spec", "build_prior", "serving_prior", "data_prior",
           "check_checkpoint_prior", "render_maps"]


@dataclass(frozen=True)
class PriorSpec:
    name: str
    build: Callable[..., "PositionPrior"]  # build(device=..., **kw) -> PositionPrior
    servable: bool                  # usable on a user's capture (the oracle needs ground-truth depth)
    from_render: bool               # the SynthHeads sampler can compute it from its renders (else: a prior cache)
    summary: str


def _visual_hull(device="cpu", **kw):
    from .visual_hull import VisualHullPrior

    return VisualHullPrior(device=device, **kw)


def _dust3r(device="cpu", **kw):
    from .dust3r import Dust3rPrior

    return Dust3rPrior.from_pretrained(device=device, **kw)


def _oracle(device="cpu", **kw):
    from .visual_hull import OraclePrior

    return OraclePrior(device=device, **kw)


def _none(device="cpu", **kw):
    from .base import NoPrior

    return NoPrior(device=device, **kw)


PRIORS: dict[str, PriorSpec] = {
    "visual_hull": PriorSpec("visual_hull", _visual_hull, True, True, "weight-free visual hull from masks + cameras"),
    "dust3r": PriorSpec("dust3r", _dust3r, True, False, "DUSt3R (official 512 DPT weights), known-camera alignment"),
    "oracle": PriorSpec("oracle", _oracle, False, True, "ground-truth depth (SynthHeads ablations only)"),
    "none": PriorSpec("none", _none, True, True, "no positions; Gaussians spawn on the foreground mask"),
}


def get_spec(name: str) -> PriorSpec:
    if name not in PRIORS:
        raise InputError(f"unknown position prior {name!r}; known: {', '.join(PRIORS)}")
    return PRIORS[name]


def build_prior(name: str, device: str | torch.device = "cpu", **kw) -> "PositionPrior":
    """The prior ``name`` on ``device`` (kw go to its constructor, e.g. ``weights=`` for DUSt3R)."""
    return get_spec(name).build(device=device, **kw)


def serving_prior(name: str, device: str | torch.device = "cpu") -> "PositionPrior":
    """The prior a checkpoint records, for serving user captures; CheckpointError says what to do if it cannot be."""
    check_checkpoint_prior(name)
    try:
        return build_prior(name, device)
    except Avat3rError as e:
        raise CheckpointError(
            f"these weights were trained with the {name!r} position prior, but it is not available: {e}. "
            "Download its weights (see docs/PRIORS.md) or use a checkpoint trained with the 'visual_hull' prior"
        ) from None
    except ImportError as e:
        raise CheckpointError(f"these weights need the {name!r} position prior, which cannot be imported here ({e})") from None


def data_prior(train_config: dict) -> str:
    """The prior of the data a run trains on, from its TrainConfig (as a dict, also old checkpoints' ones):
    "none" without prior positions, else ``data_options["prior"]`` or ``prior`` (default "visual_hull")."""
    if not train_config.get("use_prior", True):
        return "none"
    return str((train_config.get("data_options") or {}).get("prior") or train_config.get("prior") or "visual_hull")


def check_checkpoint_prior(recorded: str, *, requested: str | None = None, train_config: dict | None = None,
                           where: str = "these weights") -> None:
    """Refuse (CheckpointError) to serve weights with a prior other than the one their data used: an unknown or
    unservable recorded prior, a ``requested`` one that differs, or a record that contradicts ``train_config``
    (the run's TrainConfig dict, e.g. from ``training.json``)."""
    if recorded not in PRIORS:
        raise CheckpointError(f"{where} record the unknown position prior {recorded!r}; known: {', '.join(PRIORS)}")
    if train_config is not None:
        used = data_prior(train_config)
        if used != recorded:
            raise CheckpointError(
                f"{where} record the {recorded!r} prior but were trained on data with the {used!r} prior "
                f"(training.json), so the network would get positions it never saw. Set \"prior\": \"{used}\" in "
                "config.json (or export the run again with `python -m avat3r.train.export RUN OUT`)"
            )
    if requested is not None and requested != recorded:
        raise CheckpointError(
            f"prior {requested!r} was requested but {where} were trained with the {recorded!r} prior; the network "
            f"only works with the prior it was trained with: leave the prior unset or use weights trained with {requested!r}"
        )
    if not PRIORS[recorded].servable:
        raise CheckpointError(
            f"{where} were trained with the {recorded!r} prior ({PRIORS[recorded].summary}), which exists only for "
            "ablations on synthetic data; use a checkpoint trained with the 'visual_hull' or 'dust3r' prior"
        )


def render_maps(name: str, masks: torch.Tensor, cameras: "Cameras", depth: torch.Tensor | None = None,
                hull_config=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training maps from a renderer's output (SynthHeads): masks [V, H, W] in [0, 1], V cameras, depth [V, H, W]
    (for the oracle) -> (positions [V, H, W, 3], confidence [V, H, W]) on the masks' device."""
    spec = get_spec(name)
    if not spec.from_render:
        raise InputError(f"the {name!r} prior is not computed from renders; train it from a prior cache "
                         "(TrainConfig.prior_cache, see docs/TRAINING.md)")
    if name == "visual_hull":
        from .visual_hull import visual_hull_maps

        return visual_hull_maps(masks, cameras, hull_config)
    if name == "oracle":
        from .visual_hull import depth_to_positions

        if depth is None:
            raise InputError("the 'oracle' prior needs rendered depth")
        return depth_to_positions(depth, cameras), hard_confidence(masks)
    return torch.zeros(*masks.shape, 3, device=masks.device), masks
