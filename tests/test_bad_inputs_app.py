"""Bad inputs against the running app over HTTP (issue 13): one app (tiny checkpoint) launched for the module,
driven with gradio_client like a browser would. First the cross-user case: a second session must never read the
first session's upload, whatever its cameras.json names."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app_fixtures import AppServer, make_capture, make_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The app's own work folder (per-session files), private to this module's app."""
    return tmp_path_factory.mktemp("app_tmp")


@pytest.fixture(scope="module")
def server(tmp_path_factory, work):
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    with AppServer(ckpt, env={"TMPDIR": str(work)}) as srv:
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
