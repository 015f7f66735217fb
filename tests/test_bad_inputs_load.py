"""The load test (bench/load_test.py) in small: 4 concurrent clients x 2 creations against the app launched with
the tiny checkpoint; all succeed, the figures are recorded, and the app answers (and creates) afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

from app_fixtures import AppServer, make_tiny_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "bench" / "load_test.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_load_4_clients_x_2_creations(tmp_path_factory, capture_dir, tmp_path):
    bench = _bench()
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    env = {"TMPDIR": str(tmp_path_factory.mktemp("load_tmp")), "AVAT3R_UPLOADS_PER_MINUTE": "1000"}
    with AppServer(ckpt, env=env) as srv:
        res = bench.run(srv.url, 4, 2, bench.capture_zip(capture_dir, tmp_path / "cap.zip"), srv.proc.pid)
    assert res["attempted"] == 8 and res["succeeded"] == 8, res["errors"]
    lat = res["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["max"]
    assert res["rss_mb"]["peak_hwm"] >= res["rss_mb"]["before"] > 50
    assert res["answers_afterwards"] and res["creates_afterwards"]
