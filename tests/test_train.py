"""Training on CPU with the tiny preset on real SynthHeads samples: the loss goes down on a fixed batch, resuming
from a checkpoint continues bit-exactly, compact checkpoints load, run configs map to model configs, and the
command line trains -> exports -> evaluates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from avat3r.train.checkpoint import checkpoint_size, latest_checkpoint, load_tensors
from avat3r.train.config import RUNS, TrainConfig, parse_overrides
from avat3r.train.data import SamplePool
from avat3r.train.trainer import Trainer, build_dataset

# tiny everything: 4 inputs at 32², 2 supervision views at 24², one test identity
TINY = dict(model_preset="tiny", input_size=32, supervision_size=24, num_supervision=2, num_workers=0,
            log_every=1, ckpt_every=0, image_every=0, lambda_lpips=0.0, seed=3)


def tiny_pool(base: Path, n: int = 2) -> Path:
    """n real SynthHeads samples, generated once per test session and stored as a sample pool file."""
    path = base / f"synthheads_tiny_pool_{n}.safetensors"
    if not path.exists():
        from avat3r.data.identity import split_seeds

        cfg = TrainConfig(**TINY)
        ds = build_dataset(cfg, "train", length=n)
        ds.sampler.seeds = [split_seeds("test")[0]]  # one identity: its rig is built once
        ds.sampler.config.identities = tuple(ds.sampler.seeds)
        SamplePool.from_dataset(ds, n).save(path)
    return path


@pytest.fixture(scope="module")
def pool_path(tmp_path_factory) -> Path:
    return tiny_pool(tmp_path_factory.getbasetemp())


def trainer(tmp: Path, pool_path: Path, length: int = 64, resume=None, **kw) -> Trainer:
    cfg = TrainConfig.from_run(kw.pop("run", "full"), out_dir=str(tmp), **{**TINY, **kw})
    return Trainer(cfg, dataset=SamplePool.load(pool_path, length=length), resume=resume, progress=False, tensorboard=False)


def test_loss_decreases_on_fixed_batch(tmp_path, pool_path):
    tr = trainer(tmp_path, pool_path, length=1, lr=3e-3, grad_clip=0.0)  # one sample: the same batch every step
    tr.fit(max_steps=8, save_final=False)
    losses = [h["loss"] for h in tr.history]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-3:]) < losses[0] - 0.005, losses
    assert tr.model_config.expression_dim == 20 and tr.model_config.expression_names[0] == "jaw_open"


def test_resume_is_bit_exact(tmp_path, pool_path):
    a = trainer(tmp_path / "a", pool_path, lr=1e-3)
    a.fit(max_steps=4)
    b = trainer(tmp_path / "b", pool_path, lr=1e-3)
    b.fit(max_steps=2)
    ck = latest_checkpoint(tmp_path / "b")
    assert ck is not None and ck.name == "step_000000002"
    meta = json.loads((ck / "trainer.json").read_text())
    assert meta["train_config"]["lr"] == 1e-3 and meta["model_config"]["name"] == "tiny"
    c = trainer(tmp_path / "b", pool_path, lr=1e-3, resume="auto")
    assert c.step == 2
    c.fit(max_steps=4)
    la = [h["loss"] for h in a.history]
    lb = [h["loss"] for h in b.history + c.history]
    assert la == lb  # bit-exact, not merely close
    ta, tc = load_tensors(latest_checkpoint(tmp_path / "a")), load_tensors(latest_checkpoint(tmp_path / "b"))
    assert ta.keys() == tc.keys() and all(torch.equal(ta[k], tc[k]) for k in ta)


def test_compact_checkpoint(tmp_path, pool_path):
    ex = trainer(tmp_path / "exact", pool_path, lr=1e-3)
    ex.fit(max_steps=2)
    co = trainer(tmp_path / "compact", pool_path, lr=1e-3, checkpoint_format="compact", shard_mib=1)
    co.fit(max_steps=2)
    ck_e, ck_c = latest_checkpoint(tmp_path / "exact"), latest_checkpoint(tmp_path / "compact")
    assert checkpoint_size(ck_c) < 0.6 * checkpoint_size(ck_e)
    r = trainer(tmp_path / "compact", pool_path, lr=1e-3, checkpoint_format="compact", resume=str(ck_c))
    w = dict(r.net.state_dict())
    assert all(torch.equal(w[k], v) for k, v in ex.net.state_dict().items())  # weights stay exact
    st = r.optimizer.state_dict()["state"]
    ref = ex.optimizer.state_dict()["state"]
    for pid in ref:  # second moment within the 8-bit log quantisation, first moment restarted
        v, v0 = st[pid]["exp_avg_sq"], ref[pid]["exp_avg_sq"]
        assert torch.allclose(v, v0, rtol=0.1, atol=0) and not st[pid]["exp_avg"].any()
    r.fit(max_steps=3, save_final=False)
    assert torch.isfinite(torch.tensor(r.history[-1]["loss"]))
    # 'weights' format: fp32 weights only; Adam restarts with a linear LR re-warm-up
    wt = trainer(tmp_path / "weights", pool_path, lr=1e-3, checkpoint_format="weights")
    wt.save()
    assert checkpoint_size(latest_checkpoint(tmp_path / "weights")) < 0.4 * checkpoint_size(ck_e)
    rw = trainer(tmp_path / "weights", pool_path, lr=1e-3, resume="auto", rewarm_steps=10)
    assert rw._rewarm_from == 0 and rw.lr_at(0) == pytest.approx(1e-4) and rw.lr_at(20) == pytest.approx(1e-3)
    # init_from exported (fp16) weights: their config, the step of their training.json, fresh Adam
    from avat3r.train.export import export_weights

    export_weights(ex.net, tmp_path / "export", train_config=ex.cfg, summary={"steps": ex.step})
    ini = trainer(tmp_path / "init", pool_path, lr=1e-3, init_from=str(tmp_path / "export"))
    assert ini.step == 2 and ini._rewarm_from == 2 and not ini.optimizer.state_dict()["state"]
    for k, v in ex.net.state_dict().items():
        assert torch.equal(ini.net.state_dict()[k], v.half().float()), k


def test_run_configs_and_overrides():
    assert set(RUNS) >= {"full", "no_pos_skip", "no_col_skip", "no_skip", "no_prior", "consistent_inputs", "interleaved", "cached"}
    assert not TrainConfig.from_run("no_pos_skip").model_config().pos_skip
    assert not TrainConfig.from_run("no_col_skip").model_config().rgb_skip
    mc = TrainConfig.from_run("no_skip").model_config()
    assert not mc.pos_skip and not mc.rgb_skip
    npr = TrainConfig.from_run("no_prior")
    assert not npr.use_prior and not npr.model_config().pos_skip
    assert TrainConfig.from_run("consistent_inputs").consistent_inputs
    assert TrainConfig.from_run("interleaved").model_config().layer_order == "interleaved"
    assert TrainConfig.from_run("cached").model_config().layer_order == "cached"
    full = TrainConfig.from_run("full")
    assert full.lr == 5e-5 and full.lpips_start == 3_000_000 and (full.lambda_l1, full.lambda_ssim, full.lambda_lpips) == (0.8, 0.2, 0.01)
    assert TrainConfig.from_dict(json.loads(full.to_json())) == full
    ov = parse_overrides(["model_overrides.pos_skip=false", "lr=0.001", "run=x"])
    assert ov == {"model_overrides": {"pos_skip": False}, "lr": 0.001, "run": "x"}
    cfg = TrainConfig.from_run("no_col_skip", model_overrides={"dim": 48})
    assert cfg.model_overrides == {"rgb_skip": False, "dim": 48}


def test_cli_train_export_eval(tmp_path, pool_path, monkeypatch):
    """train_main (2 steps) -> --export fp16 weights -> eval_main writes Table 1 with the baselines."""
    from avat3r.eval.__main__ import eval_main
    from avat3r.model import Avat3rModel
    from avat3r.train import trainer as trainer_mod
    from avat3r.train.trainer import train_main

    # the CLI builds SynthHeads itself; serve it the pre-generated samples instead (same sample layout)
    pool = SamplePool.load(pool_path, length=64)
    monkeypatch.setattr(trainer_mod, "build_dataset", lambda cfg, split="train", input_size=None, length=0, device=None, deferred=False: pool)
    import avat3r.eval.__main__ as ev_mod

    monkeypatch.setattr(ev_mod, "_dataset_for", lambda tc, model, cfg, ov: (pool, TrainConfig.from_dict(tc)))
    run, weights, out = tmp_path / "run", tmp_path / "weights", tmp_path / "eval"
    rc = train_main(["--preset", "tiny", "--out", str(run), "--max-steps", "2", "--input-size", "32", "--supervision-size", "24",
                     "--num-workers", "0", "--lr", "1e-3", "--quiet", "--export", str(weights), "--set", "num_supervision=2"])
    assert rc == 0 and (weights / "config.json").is_file() and (weights / "model.safetensors").is_file()
    from safetensors import safe_open

    with safe_open(str(weights / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in list(f.keys())[:5])
    m = Avat3rModel.from_pretrained(str(weights))
    assert m.config.expression_dim == 20
    # resume through the CLI: continues at step 2 with the saved config
    rc = train_main(["--out", str(run), "--resume", "auto", "--max-steps", "3", "--quiet"])
    assert rc == 0 and latest_checkpoint(run).name == "step_000000003"
    rc = eval_main(["--checkpoint", str(weights), "--num-samples", "2", "--no-faces", "--video-frames", "0",
                    "--out", str(out), "--quiet", "--device", "cpu"])
    assert rc == 0
    res = json.loads((out / "eval.json").read_text())["results"]
    assert {"avat3r", "prior_only", "static"} <= set(res)
    assert all(0 < res[m]["psnr"] < 100 and 0 < res[m]["ssim"] <= 1 for m in ("avat3r", "prior_only", "static"))
    md = (out / "eval.md").read_text()
    assert "Prior only" in md and "PSNR" in md and "Static" in md


def _l1_grad(pred: torch.Tensor, target: torch.Tensor, **kw) -> tuple[torch.Tensor, dict]:
    """The gradient w.r.t. ``pred`` of the objective reduced to its L1 part (weight / region passed on), and its terms."""
    from avat3r.train.losses import Objective, ObjectiveConfig

    x = pred.clone().requires_grad_(True)
    loss, terms = Objective(ObjectiveConfig(lambda_l1=1.0, lambda_ssim=0.0, lambda_lpips=0.0))(x, target, 0, **kw)
    loss.backward()
    return x.grad, terms


def test_expression_weight_scales_the_l1_gradient_inside_the_region():
    """Objective(weight=1 + lambda * region): the L1 gradient inside the region is (1 + lambda) times the plain
    one, unchanged outside; the logged l1 is the unweighted one; weight=None is the paper's objective."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    region = torch.zeros(2, 1, 16, 16)
    region[:, :, 4:8, 4:8] = 1

    plain, t0 = _l1_grad(pred, target)
    weighted, t1 = _l1_grad(pred, target, weight=1.0 + 4.0 * region)
    inside = region.expand_as(pred).bool()
    assert torch.allclose(weighted[inside], 5.0 * plain[inside]) and torch.equal(weighted[~inside], plain[~inside])
    assert torch.equal(t0["l1"], t1["l1"]) and float(t1["l1_weighted"]) > float(t1["l1"])
    assert "l1_weighted" not in t0


def test_mean_expression_weighting_gives_every_region_the_same_weight():
    """expression_weighting="mean": the added term is lambda x the mean L1 inside each image's region, so its
    gradient over a 4-pixel region (a blink) sums to what it sums to over a 64-pixel one (an open jaw); images without
    a region and pixels outside get none of it; the logged l1 is unchanged."""
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)
    region = torch.zeros(3, 1, 16, 16)
    region[0, :, 2:4, 2:4] = 1  # 4 pixels
    region[1, :, 4:12, 4:12] = 1  # 64 pixels; image 2 has none

    plain, t0 = _l1_grad(pred, target)
    extra, t1 = _l1_grad(pred, target, region=region, lambda_region=3.0)
    d = (extra - plain).abs()
    inside = region.expand_as(pred).bool()
    mass = [float(d[b][inside[b]].sum()) for b in range(3)]
    assert mass[0] == pytest.approx(1.5, rel=1e-5) and mass[1] == pytest.approx(1.5, rel=1e-5) and mass[2] == 0.0
    assert float(d[~inside].abs().max()) < 1e-9
    e = (pred - target).abs()
    want = (e[0][inside[0]].mean() + e[1][inside[1]].mean()) / 2
    assert torch.allclose(t1["l1_region"], want) and torch.equal(t0["l1"], t1["l1"])
    with pytest.raises(Exception, match="expression_weighting"):
        TrainConfig(**{**TINY, "expression_weighting": "sum"})


def test_lambda_expression_trains_on_regions_and_refuses_data_without_them(tmp_path):
    """lambda_expression > 0: build_dataset asks SynthHeads for the regions and training runs on them; a pool
    without regions gets an error that says what to do."""
    from avat3r.errors import InputError

    cfg = TrainConfig(**{**TINY, "lambda_expression": 4.0})
    ds = build_dataset(cfg, "train", length=2)
    assert ds.sampler.config.expression_region
    assert not build_dataset(cfg, "test", length=2).sampler.config.expression_region  # evaluation does not need them
    pool = SamplePool.from_dataset(ds, 1)
    assert "target_expression_region" in pool.samples[0]
    tr = Trainer(TrainConfig.from_run("full", out_dir=str(tmp_path / "a"), **{**TINY, "lambda_expression": 4.0}),
                 dataset=pool, progress=False, tensorboard=False)
    tr.fit(max_steps=2, save_final=False)
    assert len(tr.history) == 2 and all(h["l1_weighted"] >= h["l1"] for h in tr.history)
    tr = Trainer(TrainConfig.from_run("full", out_dir=str(tmp_path / "m"), **{**TINY, "lambda_expression": 4.0,
                                                                             "expression_weighting": "mean"}),
                 dataset=pool, progress=False, tensorboard=False)
    tr.fit(max_steps=2, save_final=False)
    assert all(h["l1_region"] > 0 and math.isfinite(h["loss"]) and "l1_weighted" not in h for h in tr.history)
    plain = SamplePool.from_dataset(build_dataset(TrainConfig(**TINY), "train", length=1), 1)
    tr = Trainer(TrainConfig.from_run("full", out_dir=str(tmp_path / "b"), **{**TINY, "lambda_expression": 4.0}),
                 dataset=plain, progress=False, tensorboard=False)
    with pytest.raises(InputError, match="target_expression_region"):
        tr.fit(max_steps=1, save_final=False)
    # the GPU's path, on the CPU: the batched engine builds the regions and the trainer weights them
    eng = TrainConfig.from_run("full", out_dir=str(tmp_path / "c"), **{**TINY, "lambda_expression": 4.0, "data_engine": "on",
                               "data_options": {"engine": {"pool_size": 2, "identity_uses": 2, "workers": 0, "chunk_steps": 1}}})
    tr = Trainer(eng, progress=False, tensorboard=False)
    tr.fit(max_steps=2, save_final=False)
    assert tr._engine is not None and len(tr.history) == 2
    assert all(h["l1_weighted"] > h["l1"] for h in tr.history)  # the region is never empty on these samples


def test_view_dropout_trains_on_fewer_views_deterministically(tmp_path, pool_path):
    """view_dropout: the kept view count is a function of (seed, step) in 1..V (so a resumed run draws the same
    counts), training runs on the cut batches, and a prior that cannot be carved again is refused."""
    tr = trainer(tmp_path / "a", pool_path, view_dropout=0.75)
    ks = [tr.views_at(s, 4) for s in range(200)]
    assert set(ks) == {1, 2, 3, 4} and 0.15 < ks.count(4) / len(ks) < 0.4  # ~25 % keep all four
    assert ks == [trainer(tmp_path / "b", pool_path, view_dropout=0.75).views_at(s, 4) for s in range(200)]
    assert trainer(tmp_path / "c", pool_path).views_at(7, 4) == 4  # off by default
    tr.fit(max_steps=3, save_final=False)
    assert [int(h["views"]) for h in tr.history] == ks[:3] and all(math.isfinite(h["loss"]) for h in tr.history)
    with pytest.raises(Exception, match="view_dropout"):
        TrainConfig(**{**TINY, "view_dropout": 1.5})


def test_eval_runs_at_the_same_step(tmp_path, pool_path, monkeypatch):
    """Ablation runs that reached different steps (a shared GPU, one wall-clock budget) are evaluated by
    ``avat3r eval --runs ... --same-step`` at the largest checkpoint step all of them saved; without a shared step
    the error says what to do."""
    from avat3r.errors import CheckpointError
    from avat3r.eval.__main__ import eval_main
    from avat3r.train import trainer as trainer_mod
    from avat3r.train.checkpoint import common_step_checkpoints
    from avat3r.train.trainer import train_main

    pool = SamplePool.load(pool_path, length=64)
    monkeypatch.setattr(trainer_mod, "build_dataset", lambda cfg, split="train", input_size=None, length=0, device=None, deferred=False: pool)
    import avat3r.eval.__main__ as ev_mod

    monkeypatch.setattr(ev_mod, "_dataset_for", lambda tc, model, cfg, ov: (pool, TrainConfig.from_dict(tc)))
    common = ["--preset", "tiny", "--input-size", "32", "--supervision-size", "24", "--num-workers", "0", "--quiet",
              "--ckpt-every", "2", "--checkpoint-format", "weights", "--set", "num_supervision=2", "keep_checkpoints=0"]
    for name, run, steps in (("full", "full", 5), ("no_col_skip", "no_col_skip", 4)):
        assert train_main(["--run", run, "--out", str(tmp_path / name), "--max-steps", str(steps), *common]) == 0
    step, paths = common_step_checkpoints([tmp_path / "full", tmp_path / "no_col_skip"])
    assert step == 4 and [p.name for p in paths] == ["step_000000004"] * 2  # full's final step 5 is its own
    out = tmp_path / "eval"
    rc = eval_main(["--runs", str(tmp_path / "full"), str(tmp_path / "no_col_skip"), "--same-step", "--num-samples", "2",
                    "--no-faces", "--video-frames", "0", "--out", str(out), "--quiet", "--device", "cpu"])
    doc = json.loads((out / "ablations.json").read_text())
    assert rc == 0 and doc["step"] == 4 and {"full", "no_col_skip"} <= set(doc["runs"])
    assert "No col. skip" in (out / "ablations.md").read_text()
    (tmp_path / "lonely" / "checkpoints" / "step_000000003").mkdir(parents=True)
    (tmp_path / "lonely" / "checkpoints" / "step_000000003" / "trainer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="share no checkpoint step"):
        common_step_checkpoints([tmp_path / "full", tmp_path / "lonely"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_steps_on_gpu_bf16(tmp_path, pool_path):
    """bf16 autocast + the CUDA renderer: a few steps on a fixed batch give finite, falling losses."""
    cfg = TrainConfig.from_run("full", out_dir=str(tmp_path), **{**TINY, "lr": 3e-3, "grad_clip": 0.0})
    tr = Trainer(cfg, dataset=SamplePool.load(pool_path, length=1), device="cuda", progress=False, tensorboard=False)
    assert tr.amp
    tr.fit(max_steps=8, save_final=False)
    losses = [h["loss"] for h in tr.history]
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-3:]) < losses[0], losses


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_view_dropout_on_gpu(tmp_path, pool_path):
    """view_dropout on CUDA: the logged view count lives on the device with the other terms (session 9's first
    device run failed there: a CPU tensor among CUDA terms, which the CPU tests cannot see)."""
    cfg = TrainConfig.from_run("full", out_dir=str(tmp_path), **{**TINY, "view_dropout": 0.75})
    tr = Trainer(cfg, dataset=SamplePool.load(pool_path, length=4), device="cuda", progress=False, tensorboard=False)
    tr.fit(max_steps=4, save_final=False)
    assert [int(h["views"]) for h in tr.history] == [tr.views_at(s, 4) for s in range(4)]
    assert all(math.isfinite(h["loss"]) for h in tr.history)


def test_deferred_dataset_in_workers_trains_like_direct(tmp_path):
    """Plans made in 2 DataLoader worker processes and rendered in the training process give the same losses
    as samples made in the training process."""
    from avat3r.data.sampler import SynthHeadsDataset

    kw = dict(split="test", num_inputs=4, num_targets=2, input_size=32, target_size=24, seed=3)
    losses = []
    for plan_device, workers in ((None, 0), ("cpu", 2)):
        cfg = TrainConfig.from_run("full", out_dir=str(tmp_path / str(workers)), **{**TINY, "num_workers": workers,
                                                                                    "batch_size": 2})
        ds = SynthHeadsDataset(length=16, plan_device=plan_device, **kw)
        tr = Trainer(cfg, dataset=ds, progress=False, tensorboard=False)
        tr.fit(max_steps=2, save_final=False)
        losses.append([h["loss"] for h in tr.history])
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-7)


def test_named_run_alias_for_torchrun():
    """torchrun reads '--run' as its own '--run-path': '--named-run' selects the same run configuration."""
    from avat3r.train.trainer import _parser, config_from_args

    a = config_from_args(_parser().parse_args(["--named-run", "no_prior", "--max-steps", "3"]))
    b = config_from_args(_parser().parse_args(["--run", "no_prior", "--max-steps", "3"]))
    assert a == b and a.run == "no_prior" and not a.use_prior and a.max_steps == 3


def test_repeated_set_flags_accumulate():
    """`--set a=1 --set b=2` keeps both: the device scripts pass several --set groups (a second group used to
    silently replace the first, dropping the augmentation switches of a whole training run)."""
    from avat3r.train.trainer import _parser

    args = _parser().parse_args(["--set", "warmup_steps=200", 'data_options.augment="real"', "--set", "keep_checkpoints=0"])
    ov = parse_overrides(args.set)
    assert ov == {"warmup_steps": 200, "data_options": {"augment": "real"}, "keep_checkpoints": 0}
    assert _parser().parse_args([]).set == []
