"""One prior registry: a checkpoint records the prior of its training data and cannot be served with another; the
paper's DUSt3R prior trains from a prior cache filled once by the real DUSt3R code path (random tiny weights in
the official layout, as in tests/test_dust3r.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import avat3r
from avat3r.errors import CheckpointError, InputError
from avat3r.priors.registry import PRIORS, build_prior, check_checkpoint_prior, serving_prior
from avat3r.train.config import TrainConfig

FIX = Path(__file__).parent / "fixtures" / "priors"
TINY = dict(model_preset="tiny", input_size=32, supervision_size=24, num_supervision=2, num_workers=0,
            log_every=1, ckpt_every=0, image_every=0, lambda_lpips=0.0, seed=3)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_recorded_prior_is_derived_from_the_data():
    # the paper preset defaults to DUSt3R, but SynthHeads' default data uses the visual hull: the record follows the data
    assert TrainConfig(model_preset="paper").model_config().prior == "visual_hull"
    assert TrainConfig(data_options={"prior": "oracle"}).model_config().prior == "oracle"
    assert TrainConfig.from_run("no_prior").model_config().prior == "none"
    assert TrainConfig(prior="dust3r", prior_cache="somewhere").model_config().prior == "dust3r"
    with pytest.raises(InputError, match="derived from the data"):
        TrainConfig(model_overrides={"prior": "dust3r"})
    with pytest.raises(InputError, match="prior_cache"):
        TrainConfig(prior="dust3r")
    with pytest.raises(InputError, match="unknown position prior"):
        TrainConfig(prior="magic")
    # one registry: the sampler's names are the registry's that it can compute from renders
    from avat3r.data.sampler import PRIORS as SAMPLER_PRIORS

    assert set(SAMPLER_PRIORS) == {n for n, s in PRIORS.items() if s.from_render} and "dust3r" not in SAMPLER_PRIORS


def test_serving_rules():
    check_checkpoint_prior("visual_hull")
    with pytest.raises(CheckpointError, match="only for ablations"):
        check_checkpoint_prior("oracle")
    with pytest.raises(CheckpointError, match="requested"):
        check_checkpoint_prior("visual_hull", requested="dust3r")
    with pytest.raises(CheckpointError, match="trained on data with the 'visual_hull' prior"):
        check_checkpoint_prior("dust3r", train_config=TrainConfig(model_preset="paper").to_dict())
    with pytest.raises(CheckpointError, match="not available"):
        serving_prior("dust3r")  # no DUSt3R weights here (offline): says what to download


@pytest.fixture
def dust3r_weights(tmp_path, monkeypatch) -> Path:
    """Random tiny DUSt3R weights in the official safetensors layout, found like the real ones ($AVAT3R_DUST3R)."""
    p = tmp_path / "dust3r" / "model.safetensors"
    p.parent.mkdir()
    shutil.copy(FIX / "dust3r_tiny_state.safetensors", p)
    monkeypatch.setenv("AVAT3R_DUST3R", str(p))
    return p


def test_dust3r_prior_cache_trains_and_the_checkpoint_cannot_be_served_with_another_prior(tmp_path, dust3r_weights):
    from avat3r.data.identity import split_seeds
    from avat3r.priors.dust3r import Dust3rPriorConfig
    from avat3r.train.export import export_weights
    from avat3r.train.priors import CachedPriorDataset, capture_of_sample, fill_prior_cache, open_cache
    from avat3r.train.trainer import Trainer, build_dataset

    cfg = TrainConfig(**TINY, prior="dust3r", prior_cache=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"),
                      data_options={"length": 2, "identities": [split_seeds("test")[0]]})
    # 1. fill the cache once: the registry's DUSt3R prior (real code path: pairs, network, known-camera alignment)
    dust3r = build_prior("dust3r", config=Dust3rPriorConfig(long_side=64, graph="half"))
    raw = build_dataset(cfg, length=2, cached_prior=False)
    cache = open_cache(cfg.prior_cache, "dust3r")
    assert fill_prior_cache(raw, cache, dust3r) == 2
    assert fill_prior_cache(raw, cache, dust3r) == 0  # computed once
    # 2. the training data reads the cached maps: they are DUSt3R's on the sample's input views
    ds = build_dataset(cfg)
    assert isinstance(ds, CachedPriorDataset) and len(ds) == 2
    s, r = ds[1], raw[1]
    direct = dust3r(capture_of_sample(r))
    torch.testing.assert_close(s["prior_positions"], direct.positions.permute(0, 3, 1, 2))
    torch.testing.assert_close(s["prior_confidence"][:, 0], direct.confidence)
    assert torch.equal(s["input_images"], r["input_images"])
    assert not torch.equal(s["prior_positions"], r["prior_positions"])  # not the sampler's own ("none") maps
    # 3. train: the checkpoint records the data's prior
    tr = Trainer(cfg, progress=False, tensorboard=False)
    tr.fit(max_steps=2, save_final=False)
    assert tr.model_config.prior == "dust3r" and all(torch.isfinite(torch.tensor([h["loss"] for h in tr.history])))
    weights = tmp_path / "weights"
    export_weights(tr.net, weights, train_config=cfg)
    # 4. serving: the recorded prior and nothing else
    pipe = avat3r.load_pipeline(weights, device="cpu")
    assert pipe.config.prior == "dust3r" and pipe.prior.name == "dust3r"  # built from $AVAT3R_DUST3R
    with pytest.raises(CheckpointError, match="trained with the 'dust3r' prior"):
        avat3r.load_pipeline(weights, device="cpu", prior="visual_hull")
    c = json.loads((weights / "config.json").read_text())
    c["prior"] = "visual_hull"  # a record that contradicts the data is refused at load time
    (weights / "config.json").write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="record the 'visual_hull' prior but were trained on data with the 'dust3r'"):
        avat3r.load_pipeline(weights, device="cpu")
    # a missing cache entry is a clear error, not silent zeros
    shutil.rmtree(tmp_path / "cache" / ds.key / "000000001")
    with pytest.raises(InputError, match="fill it first"):
        ds[1]
