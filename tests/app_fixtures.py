"""Shared helpers for the pipeline, CLI and app tests: a tiny random checkpoint and a SynthHeads capture."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np


def make_tiny_checkpoint(out: Path, **overrides) -> Path:
    """A random ``tiny`` model with the SynthHeads expression space, saved with save_pretrained."""
    import torch

    from avat3r.data.expressions import EXPRESSION_NAMES, EXPRESSION_PRESETS
    from avat3r.model import Avat3rModel, ModelConfig

    kw = dict(
        expression_dim=len(EXPRESSION_NAMES),
        expression_names=list(EXPRESSION_NAMES),
        expression_presets={k: np.asarray(v, float).tolist() for k, v in EXPRESSION_PRESETS.items() if k != "neutral"},
    )
    kw.update(overrides)
    torch.manual_seed(0)
    model = Avat3rModel(ModelConfig.preset("tiny", **kw))
    model.save_pretrained(out)
    return out


def make_capture(out: Path, *, views: int = 4, size: int = 64, seed: int = 0) -> Path:
    """One SynthHeads capture folder written by the data helper's ``synth`` -> its path."""
    from avat3r.data.capture_folder import synth

    res = synth(out, subjects=1, seed=seed, views=views, size=size)
    if isinstance(res, (list, tuple)) and res:
        return Path(res[0])
    found = sorted(p.parent for p in Path(out).rglob("cameras.json"))
    assert found, f"synth wrote no capture folder under {out}"
    return found[0]


def astronaut_png(out: Path) -> Path:
    import skimage.data
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(out)
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python app.py`` in a subprocess on a free localhost port (context manager); ``.url`` once ready."""

    def __init__(self, weights: Path, *, env: dict | None = None, timeout: float = 120.0):
        self.weights, self.extra_env, self.timeout = weights, env or {}, timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = None
        self.log = None

    def __enter__(self) -> "AppServer":
        import os
        import subprocess
        import sys
        import tempfile
        import time
        import urllib.request

        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, AVAT3R_WEIGHTS=str(self.weights), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   AVAT3R_TURNTABLE_FRAMES="4", AVAT3R_VIDEO_SIZE="64", PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, str(root / "app.py"), "--port", str(self.port)], cwd=root, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"app.py did not answer on {self.url} within {self.timeout} s:\n{self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
