"""The app's 'Generate a head' route over HTTP: a launched app (tiny random Avat3r + tiny random GGHead weights),
driven with gradio_client: generate, surprise me, and bad requests that come back as clean errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio_client")
from app_fixtures import AppServer, make_tiny_checkpoint  # noqa: E402
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from avat3r.generate import GGHeadGenerator, preset
    from avat3r.generate.hub import save_generator

    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    torch.manual_seed(0)
    gen = save_generator(GGHeadGenerator(preset("tiny")), tmp_path_factory.mktemp("gghead") / "tiny")
    with AppServer(ckpt, env={"AVAT3R_GGHEAD_WEIGHTS": str(gen)}) as srv:
        yield Client(srv.url, verbose=False)


def test_generate_head_route(client):
    from avat3r.io.ply import load_ply

    job = client.submit(5, 0.7, api_name="/generate_head")
    head, _viewer, clip, report, ply = job.result()
    assert len(load_ply(head)) > 1000 and len(load_ply(ply)) > 100  # the GGHead head and the Avat3r avatar
    assert Path(clip["video"] if isinstance(clip, dict) else clip).stat().st_size > 1000
    assert "GGHead head 5" in report and "animated clip at" in report
    first = job.outputs()[0]  # streamed: the avatar reaches the 3D viewers before the clip is rendered
    assert len(job.outputs()) == 2 and first[2] is None and "rendering the expression clip" in first[3]
    assert len(load_ply(first[1])) > 1000
    seed = client.predict(api_name="/surprise_seed")
    assert isinstance(seed, (int, float)) and 0 <= seed < 2**31


# Gradio's own range check on the number/slider answers first; generate_head checks again (check_request)
@pytest.mark.parametrize("seed,trunc,msg", [(-1, 0.7, "seed must be in|less than minimum value 0"),
                                            (2**40, 0.7, "seed must be in|greater than maximum value"),
                                            (3, 2.5, "truncation must be in|greater than maximum value 2")])
def test_generate_head_bad_requests(client, seed, trunc, msg):
    with pytest.raises(AppError, match=msg):
        client.predict(seed, trunc, api_name="/generate_head")
