"""Bad inputs against the running app over HTTP (issue 13): one app (tiny checkpoint) launched for the module,
driven with gradio_client like a browser would. First the cross-user case: a second session must never read the
first session's upload, whatever its cameras.json names."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")
from app_fixtures import AppServer, make_capture, make_tiny_checkpoint  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The app's own work folder (per-session files), private to this module's app."""
    return tmp_path_factory.mktemp("app_tmp")


@pytest.fixture(scope="module")
def server(tmp_path_factory, work):
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    # the corpus makes many creations from one address: the per-client rate limit has its own test below
    with AppServer(ckpt, env={"TMPDIR": str(work), "AVAT3R_UPLOADS_PER_MINUTE": "1000"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return make_capture(tmp_path_factory.mktemp("cap"), views=2, size=64)


def zip_capture(folder: Path, out: Path, *, cameras: dict | None = None, extra: dict | None = None) -> Path:
    """Zip a capture folder as ``cap/...``; ``cameras`` replaces its cameras.json, ``extra`` adds members."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not (cameras is not None and p.name == "cameras.json"):
                zf.write(p, Path("cap") / p.relative_to(folder))
        if cameras is not None:
            zf.writestr("cap/cameras.json", json.dumps(cameras))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def _app_work(work: Path) -> Path:
    return Path(work) / "avat3r_app"


def _files_under(d: Path) -> set[Path]:
    return {p for p in d.rglob("*") if p.is_file()} if d.exists() else set()


@pytest.fixture(scope="module")
def session_a(server, capture, work, tmp_path_factory):
    """Session A creates an avatar from its own capture zip, its first photo a unique magenta -> (its folder name
    on the server, its photo's path relative to the app's work folder, the view name)."""
    import shutil

    from PIL import Image

    tmp = tmp_path_factory.mktemp("a")
    mine = tmp / "a_capture"
    shutil.copytree(capture, mine)
    first = sorted(json.loads((mine / "cameras.json").read_text()))[0]
    Image.fromarray(np.full((64, 64, 3), (250, 10, 200), np.uint8)).save(mine / "images" / f"{first}.png")
    root = _app_work(work)
    before = {d.name for d in root.iterdir()} if root.exists() else set()
    Client(server.url, verbose=False).predict([handle_file(str(zip_capture(mine, tmp / "a.zip")))], None,
                                               api_name="/create")
    new = sorted({d.name for d in root.iterdir()} - before - {"examples"})
    assert len(new) == 1, f"session A should have one folder in the app's work folder, found {new}"
    a_img = next(root.joinpath(new[0]).rglob(f"images/{first}.png"))
    return new[0], a_img.relative_to(root), first


@pytest.mark.parametrize("attack", ["relative", "wildcard", "absolute", "backslash"])
def test_second_session_never_reads_the_first_sessions_upload(server, capture, work, session_a, tmp_path, attack):
    """Session B's cameras.json names session A's photo (relative '..', a wildcard, an absolute path, Windows
    separators): B gets a clear error naming its own cameras.json, no outputs, no trace of A's files in the
    message, and nothing of B's attempt stays on the server."""
    sid_a, rel_a, first = session_a
    root = _app_work(work)
    b = Client(server.url, verbose=False)
    cams = json.loads((capture / "cameras.json").read_text())
    entry = cams[sorted(cams)[0]]
    target = {
        "relative": "../../../../" + str(rel_a.with_suffix("")),
        "wildcard": "../../../../*/upload/*/images/" + first,
        "absolute": str((root / rel_a).with_suffix("")),
        "backslash": "..\\..\\..\\..\\" + str(rel_a.with_suffix("")).replace("/", "\\"),
    }[attack]
    z = zip_capture(capture, tmp_path / "b.zip", cameras={target: entry})
    before_b = _files_under(root)
    with pytest.raises(AppError) as e:
        b.predict([handle_file(str(z))], None, api_name="/create")
    msg = str(e.value)
    assert "cameras.json" in msg and "not allowed" in msg, msg
    shown = re.sub(r"view name '.*?' is not allowed", "", msg)  # B's own text may be echoed; nothing else of A's
    assert sid_a not in shown and str(work) not in shown and "Traceback" not in msg, msg
    assert _files_under(root) - before_b == set(), "B's upload was left on the server"
    with pytest.raises(AppError, match="Create an avatar first"):  # B got no avatar
        b.predict(["neutral"], 2, 0, 0, api_name="/play")


# ---- the corpus over HTTP (one shared app) -------------------------------------------------------------------
from bad_inputs_corpus import HTTP_CASES, Ctx, run_http  # noqa: E402


@pytest.fixture(scope="module")
def avatar_client(server, capture, tmp_path_factory):
    """A session that has an avatar (for the slider and play cases)."""
    c = Client(server.url, verbose=False)
    c.predict([handle_file(str(zip_capture(capture, tmp_path_factory.mktemp("ok") / "ok.zip")))], None, api_name="/create")
    return c


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def test_http_refuses(case, server, capture, work, avatar_client, tmp_path, ckpt_ctx):
    out = run_http(case, ckpt_ctx, tmp_path, server.url, _app_work(work), avatar_client)
    assert out.kind == "clean", f"{case.id}: {out.kind} ({out.error}: {out.message}; left {out.leftovers})"
    assert re.search(case.phrase, out.message, re.I), f"{case.id}: {case.phrase!r} not in {out.message!r}"
    assert "Traceback" not in out.message and str(work) not in out.message


@pytest.fixture(scope="module")
def ckpt_ctx(capture, tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("unused"), capture)


# ---- rate and disk limits (an app of their own, with small limits) -------------------------------------------
def test_rate_and_disk_limits(tmp_path_factory, capture, tmp_path):
    """Small limits: a session over its disk bound is refused more files; a new session pushes the oldest one
    out when all sessions are over the total; a session keeps only its latest creation; the fourth creation
    from one address within a minute is refused; raw uploads beyond their count get 429."""
    import urllib.request

    work = tmp_path_factory.mktemp("limits_tmp")
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt2") / "tiny")
    env = {"TMPDIR": str(work), "AVAT3R_UPLOADS_PER_MINUTE": "3", "AVAT3R_SESSION_DISK_MB": "0.05",
           "AVAT3R_TOTAL_DISK_MB": "0.05"}
    z = zip_capture(capture, tmp_path / "ok.zip")
    root = _app_work(work)

    def sessions():
        return sorted(d for d in root.iterdir() if d.name != "examples")

    with AppServer(ckpt, env=env) as srv:
        c1 = Client(srv.url, verbose=False)
        c1.predict([handle_file(str(z))], None, api_name="/create")
        with pytest.raises(AppError, match=r"more than 0.05 MB of files on the server \(the limit\)"):
            c1.predict(*([0.5] * 20), api_name="/show_expression")
        first = sessions()
        assert len(first) == 1
        c2 = Client(srv.url, verbose=False)
        c2.predict([handle_file(str(z))], None, api_name="/create")
        assert first[0] not in sessions() and len(sessions()) == 1, "the oldest session should have been deleted"
        with pytest.raises(AppError, match=r"cleared from the server"):
            c1.predict(["neutral"], 2, 0, 0, api_name="/play")
        c2.predict([handle_file(str(z))], None, api_name="/create")  # a new creation replaces the session's old one
        assert len(list(sessions()[0].iterdir())) == 1, "the session keeps only its latest creation"
        with pytest.raises(AppError, match=r"limit is 3 a minute"):  # the fourth creation within the minute
            Client(srv.url, verbose=False).predict([handle_file(str(z))], None, api_name="/create")
        # raw uploads: beyond the per-minute count the upload route answers 429 with the limit
        codes = []
        for _ in range(70):
            req = urllib.request.Request(srv.url + "gradio_api/upload", method="POST", data=b"--x--\r\n",
                                         headers={"Content-Type": "multipart/form-data; boundary=x"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
                if e.code == 429:
                    assert b"limit is 60 uploads" in e.read()
                    break
        assert codes[-1] == 429 and len(codes) <= 61
        # the app still answers
        with urllib.request.urlopen(srv.url, timeout=10) as r:
            assert r.status == 200
