"""The single-photo lift (issue 17): encoder, training, inversion, correction of the seen Gaussians, the route,
the 'lift' source and `avat3r lift`. Random-weight ``tiny`` generators only: no trained weights needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avat3r.errors import CheckpointError, InputError
from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.hub import save_generator
from avat3r.lift import InvertConfig, LiftEncoder, encoder_preset
from avat3r.lift.encoder import pose_features, w_statistics
from avat3r.lift.hub import load_encoder, save_encoder
from avat3r.lift.invert import correct_visible, encode, optimise_ws
from avat3r.lift.route import lift_photo, lifted_views
from avat3r.lift.train import TrainConfig, train_encoder


@pytest.fixture(scope="module")
def tiny_gen(tmp_path_factory):
    torch.manual_seed(0)
    G = GGHeadGenerator(preset("tiny")).eval().requires_grad_(False)
    return save_generator(G, tmp_path_factory.mktemp("gg") / "tiny"), G


@pytest.fixture(scope="module")
def target_view(tiny_gen):
    """A view of generator head 11 (true latent known) at azimuth 15 deg: (image, mask, camera, true ws)."""
    from avat3r.cameras import orbit_camera

    _, G = tiny_gen
    out = G.sample(11, 1.0)
    cam = orbit_camera(15.0, 5.0, 48)
    rgb, alpha = G.render(out, cam, index=0, background=(0.0, 0.0, 0.0))
    return rgb[0].numpy(), alpha[0, ..., 0].numpy(), cam, out["ws"]


def test_encoder_groups_and_untrained_output_is_the_average_head(tiny_gen):
    _, G = tiny_gen
    cfg = encoder_preset("tiny", G)
    gc, gm, gf = cfg.groups()
    assert list(gc) + list(gm) + list(gf) == list(range(G.num_ws)) and len(gc) and len(gm) and len(gf)
    enc = LiftEncoder(cfg)
    w_avg, w_std = w_statistics(G, n=64)
    enc.set_w_stats(w_avg, w_std)
    x = torch.rand(2, 3, 50, 50)
    ws = enc(x, torch.ones(2, 1, 50, 50), pose_features(torch.tensor([0.0, 30.0]), torch.tensor([0.0, 5.0])))
    assert ws.shape == (2, G.num_ws, G.config.w_dim)
    assert torch.allclose(ws, w_avg.expand_as(ws), atol=1e-6)  # zero-initialised heads: w_avg until trained


def test_training_steps_save_load_and_wrong_generator(tiny_gen, tmp_path):
    _, G = tiny_gen
    enc, rows = train_encoder(G, steps=1, tc=TrainConfig(batch=2, image_size=24, synth_frac=0.5, synth_identities=1),
                              preset="tiny")
    assert len(rows) == 1 and all(np.isfinite(r["loss"]) and r["synth"] > 0 for r in rows)
    x, m = torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64)
    with torch.no_grad():
        before = enc(x, m)
    assert not torch.allclose(before, enc.w_avg.expand_as(before))  # it learned something
    d = save_encoder(enc, tmp_path / "enc", extra={"steps": 2})
    enc2 = load_encoder(G, d)
    with torch.no_grad():
        assert torch.equal(enc2(x, m), before)
    other = GGHeadGenerator(preset("tiny", w_dim=16)).eval()
    with pytest.raises(CheckpointError, match="retrain it for this generator"):
        load_encoder(other, d)
    with pytest.raises(CheckpointError, match="no lift encoder"):
        load_encoder(G, tmp_path / "none")


def test_optimisation_lowers_the_photo_loss(tiny_gen, target_view):
    _, G = tiny_gen
    img, mask, cam, _ = target_view
    ws0 = encode(G, None, img, mask, cam)
    _, w_std = w_statistics(G, n=256)
    t = torch.as_tensor(img * mask[..., None])[None]
    m = torch.as_tensor(mask)[None, ..., None]
    ws, curve = optimise_ws(G, ws0, t, m, cam, steps=5, lr=0.15, w_reg=0.0, w_std=w_std)
    assert len(curve) == 5 and curve[-1] < 0.85 * curve[0]
    assert torch.isfinite(ws).all() and not torch.equal(ws, ws0)


def test_correction_touches_only_the_seen_gaussians_and_brings_the_view_closer(tiny_gen, target_view):
    _, G = tiny_gen
    img, mask, cam, _ = target_view
    photo = np.clip(img * 0.3 + np.array([0.6, 0.2, 0.1], np.float32), 0, 1) * mask[..., None]  # a recoloured "photo"
    with torch.no_grad():
        out = G.sample(11, 1.0)
        new, n = correct_visible(G, out, photo, mask, cam, strength=1.0)
        r0, _ = G.render(out, cam, index=0)
        r1, _ = G.render(new, cam, index=0)
        back = orbit_camera_back(G, out, new)
    assert 0 < n < G.num_gaussians
    changed = (new["color"][0] != out["color"][0]).any(-1)
    assert int(changed.sum()) <= n
    m = mask[..., None] > 0.5
    e0 = np.abs(r0[0].numpy() - photo)[m[..., 0]].mean()
    e1 = np.abs(r1[0].numpy() - photo)[m[..., 0]].mean()
    assert e1 < 0.7 * e0
    assert back < 0.5 * e0  # the back of the head (unseen) barely changes


def test_shift_all_moves_every_gaussian_by_the_mean_colour_difference(tiny_gen, target_view):
    _, G = tiny_gen
    img, mask, cam, _ = target_view
    photo = np.clip(img * 0.3 + np.array([0.6, 0.2, 0.1], np.float32), 0, 1) * mask[..., None]
    with torch.no_grad():
        out = G.sample(11, 1.0)
        plain, n0 = correct_visible(G, out, photo, mask, cam, strength=0.0)
        shifted, n1 = correct_visible(G, out, photo, mask, cam, strength=0.0, shift_all=1.0)
        r0, _ = G.render(out, cam, index=0)
    assert n0 == n1
    assert torch.equal(plain["color"], out["color"])  # strength 0 and no shift: nothing changes
    d = (shifted["color"][0] - out["color"][0])[:, :3]  # the DC colour of every Gaussian, the unseen ones too
    assert torch.allclose(d, d[:1].expand_as(d), atol=1e-5) and float(d.abs().max()) > 0
    inm = mask > 0.5
    want = photo[inm].mean(0) - r0[0].numpy()[inm].mean(0)
    assert np.sign(d[0].numpy() * 0.2820948).tolist() == np.sign(want).tolist()  # toward the photo's mean colour


def orbit_camera_back(G, out, new) -> float:
    from avat3r.cameras import orbit_camera

    cam = orbit_camera(180.0, 0.0, 48)
    a, _ = G.render(out, cam, index=0)
    b, _ = G.render(new, cam, index=0)
    return float((a - b).abs().mean())


def test_lift_of_a_posed_view_gives_four_masked_views_at_the_input_cameras(tiny_gen, target_view):
    from avat3r.capture import Capture

    _, G = tiny_gen
    img, mask, cam, _ = target_view
    view = Capture(img[None].astype(np.float32), cam, ["photo"], mask[None].astype(np.float32))
    seen = []
    cap, res, _, report = lift_photo(view, size=48, generator=G, encoder=None,
                                     config=InvertConfig(steps=2, render_size=32), with_photo=True,
                                     progress=lambda f, m: seen.append(f))
    assert len(cap) == 5 and cap.images.shape == (5, 48, 48, 3) and cap.names[-1] == "photo"
    assert (cap.masks[:4].reshape(4, -1).mean(1) > 0.05).all()
    ctr = cap.cameras.centers.numpy()[:4]
    assert list(np.degrees(np.arctan2(ctr[:, 0], ctr[:, 2])).round()) == [-60, -20, 20, 60]
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert len(res.curve) == 2 and res.visible > 0 and "average head" in " ".join(report)
    imgs, masks, cams, names = lifted_views(G, res.out, 32)
    assert imgs.shape == (4, 32, 32, 3) and names[0] == "lift_az-60"


def test_lift_source_and_bad_inputs(tiny_gen, tmp_path):
    from PIL import Image

    from avat3r.sources import get_source, list_sources

    _, G = tiny_gen
    src = get_source("lift")
    assert src.takes == "photo" and "lift" in [s.name for s in list_sources()]
    with pytest.raises(InputError, match="unknown single-photo mode"):
        src.to_capture("x.jpg", mode="both", generator=G)
    with pytest.raises(InputError, match="exactly one photo"):
        src.to_capture(["a.jpg", "b.jpg"], generator=G)
    with pytest.raises(InputError, match="give just the photo"):
        src.to_capture("x.jpg", masks=[np.ones((4, 4))], generator=G)
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    with pytest.raises(InputError, match="face"):
        src.to_capture(str(blank), size=48, generator=G, mode="lift")
    with pytest.raises(InputError):
        src.to_capture(str(tmp_path / "missing.jpg"), size=48, generator=G, mode="lift")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(tiny)
    with pytest.raises(InputError, match="too small"):
        src.to_capture(str(tiny), size=48, generator=G, mode="lift")


def test_cli_lift_real_photo_writes_views_avatar_and_videos(tiny_gen, ckpt, tmp_path):
    from skimage import data

    from avat3r.cli import main
    from avat3r.data.capture_folder import read_capture_folder
    from avat3r.io.images import save_image
    from avat3r.io.ply import load_ply

    d, G = tiny_gen
    photo = tmp_path / "astronaut.png"
    save_image(photo, data.astronaut().astype(np.float32) / 255)
    out = tmp_path / "lifted"
    rc = main(["-q", "lift", str(photo), "--mode", "lift", "--generator", str(d), "--weights", str(ckpt), "--device", "cpu",
               "--steps", "1", "-o", str(out), "--frames", "2", "--size", "48", "--frames-per-step", "1"])
    assert rc == 0
    cap = read_capture_folder(out / "capture")
    assert len(cap) == 4 and cap.masks is not None
    assert len(load_ply(out / "avatar.ply")) > 100
    assert (out / "turntable.mp4").stat().st_size > 0 and (out / "expressions.mp4").stat().st_size > 0
    info = json.loads((out / "lift.json").read_text())
    assert info["mode"] == "lift" and len(info["curve"]) == 1
    rc = main(["-q", "lift", str(photo), "--mode", "native", "--weights", str(ckpt), "--device", "cpu",
               "-o", str(tmp_path / "native"), "--frames", "0", "--size", "48"])
    assert rc == 0 and len(read_capture_folder(tmp_path / "native" / "capture")) == 1
    # lift+photo lifts into the generator the user named (it once fell back to the installed one)
    rc = main(["-q", "lift", str(photo), "--mode", "lift+photo", "--generator", str(d), "--weights", str(ckpt),
               "--device", "cpu", "--steps", "1", "-o", str(tmp_path / "lp"), "--frames", "0", "--size", "48"])
    assert rc == 0 and len(read_capture_folder(tmp_path / "lp" / "capture")) == 5
    info = json.loads((tmp_path / "lp" / "lift.json").read_text())
    assert info["mode"] == "lift+photo" and f"of {G.num_gaussians} Gaussians" in " ".join(info["report"])
    assert main(["-q", "lift", str(tmp_path / "nope.jpg"), "--mode", "lift", "--generator", str(d), "--weights", str(ckpt),
                 "-o", str(tmp_path / "x")]) == 2


def test_lift_source_runs_inside_inference_mode(tiny_gen, target_view):
    """Pipeline.reconstruct runs sources under torch.inference_mode (and may have loaded the generator there):
    the lift still backpropagates."""
    from avat3r.capture import Capture
    from avat3r.generate.hub import load_generator
    from avat3r.sources import get_source

    d, _ = tiny_gen
    img, mask, cam, _ = target_view
    with torch.inference_mode():
        G = load_generator(d, cache=False)
        view = Capture(img[None].astype(np.float32), cam, ["photo"], mask[None].astype(np.float32))
        res = get_source("lift").to_capture(view, size=48, generator=G, invert=InvertConfig(steps=2, render_size=32))
    assert len(res.capture) == 4 and any("optimised w+ for 2 steps" in line for line in res.report)


def test_default_mode_falls_back_to_native_without_a_generator(tmp_path, monkeypatch):
    """check_mode(None) is default_mode(); a lifting default (sessions 7-8 shipped "lift+photo") is used where a
    generator is installed and falls back to "native" where none is."""
    from avat3r.lift import route

    assert route.check_mode(None) == route.default_mode() and route.DEFAULT_MODE in route.MODES
    monkeypatch.setattr(route, "DEFAULT_MODE", "lift+photo")
    monkeypatch.setattr(route, "official_installed", lambda: False)
    monkeypatch.setenv("AVAT3R_GGHEAD_WEIGHTS", str(tmp_path / "none"))  # no generator to lift into
    assert route.default_mode() == "native" and route.check_mode(None) == "native"
    d = save_generator(GGHeadGenerator(preset("tiny")).eval(), tmp_path / "gg")
    monkeypatch.setenv("AVAT3R_GGHEAD_WEIGHTS", str(d))
    assert route.default_mode() == route.check_mode(None) == "lift+photo"
