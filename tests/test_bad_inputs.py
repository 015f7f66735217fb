"""The bad-input corpus (tests/bad_inputs_corpus.py) through the Python API and the CLI (subprocesses): every
case must be refused with the expected Avat3rError (CLI: exit code 2, the whole message on stderr, no traceback),
a message containing the expected phrase, and no output file left behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from bad_inputs_corpus import API_CASES, CLI_CASES, Ctx, run_api, run_cli_cases

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ctx(ckpt, capture_dir):
    import avat3r

    pipe = avat3r.load_pipeline(ckpt, device="cpu")
    return Ctx(ckpt, capture_dir, pipe, pipe.reconstruct(capture_dir))


def _check(case, out):
    assert out.kind == "clean", f"{case.id}: {out.kind} ({out.error}: {out.message}; left {out.leftovers})"
    assert out.error == case.error, f"{case.id}: raised {out.error}, expected {case.error}: {out.message}"
    assert re.search(case.phrase, out.message, re.I), f"{case.id}: {case.phrase!r} not in {out.message!r}"


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_refuses(case, ctx, tmp_path):
    _check(case, run_api(case, ctx, tmp_path))


@pytest.fixture(scope="module")
def cli_results(ctx, tmp_path_factory):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    dirs = {c.id: tmp_path_factory.mktemp(c.id) for c in CLI_CASES}
    return run_cli_cases(CLI_CASES, ctx, lambda c: dirs[c.id], env, workers=4), dirs


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_refuses(case, cli_results):
    results, _ = cli_results
    out = results[case.id]
    _check(case, out)
    assert "avat3r: error:" in out.message and "Traceback" not in out.message


def test_output_errors_name_the_users_path_and_files_get_normal_modes(ctx, tmp_path):
    """A write that fails names the path the user asked for (never the hidden temp file) and leaves nothing;
    a write that succeeds gives the file the usual mode (0666 less the umask), not mkstemp's 0600."""
    import os

    from avat3r.errors import InputError
    from avat3r.io.images import save_image

    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder should be")
    target = blocker / "head.ply"
    with pytest.raises(InputError, match=r"notes\.txt/head\.ply: cannot create its folder") as e:
        ctx.avatar.save_ply(target)
    assert ".tmp" not in str(e.value) and ".head." not in str(e.value)
    out = ctx.avatar.save_ply(tmp_path / "ok" / "head.ply")
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~umask)
    save_image(tmp_path / "ok" / "p.png", ctx.avatar.preview if ctx.avatar.preview is not None else
               ctx.avatar.render((0, 0), size=32))
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["head.ply", "p.png"]  # no temp files left
