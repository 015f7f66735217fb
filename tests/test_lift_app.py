"""The app's 'One photo' route over HTTP: a launched app (tiny random Avat3r + tiny random GGHead weights), driven
with gradio_client: a real portrait lifted to four views then animated, native mode, and bad uploads that come
back as clean messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio_client")
from app_fixtures import AppServer, make_tiny_checkpoint  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from avat3r.generate import GGHeadGenerator, preset
    from avat3r.generate.hub import save_generator

    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    torch.manual_seed(0)
    gen = save_generator(GGHeadGenerator(preset("tiny")), tmp_path_factory.mktemp("gghead") / "tiny")
    with AppServer(ckpt, env={"AVAT3R_GGHEAD_WEIGHTS": str(gen), "AVAT3R_LIFT_WEIGHTS": str(gen.parent / "none")}) as srv:
        yield Client(srv.url, verbose=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(d / "astronaut.jpg")
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(d / "wall.png")
    (d / "notes.txt").write_text("not a photo")
    return d


def test_lift_then_animate_a_portrait(client, photos):
    from PIL import Image

    from avat3r.io.ply import load_ply

    strip, report = client.predict(handle_file(str(photos / "astronaut.jpg")), "lift", api_name="/lift_views")
    im = np.asarray(Image.open(strip))
    assert im.shape[1] == 6 * im.shape[0]  # photo crop | fit | four views
    assert "optimised w+" in report and "4 views ready" in report
    _viewer, clip, report2, ply = client.predict(api_name="/lift_animate")
    assert len(load_ply(ply)) > 100
    assert Path(clip["video"] if isinstance(clip, dict) else clip).stat().st_size > 1000
    assert "from 4 views (lift mode)" in report2


def test_native_mode_and_bad_uploads(client, photos):
    strip, report = client.predict(handle_file(str(photos / "astronaut.jpg")), "native", api_name="/lift_views")
    assert "the photo alone ready" in report
    with pytest.raises(AppError, match="face"):
        client.predict(handle_file(str(photos / "wall.png")), "lift", api_name="/lift_views")
    with pytest.raises(AppError, match="not a photo|Invalid file type"):
        client.predict(handle_file(str(photos / "notes.txt")), "lift", api_name="/lift_views")
