"""One door (issue 14): the same capture through every route into the pipeline gives the same avatar, and the
input sources are discovered from one registry by the API, the CLI and the app.

Doors compared bit for bit on the CPU (tiny random checkpoint): a capture-folder path, ``read_capture_folder``, a
zip of the folder (API and uploaded over HTTP to the running app), a hand-built ``Capture``, and the images as
arrays with their cameras and masks. Captures the project writes itself must come through without crop warnings.
A video uploaded to the app becomes an avatar; a corrupt one a clear message."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from app_fixtures import AppServer

import avat3r
from avat3r.capture import Capture
from avat3r.data.capture_folder import read_capture_folder
from avat3r.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
WARNINGS = ("reaches past", "cut off", "warning", "skipped")


@pytest.fixture(scope="module")
def pipe(ckpt):
    return avat3r.load_pipeline(ckpt, device="cpu")


@pytest.fixture(scope="module")
def capture_zip(capture_dir, tmp_path_factory) -> Path:
    z = tmp_path_factory.mktemp("zip") / "capture.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(capture_dir.rglob("*")):
            if p.is_file():
                zf.write(p, Path(capture_dir.name) / p.relative_to(capture_dir))
    return z


@pytest.fixture(scope="module")
def reference(pipe, capture_dir):
    """The avatar of the capture folder passed as a path (what the CLI does)."""
    return pipe.reconstruct(capture_dir)


def _same(a: avat3r.Avatar, b: avat3r.Avatar) -> None:
    ga, gb = a.animate(), b.animate()
    for f in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(ga, f), getattr(gb, f)), f
    assert torch.equal(a.capture.cameras.K, b.capture.cameras.K)


@pytest.fixture(scope="module")
def astronaut_clip(tmp_path_factory) -> Path:
    """A 3-frame mp4 of the astronaut photo drifting sideways (a video with a real face, made here)."""
    skdata = pytest.importorskip("skimage.data")
    from avat3r.io.video import write_video

    img = skdata.astronaut()
    frames = [np.ascontiguousarray(np.roll(img, 6 * i, axis=1)) for i in range(3)]
    return write_video(tmp_path_factory.mktemp("clip") / "astronaut.mp4", frames, fps=6)


# ---- the same capture through every door --------------------------------------------------------------------
def test_every_api_door_gives_the_same_gaussians(pipe, capture_dir, capture_zip, reference):
    cap = read_capture_folder(capture_dir)
    assert cap.expressions is not None and cap.masks is not None
    by_hand = Capture(cap.images.copy(), cap.cameras, list(cap.names), cap.masks.copy(), cap.expressions.copy())
    doors = {
        "read_capture_folder": pipe.reconstruct(cap),
        "zip": pipe.reconstruct(capture_zip),
        "Capture by hand": pipe.reconstruct(by_hand),
        "arrays + cameras + masks": pipe.reconstruct(list(cap.images), cameras=cap.cameras, masks=list(cap.masks)),
        "source by name": pipe.reconstruct(str(capture_dir), source="capture"),
    }
    for name, av in doors.items():
        _same(reference, av)
        assert not [ln for ln in av.report if any(w in ln for w in WARNINGS)], (name, av.report)
    # the capture reached the network as it was: cameras only scaled to the model's size, expressions kept
    assert reference.capture.expressions is not None
    np.testing.assert_array_equal(reference.capture.expressions, cap.expressions)
    s = pipe.image_size / cap.size[0]
    torch.testing.assert_close(reference.capture.cameras.K[:, :2, :2], cap.cameras.K[:, :2, :2] * s)
    torch.testing.assert_close(reference.capture.cameras.world_to_cam, cap.cameras.world_to_cam)


def test_posed_capture_without_masks_is_not_recropped(pipe, capture_dir, reference, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(capture_dir, bare)
    shutil.rmtree(bare / "masks")
    av = pipe.reconstruct(bare)
    assert torch.equal(av.capture.cameras.K, reference.capture.cameras.K)  # not re-cropped
    assert av.capture.masks is not None and any("masks: none given" in ln for ln in av.report)
    # GrabCut seeded by the cameras finds about the same head as the rendered masks
    inter = ((av.capture.masks > 0.5) & (reference.capture.masks > 0.5)).sum()
    union = ((av.capture.masks > 0.5) | (reference.capture.masks > 0.5)).sum()
    assert inter / union > 0.6, inter / union


def test_fit_policies_keep_cameras_consistent(capture_dir):
    from avat3r.pipeline import fit_capture

    cap = read_capture_folder(capture_dir)
    wide = Capture(np.pad(cap.images, ((0, 0), (0, 0), (8, 8), (0, 0))), cap.cameras.crop([-8, 0, 80, 64]),
                   list(cap.names), np.pad(cap.masks, ((0, 0), (0, 0), (8, 8))), cap.expressions)
    back = fit_capture(wide, 64, "center")  # cuts exactly the padding again
    np.testing.assert_array_equal(back.images, cap.images)
    torch.testing.assert_close(back.cameras.K, cap.cameras.K)
    padded = fit_capture(wide, 40, "pad")  # 80x64 -> 80x80 -> 40x40: the whole image kept
    assert padded.size == (40, 40) and padded.masks.sum() > 0
    torch.testing.assert_close(padded.cameras.K[:, 0, 0], cap.cameras.K[:, 0, 0] / 2)


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "demo" / "examples").iterdir()
                                           if (p / "cameras.json").is_file()))
def test_shipped_captures_give_no_crop_warnings(pipe, example):
    av = pipe.reconstruct(ROOT / "demo" / "examples" / example)
    assert not [ln for ln in av.report if any(w in ln for w in WARNINGS)], av.report
    assert av.capture.expressions is not None


# ---- the source registry ------------------------------------------------------------------------------------
def test_registry_lists_sources_and_each_builds_a_capture(capture_dir, capture_zip, astronaut_clip, tmp_path):
    from avat3r.sources import detect_source, get_source, list_sources

    names = [s.name for s in list_sources()]
    assert {"photos", "video", "capture", "synth"} <= set(names)
    for s in list_sources():
        assert s.label and s.help and s.takes in ("files", "seed", "photo", "text")
    assert detect_source(capture_dir).name == "capture" and detect_source(capture_zip).name == "capture"
    assert detect_source(astronaut_clip).name == "video"
    assert detect_source([ROOT / "demo" / "examples" / "astronaut" / "astronaut.jpg"]).name == "photos"
    with pytest.raises(InputError, match="unknown input source 'nope'; known: photos"):
        get_source("nope")
    built = {
        "capture": get_source("capture").to_capture(capture_zip, size=64),
        "synth": get_source("synth").to_capture(3, size=64),  # the head the CLI test below makes
        "photos": get_source("photos").to_capture(ROOT / "demo" / "examples" / "astronaut" / "astronaut.jpg", size=64),
        "video": get_source("video").to_capture(astronaut_clip, size=64, max_views=2),
    }
    for name, res in built.items():
        assert isinstance(res.capture, Capture) and len(res.capture) >= 1 and res.report, name
    assert built["synth"].capture.size == (64, 64) and built["synth"].capture.expressions is not None
    assert len(built["video"].capture) == 2 and built["video"].preview is not None
    with pytest.raises(InputError, match="whole number"):
        get_source("synth").to_capture(-1)


def test_cli_lists_sources_and_reconstructs_from_a_seed(ckpt, tmp_path, capsys):
    from avat3r.cli import main

    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    helptext = capsys.readouterr().out
    assert "input sources" in helptext and all(n in helptext for n in ("photos", "video", "capture", "synth"))
    rc = main(["reconstruct", "--source", "synth", "--seed", "3", "--weights", str(ckpt), "--device", "cpu",
               "--frames", "0", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "out" / "head.ply").stat().st_size > 1000 and "SynthHeads head (seed 3" in out
    assert main(["reconstruct", "--source", "synth", "--weights", str(ckpt), "-o", str(tmp_path / "o2")]) == 2
    assert "--seed" in capsys.readouterr().err


# ---- the running app ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(ckpt):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    with AppServer(ckpt) as srv:
        yield Client(srv.url, verbose=False)


def test_app_zip_upload_gives_the_same_gaussians(client, capture_zip, reference, tmp_path):
    from gradio_client import handle_file

    from avat3r.io.ply import load_ply

    preview, report, viewer, ply = client.predict([handle_file(str(capture_zip))], None, api_name="/create")
    assert not [ln for ln in report.splitlines() if any(w in ln for w in WARNINGS)], report
    mine = load_ply(reference.save_ply(tmp_path / "api.ply"))
    theirs = load_ply(ply)
    for f in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(mine, f), getattr(theirs, f)), f


def test_app_offers_the_registry_sources(client):
    from avat3r.sources import list_sources

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/create"]
    src = next(p for p in api["parameters"] if p["parameter_name"] == "source")
    offered = set(src["python_type"]["type"].replace("Literal[", "").replace("]", "").replace("'", "").split(", "))
    assert offered == {s.name for s in list_sources(available_only=True)}


def test_app_seed_source(client):
    preview, report, viewer, ply = client.predict(None, None, "synth", 1, "", api_name="/create")
    assert "SynthHeads head (seed 1" in report and Path(ply).stat().st_size > 1000


def test_app_video_upload_and_corrupt_video(client, astronaut_clip, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    preview, report, viewer, ply = client.predict([handle_file(str(astronaut_clip))], None, api_name="/create")
    assert "video astronaut.mp4" in report and "Gaussians" in report and Path(ply).stat().st_size > 1000
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 40)
    with pytest.raises(AppError) as e:
        client.predict([handle_file(str(bad))], None, api_name="/create")
    msg = str(e.value)
    assert "holiday.mp4" in msg and "cannot decode this video" in msg and "Traceback" not in msg, msg
    assert str(tmp_path) not in msg
    json.dumps(msg)  # a plain message
