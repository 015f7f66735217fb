"""Training on a precomputed position prior (paper supp. C: DUSt3R maps are computed once, not in the loop).

A run with ``TrainConfig.prior = "dust3r"`` (any prior the sampler cannot compute from its renders) and
``TrainConfig.prior_cache = DIR`` reads the input views' position/confidence maps from an
``avat3r.priors.cache.PriorCache`` instead of computing them:

    cfg = TrainConfig(prior="dust3r", prior_cache="cache/dust3r", data_options={"length": 10_000}, ...)
    avat3r train --set prior=dust3r --set prior_cache=cache/dust3r --fill-prior-cache 10000   # once: DUSt3R
    Trainer(cfg).fit()             # samples 0..9999 with maps from the cache; checkpoints record "dust3r"

Entries are keyed (subject = a hash of the data config that makes the inputs, frame = the sample index, camera =
``v<k>`` the input slot); each sample's maps come from one prior call on its V input views, exactly what
``Pipeline.reconstruct`` computes on a capture of those views at serving time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import torch

from ..cameras import Cameras
from ..capture import Capture
from ..errors import CheckpointError, InputError
from ..priors.cache import PriorCache
from ..priors.registry import build_prior, get_spec

__all__ = ["CachedPriorDataset", "fill_prior_cache", "data_key", "open_cache", "capture_of_sample", "check_run_prior"]

log = logging.getLogger("avat3r.train")

# sampler fields that do not change the input views (so they do not change the cache key)
_NOT_INPUTS = {"prior", "device", "backend", "num_targets", "target_size", "hull"}


def data_key(dataset) -> str:
    """Cache subject of a dataset: its kind + a hash of the config fields that decide the input views."""
    sampler = getattr(dataset, "sampler", None)
    cfg = getattr(sampler, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        raise InputError(f"prior cache: cannot key samples of {type(dataset).__name__} (a SynthHeads dataset is needed)")
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_INPUTS}
    text = json.dumps(d, sort_keys=True, default=str)
    return f"{type(dataset).__name__.lower()}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def open_cache(root, prior: str) -> PriorCache:
    """The cache folder for ``prior`` position maps (no features: the feature path reads its own maps)."""
    get_spec(prior)
    return PriorCache(root, prior=prior)


class CachedPriorDataset(torch.utils.data.Dataset):
    """``dataset`` (samples or, when ``deferred``, plans) with prior_positions / prior_confidence read from ``cache``.

    Item i is the sample of ``dataset[i]`` with its input views' maps replaced by the cached ones; the cache must
    cover samples 0..len-1 (``fill_prior_cache``). Keeps the wrapped dataset's expression space and deferral."""

    def __init__(self, dataset, cache: PriorCache, length: int | None = None):
        self.dataset, self.cache = dataset, cache
        self.key = data_key(dataset)
        self.prior = cache.prior
        n = len(dataset) if length is None else min(int(length), len(dataset))
        self.length = n
        for name in ("expression_names", "expression_presets", "sampler"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    @property
    def deferred(self) -> bool:
        return bool(getattr(self.dataset, "deferred", False))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        item = self.dataset[i]
        return item if self.deferred else self._with_maps(item)

    def realize(self, item: dict, device=None) -> dict:
        """A plan -> the sample on ``device`` with the cached maps (deferred mode; see SynthHeadsDataset.realize)."""
        return self._with_maps(self.dataset.realize(item, device))

    def _with_maps(self, sample: dict) -> dict:
        frame = f"{int(sample['index']):09d}"
        V = sample["input_images"].shape[0]
        dev = sample["input_images"].device
        ents = []
        for k in range(V):
            if not self.cache.has(self.key, frame, f"v{k}"):
                raise InputError(
                    f"prior cache {self.cache.root}: no {self.prior!r} maps for sample {int(sample['index'])} view {k} "
                    f"(key {self.key}); fill it first: avat3r.train.priors.fill_prior_cache(cfg, count)")
            ents.append(self.cache.read(self.key, frame, f"v{k}"))
        out = dict(sample)
        out["prior_positions"] = torch.stack([e["positions"] for e in ents]).permute(0, 3, 1, 2).contiguous().to(dev)
        out["prior_confidence"] = torch.stack([e["confidence"] for e in ents])[:, None].contiguous().to(dev)
        return out


def capture_of_sample(sample: dict) -> Capture:
    """A training sample's input views as a Capture (images, cameras, masks) - what a prior sees at serving time."""
    imgs = sample["input_images"].permute(0, 2, 3, 1).float().cpu().numpy()
    cams: Cameras = sample["input_cameras"].to("cpu")
    masks = sample["input_masks"][:, 0].float().cpu().numpy() if "input_masks" in sample else None
    return Capture(imgs, cams, [f"v{k}" for k in range(len(imgs))], masks)


def fill_prior_cache(dataset, cache: PriorCache, prior=None, *, device: str | torch.device = "cpu",
                     progress: bool = False) -> int:
    """Compute the maps of every sample of ``dataset`` (a SynthHeads dataset made without the cache, see
    ``build_dataset(cfg, cached_prior=False, length=count)``) once, with ``prior`` (default: the registry's
    ``cache.prior`` on ``device``: the real DUSt3R code path and weights); skips cached samples.
    Returns the number of samples computed."""
    key = data_key(dataset)
    prior = prior if prior is not None else build_prior(cache.prior, device)
    if getattr(prior, "name", cache.prior) != cache.prior:
        raise InputError(f"fill_prior_cache: the cache holds {cache.prior!r} maps, got a {prior.name!r} prior")
    it = range(len(dataset))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"{cache.prior} prior cache")
    done = 0
    V = dataset.sampler.config.num_inputs
    for i in it:
        frame = f"{int(getattr(dataset, 'offset', 0)) + i:09d}"  # the sample's index (SynthHeadsDataset)
        if all(cache.has(key, frame, f"v{k}") for k in range(V)):
            continue
        sample = dataset[i]
        if "heads_in" in sample:  # a plan (deferred dataset): render it
            sample = dataset.realize(sample)
        with torch.no_grad():
            out = prior(capture_of_sample(sample))
        for k in range(V):
            cache.write(key, frame, f"v{k}", out.positions[k], out.confidence[k])
        done += 1
    log.info("prior cache %s: %d samples computed, %d already there", cache.root, done, len(dataset) - done)
    return done


def check_run_prior(cfg, dataset, model_config) -> None:
    """Refuse a run whose checkpoint would record another prior than its data's: a dataset that computes another
    prior than ``cfg.data_prior()`` (InputError), or a model (``--init-from`` weights) of another prior."""
    want = cfg.data_prior()
    sampler_cfg = getattr(getattr(dataset, "sampler", None), "config", None)
    declared = getattr(dataset, "prior", None) or getattr(sampler_cfg, "prior", None)
    if cfg.use_prior and declared is not None and declared != want:
        raise InputError(f"the dataset computes the {declared!r} prior but the run says {want!r} "
                         "(TrainConfig.prior / data_options): the checkpoint must record the data's prior")
    if model_config.prior != want:
        raise CheckpointError(f"--init-from {cfg.init_from}: these weights were trained with the {model_config.prior!r} "
                              f"prior, this run's data uses {want!r}; start from weights of the same prior or set "
                              "TrainConfig.prior to theirs")
