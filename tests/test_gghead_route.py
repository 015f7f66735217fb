"""The GGHead route: weights on disk, training with resume, the 'gghead' input source, `avat3r generate`."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import torch

from avat3r.errors import CheckpointError, InputError
from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.hub import load_generator, save_generator


@pytest.fixture(scope="module")
def tiny_gen(tmp_path_factory):
    """A random-weight ``tiny`` GGHead generator saved as config.json + model.safetensors -> (dir, generator)."""
    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny")).eval()
    d = save_generator(G, tmp_path_factory.mktemp("gghead") / "tiny")
    return d, G


def test_weights_round_trip_and_wrong_kind(tiny_gen, tmp_path):
    d, G = tiny_gen
    G2 = load_generator(d, cache=False)
    a, b = G.sample(5, 0.7), G2.sample(5, 0.7)
    assert torch.equal(a["maps"], b["maps"]) and torch.equal(a["position"], b["position"])
    with pytest.raises(CheckpointError, match="missing config.json, model.safetensors"):
        load_generator(tmp_path / "nothing", cache=False)
    bad = tmp_path / "avat3r_ckpt"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "avat3r"}))
    (bad / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="not a GGHead generator"):
        load_generator(bad, cache=False)


def test_gghead_source_renders_four_posed_views(tiny_gen):
    from avat3r.sources import get_source, list_sources

    _, G = tiny_gen
    assert "gghead" in [s.name for s in list_sources()]
    src = get_source("gghead")
    assert src.takes == "seed"
    res = src.to_capture(3, size=64, truncation=0.5, generator=G)
    cap = res.capture
    assert len(cap) == 4 and cap.images.shape == (4, 64, 64, 3) and cap.masks.shape == (4, 64, 64)
    assert (cap.masks.reshape(4, -1).mean(1) > 0.05).all()  # the head is in every view
    ctr = cap.cameras.centers.numpy()
    az = np.degrees(np.arctan2(ctr[:, 0], ctr[:, 2])).round()
    assert list(az) == [-60, -20, 20, 60]
    assert "seed 3" in res.report[0]
    for seed, trunc, msg in ((-1, 0.7, "seed must be in"), (2**31, 0.7, "seed must be in"), (3.5, 0.7, "whole number"),
                             (3, 2.01, "truncation must be in"), (3, float("nan"), "truncation must be in"),
                             ("3; rm -rf /", 0.7, "whole number")):
        with pytest.raises(InputError, match=msg):
            src.to_capture(seed, size=64, truncation=trunc, generator=G)
    with pytest.raises(InputError, match="cameras and masks"):
        src.to_capture(3, size=64, generator=G, cameras=cap.cameras)


def test_cli_generate_writes_head_views_and_avatar(tiny_gen, ckpt, tmp_path):
    from avat3r.cli import main
    from avat3r.data.capture_folder import read_capture_folder
    from avat3r.io.ply import load_ply

    d, G = tiny_gen
    out = tmp_path / "gen"
    rc = main(["-q", "generate", "--seed", "7", "--truncation", "0.6", "--generator", str(d), "--weights", str(ckpt),
               "--device", "cpu", "-o", str(out), "--frames", "2", "--size", "48", "--frames-per-step", "1"])
    assert rc == 0
    g = load_ply(out / "gghead.ply")
    assert len(g) == G.num_gaussians
    cap = read_capture_folder(out / "capture")
    assert len(cap) == 4 and cap.masks is not None
    assert len(load_ply(out / "avatar.ply")) > 100
    for v in ("turntable.mp4", "expressions.mp4"):
        assert (out / v).stat().st_size > 1000
    # bad requests: a clear message, exit code 2, nothing written
    for extra, in_msg in ((["--seed", "-3"], "seed"), (["--seed", "1", "--truncation", "3"], "truncation")):
        o2 = tmp_path / f"bad{len(extra)}"
        assert main(["-q", "generate", *extra, "--generator", str(d), "-o", str(o2)]) == 2
        assert not o2.exists()


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_cli_generate_refuses_a_code_running_pickle(tmp_path, capsys):
    from avat3r.cli import main

    marker = tmp_path / "ran"
    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": _Payload(marker)}))
    assert main(["generate", "--seed", "1", "--generator", str(pkl), "-o", str(tmp_path / "o")]) == 2
    assert "Nothing was executed" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_training_runs_and_resumes(tmp_path, capsys):
    from safetensors.torch import save_file

    from avat3r.generate.train import TrainConfig, train

    pool = tmp_path / "pool"
    pool.mkdir()
    G0 = GGHeadGenerator(preset("tiny")).eval()
    tensors = {}
    for i in range(2):  # a pool of two head-shaped Gaussian sets (real heads come from SynthHeads; slow on CPU)
        g = G0.gaussians(G0.sample(i, 0.5), 0)
        tensors.update({f"{i}.{f}": getattr(g, f).half().contiguous() for f in ("means", "quats", "scales", "opacities", "colors")})
    save_file(tensors, str(pool / "pool_000.safetensors"))
    tc = TrainConfig(preset="tiny", batch=2, r1_interval=1, d_channel_base=256, d_channel_max=16, views_per_head=3,
                     blur_sigma=1.0, blur_fade_kimg=1.0, lambda_recon=1.0)  # R1 through the blur; the VAE warm start
    p1 = train(tmp_path / "a", pool, 0.0, tc, device="cpu")  # a zero budget still runs one step and checkpoints
    assert p1["step"] == 1 and p1["nimg"] == 2
    ck = tmp_path / "a" / "ckpt"
    for f in ("G", "D", "G_ema", "E", "opt_g", "opt_d"):
        assert (ck / f"{f}.safetensors").is_file()
    p2 = train(tmp_path / "b", pool, 0.0, resume=ck, device="cpu")
    assert p2["step"] == 2 and p2["nimg"] == 4
    G = load_generator(tmp_path / "b" / "G_ema", cache=False)
    assert G.config.preset == "tiny" and torch.isfinite(G.sample(0)["maps"]).all()
    rec = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert rec and {"loss_g", "loss_d", "r1", "img_s", "recon_l1", "kl"} <= set(rec[0])
    assert 0 < rec[0]["recon_l1"] < 2 and rec[0]["kl"] >= 0

    # the compact state kept in weights/gghead/resume/: D (fp16) + progress, G_ema = the shipped model.safetensors
    from avat3r.generate.hub import save_generator
    from avat3r.generate.train import save_resume_state

    shipped = tmp_path / "shipped"
    save_generator(load_generator(tmp_path / "b" / "G_ema", cache=False), shipped, dtype=torch.float16)
    save_resume_state(tmp_path / "b" / "ckpt", shipped / "resume")
    assert sorted(f.name for f in (shipped / "resume").iterdir()) == ["D.safetensors", "E.safetensors", "state.json"]
    p3 = train(tmp_path / "c", pool, 0.0, resume=shipped / "resume", device="cpu")
    assert p3["step"] == 3 and p3["nimg"] == 6

    # the committed state is state.json alone: D restarts; a continuation may change the objective (the GAN after
    # the reconstruction stage) but keeps the checkpoint's network shapes
    lean = tmp_path / "lean"
    save_generator(load_generator(tmp_path / "b" / "G_ema", cache=False), lean, dtype=torch.float16)
    save_resume_state(tmp_path / "b" / "ckpt", lean / "resume", nets=())
    assert [f.name for f in (lean / "resume").iterdir()] == ["state.json"]
    capsys.readouterr()
    tc2 = dataclasses.replace(tc, preset="small", d_channel_max=512, lambda_recon=0.0, batch=4)
    p4 = train(tmp_path / "d", pool, 0.0, tc2, resume=lean / "resume", device="cpu")
    assert p4["step"] == 3 and p4["nimg"] == 2 + 2 + 4  # the caller's batch
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    changes = next(o["settings_changed"] for o in out if "settings_changed" in o)
    assert changes["lambda_recon"] == [1.0, 0.0] and changes["batch"] == [2, 4]
    assert "preset" not in changes and "d_channel_max" not in changes  # shapes come from the checkpoint
    assert any(o.get("discriminator") == "fresh" for o in out)
    assert load_generator(tmp_path / "d" / "G_ema", cache=False).config.preset == "tiny"


def test_unavailable_message_names_no_server_path(monkeypatch):
    """Shown in the public app when no GGHead weights are installed: it must not reveal where the app lives."""
    from pathlib import Path

    from avat3r.sources import get_source

    monkeypatch.delenv("AVAT3R_GGHEAD_WEIGHTS", raising=False)
    root = str(Path(__file__).resolve().parents[1])
    for name in ("gghead", "lift"):
        msg = get_source(name).available()
        if msg is None:  # weights installed in this checkout
            continue
        assert "weights/gghead" in msg and root not in msg
    monkeypatch.setenv("AVAT3R_GGHEAD_WEIGHTS", "/srv/secret/place")
    msg = get_source("gghead").available()
    assert msg is not None and "/srv/secret" not in msg and "$AVAT3R_GGHEAD_WEIGHTS" in msg


def test_d_input_blur_fades_and_keeps_r1_differentiable():
    from avat3r.generate.train import TrainConfig, blur_images, blur_sigma_at

    tc = TrainConfig(blur_sigma=2.0, blur_fade_kimg=10.0)
    assert blur_sigma_at(tc, 0) == 2.0 and blur_sigma_at(tc, 5000) == 1.0 and blur_sigma_at(tc, 20000) == 0.0
    assert blur_sigma_at(TrainConfig(), 0) == 0.0  # off by default
    x = torch.zeros(1, 4, 32, 32)
    x[:, :, 16, 16] = 1.0
    y = blur_images(x, 2.0)
    assert y.shape == x.shape and abs(float(y.sum()) - 4.0) < 1e-4  # a point spread, not lost (far from the border)
    assert float(y[0, 0, 16, 16]) < 0.1 and float(y[0, 0, 16, 20]) > 0.005  # spread over ~2 px
    assert torch.equal(blur_images(x, 0.2), x)  # under one tap: nothing to do
    xi = torch.randn(2, 4, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(blur_images(xi, 1.5).square().sum(), xi, create_graph=True)
    g.square().sum().backward()  # R1's double backward
    assert xi.grad is not None and torch.isfinite(xi.grad).all()


def test_real_bank_pairs_are_views_of_one_head():
    from avat3r.generate.train import RealBank, TrainConfig

    G0 = GGHeadGenerator(preset("tiny")).eval()
    heads = [G0.gaussians(G0.sample(i, 0.5), 0) for i in range(3)]
    tc = TrainConfig(preset="tiny", views_per_head=4)
    bank = RealBank(16, (0.0, 0.0, 0.0), G0.config.world_scale, tc, "cpu")
    bank.add(heads[:2])
    bank.add(heads[2:], views=2)  # a later, smaller batch of views
    a, b = bank.sample_pairs(200)
    assert torch.equal(bank.identity[a], bank.identity[b])
    assert set(bank.identity[b].tolist()) == {0, 1, 2} and int(b.max()) < len(bank) == 10
    assert (a != b).any()


def test_reconstruction_only_stage_leaves_the_gan_idle(tmp_path):
    from safetensors.torch import save_file

    from avat3r.generate.train import TrainConfig, recon_weight, train

    tc = TrainConfig(lambda_recon=2.0, recon_only_kimg=1.0, recon_fade_kimg=2.0)
    assert recon_weight(tc, 0) == 1.0 and recon_weight(tc, 1000) == 1.0 and recon_weight(tc, 2000) == 0.5
    assert recon_weight(tc, 5000) == 0.0 and recon_weight(TrainConfig(), 10**6) == 1.0
    pool = tmp_path / "pool"
    pool.mkdir()
    G0 = GGHeadGenerator(preset("tiny")).eval()
    g = G0.gaussians(G0.sample(0, 0.5), 0)
    save_file({f"0.{f}": getattr(g, f).half().contiguous() for f in ("means", "quats", "scales", "opacities", "colors")},
              str(pool / "pool_000.safetensors"))
    tc = TrainConfig(preset="tiny", batch=2, r1_interval=1, d_channel_base=256, d_channel_max=16, views_per_head=3,
                     lambda_recon=1.0, recon_only_kimg=1.0)
    train(tmp_path / "a", pool, 0.0, tc, device="cpu")
    rec = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[0])
    assert rec["loss_g"] == 0.0 and rec["loss_d"] == 0.0 and rec["r1"] == 0.0  # no adversarial term, D untouched
    assert rec["recon_l1"] > 0
