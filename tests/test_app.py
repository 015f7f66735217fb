"""The Gradio app launched on localhost (subprocess, tiny random checkpoint) and driven over HTTP with
gradio_client: create from a shipped example, turntable, animate (sliders, play), download the .ply, and bad
uploads that must come back as clean errors (a message, no traceback)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
from app_fixtures import AppServer, make_tiny_checkpoint  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    with AppServer(ckpt) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def _paths(files):
    return [f["path"] if isinstance(f, dict) else f for f in files]


def test_api_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/create", "/turntable", "/show_expression", "/play", "/example_files"} <= names


def test_create_from_example_animate_download(client, server):
    from avat3r.io.ply import load_ply
    from avat3r.io.video import read_video_frames

    examples = [p.name for p in (ROOT / "demo" / "examples").iterdir() if (p / "cameras.json").is_file()]
    assert examples, "demo/examples should hold SynthHeads capture folders"
    label = next(k for k in _example_labels() if k.startswith(sorted(examples)[0]))
    files = client.predict(label, api_name="/example_files")
    assert len(files) == 1 and _paths(files)[0].endswith(".zip")
    preview, report, viewer, ply = client.predict([handle_file(p) for p in _paths(files)], None, api_name="/create")
    assert "Gaussians" in report
    g = load_ply(ply)
    assert len(g) > 100
    assert len(load_ply(viewer)) <= len(g)
    video = client.predict(api_name="/turntable")
    video = video["video"] if isinstance(video, dict) else video
    frames, _ = read_video_frames(video)
    assert len(frames) == 4
    # animate: slider values -> a new viewer file and .ply for that expression
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/show_expression"]
    n = len(api["parameters"])
    values = [0.0] * n
    values[1] = 1.0  # smile
    viewer2, ply2 = client.predict(*values, api_name="/show_expression")
    g2 = load_ply(ply2)
    assert len(g2) == len(g) and not (g2.colors == g.colors).all()
    anim = client.predict(["neutral", "smile"], 3, 20, 5, api_name="/play")
    anim = anim["video"] if isinstance(anim, dict) else anim
    frames, _ = read_video_frames(anim)
    assert len(frames) == 6


def test_create_from_uploaded_photo(client):
    ex = ROOT / "demo" / "examples" / "astronaut" / "astronaut.jpg"
    preview, report, viewer, ply = client.predict([handle_file(str(ex))], None, api_name="/create")
    assert "cameras estimated" in report
    assert Path(preview).is_file() and Path(ply).stat().st_size > 1000


def test_create_from_example_name_only(client):
    label = next(k for k in _example_labels() if "astronaut" in k)
    preview, report, viewer, ply = client.predict(None, label, api_name="/create")
    assert "Gaussians" in report and Path(viewer).is_file()


def test_bad_uploads_are_clean_errors(client, tmp_path):
    junk = tmp_path / "holiday.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(AppError) as e:
        client.predict([handle_file(str(junk))], None, api_name="/create")
    msg = str(e.value)
    assert "holiday.png" in msg and "Traceback" not in msg
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(AppError, match="PNG/JPEG|Invalid file type"):  # Gradio checks file_types first
        client.predict([handle_file(str(txt))], None, api_name="/create")
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../outside.png", b"x")
    with pytest.raises(AppError, match="unsafe path"):
        client.predict([handle_file(str(z))], None, api_name="/create")
    # no face in the photo: the front end's message reaches the user
    import numpy as np
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    with pytest.raises(AppError, match="no face"):
        client.predict([handle_file(str(blank))], None, api_name="/create")


def test_animate_before_create_is_clean_error(server):
    fresh = Client(server.url, verbose=False)  # a new session has no avatar
    with pytest.raises(AppError, match="Create an avatar first"):
        fresh.predict(["neutral", "smile"], 3, 0, 0, api_name="/play")


def test_no_weights_message(tmp_path, monkeypatch):
    """Without weights the page still builds (with a notice) and Create answers with where to put them."""
    import gradio as gr

    monkeypatch.setenv("AVAT3R_WEIGHTS", str(tmp_path / "no_weights"))
    app = _load_app()
    demo = app.build_demo()
    notices = [b for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "No model weights" in str(b.value)]
    assert notices
    with pytest.raises(gr.Error, match="model.safetensors"):
        app.get_pipeline()


def _load_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("avat3r_app", ROOT / "app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _example_labels():
    return list(_load_app().list_examples())
