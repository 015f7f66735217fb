"""The app's "Drive with a video" tab over HTTP (``python app.py`` in a subprocess, tiny random checkpoint, the
shipped driving regressor in weights/drive), driven with gradio_client as the browser would: a real talking-head
clip drives the avatar (side-by-side mp4 of the bounded number of frames, a report), and a video without a face
comes back as a clean error (a message, no traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")

from app_fixtures import AppServer, make_tiny_checkpoint  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
D0 = "KwaiVGI_LivePortrait/assets/examples/driving/d0.mp4"
FRAMES = 5  # AVAT3R_DRIVE_RENDER_FRAMES: the app's bound on frames driven (a CPU renders about one a second)


@pytest.mark.slow
def test_drive_tab_over_http(realdata, tmp_path):
    from avat3r.io.video import read_video_frames, write_video

    ckpt = make_tiny_checkpoint(tmp_path / "tiny")
    with AppServer(ckpt, env={"AVAT3R_DRIVE_RENDER_FRAMES": str(FRAMES)}, timeout=300) as srv:
        client = Client(srv.url, verbose=False)
        files = client.predict("synth_1 (SynthHeads capture, 4 views)", api_name="/example_files")
        paths = [f["path"] if isinstance(f, dict) else f for f in files]
        client.predict([handle_file(p) for p in paths], None, api_name="/create")
        video, report = client.predict(handle_file(str(realdata / D0)), True, api_name="/drive")
        video = video["video"] if isinstance(video, dict) else video
        frames, _ = read_video_frames(video)
        assert len(frames) == FRAMES, report
        h, w = frames[0].shape[:2]
        assert w == 2 * h, (w, h)  # the driving video beside the avatar
        assert f"only the first {FRAMES} were used" in report and "face found in 100%" in report, report
        blank = write_video(tmp_path / "blank.mp4", [np.full((96, 96, 3), 128, np.uint8)] * 3, fps=10)
        with pytest.raises(AppError) as e:
            client.predict(handle_file(str(blank)), False, api_name="/drive")
        assert "no face was found" in str(e.value) and "Traceback" not in str(e.value)
