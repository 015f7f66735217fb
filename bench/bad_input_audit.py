"""Run the bad-input corpus (tests/bad_inputs_corpus.py) against a source tree and count the outcomes (issue 13):

- clean: refused with an Avat3rError (CLI: exit 2 and a message; app: a message, not a bare "Error"), nothing left;
- unhandled: another exception (CLI: a traceback / "internal error"; app: a bare "Error"), or a hang;
- silent: no error at all (a wrong result, or work without a bound);
- leftover: refused cleanly, but output files were left behind.

    python bench/bad_input_audit.py                         # this checkout
    git worktree add /tmp/before ea0cea5 && python bench/bad_input_audit.py --tree /tmp/before --out before.json

The corpus, its file makers and the tiny checkpoint come from this checkout's tests/; the code under test (the
``avat3r`` package, the CLI and app.py) from ``--tree``. The API cases run in this process under a 10 GB address
space limit and a per-case time limit, so old code that allocates without bound fails instead of taking the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


class CaseTimeout(Exception):
    pass


def _alarm(*_):
    raise CaseTimeout()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(HERE), help="source tree whose avat3r, CLI and app.py are tested")
    ap.add_argument("--out", default=None, help="write per-case outcomes as JSON here")
    ap.add_argument("--surfaces", default="api,cli,http")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per API case (longer = a hang)")
    ap.add_argument("--report", nargs="+", default=None, help="only print the table of these result files (merged)")
    args = ap.parse_args(argv)
    if args.report:
        merged = {}
        for f in args.report:
            merged.update(json.loads(Path(f).read_text()))
        report(merged, f"{' + '.join(args.report)}: {len(merged)} cases")
        return 0
    tree = Path(args.tree).resolve()
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(HERE / "tests"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    resource.setrlimit(resource.RLIMIT_AS, (10 * 2**30, resource.RLIM_INFINITY))

    import bad_inputs_corpus as corpus
    from app_fixtures import make_capture, make_tiny_checkpoint

    import avat3r

    assert Path(avat3r.__file__).resolve().is_relative_to(tree), f"imported {avat3r.__file__}, not from {tree}"
    tmp = Path(tempfile.mkdtemp(prefix="bad_input_audit_"))
    ckpt = make_tiny_checkpoint(tmp / "ckpt")
    capture = make_capture(tmp / "synth", views=4, size=64)
    surfaces = set(args.surfaces.split(","))
    results: dict[str, dict] = {}
    t0 = time.time()

    def record(case, out, surface):
        results[case.id] = dict(surface=surface, kind=out.kind, error=out.error, message=out.message[:400],
                                leftovers=out.leftovers)

    if "api" in surfaces:
        pipe = avat3r.load_pipeline(ckpt, device="cpu")
        ctx = corpus.Ctx(ckpt, capture, pipe, pipe.reconstruct(capture))
        signal.signal(signal.SIGALRM, _alarm)
        for case in corpus.API_CASES:
            d = tmp / "api" / case.id
            d.mkdir(parents=True)
            signal.alarm(int(args.timeout))
            try:
                out = corpus.run_api(case, ctx, d)
            except CaseTimeout:
                out = corpus.Outcome("silent", "timeout", f"still working after {args.timeout:.0f} s (no bound)", [])
            finally:
                signal.alarm(0)
            if out.error == "CaseTimeout":
                out = corpus.Outcome("silent", "timeout", f"still working after {args.timeout:.0f} s (no bound)", [])
            record(case, out, "api")
        print(f"api done ({time.time() - t0:.0f} s)", flush=True)
    if "cli" in surfaces:
        ctx = corpus.Ctx(ckpt, capture)
        env = dict(os.environ, PYTHONPATH=str(tree), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        dirs = {}
        for case in corpus.CLI_CASES:
            dirs[case.id] = tmp / "cli" / case.id
            dirs[case.id].mkdir(parents=True)
        outs = corpus.run_cli_cases(corpus.CLI_CASES, ctx, lambda c: dirs[c.id], env, workers=2, timeout=180)
        for case in corpus.CLI_CASES:
            record(case, outs[case.id], "cli")
        print(f"cli done ({time.time() - t0:.0f} s)", flush=True)
    if "http" in surfaces:
        _http(corpus, tree, ckpt, capture, tmp, record)
        print(f"http done ({time.time() - t0:.0f} s)", flush=True)

    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    report(results, f"{tree}: {len(results)} cases in {time.time() - t0:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict, title: str) -> None:
    """Print the counts per surface and kind, then every case that is not clean."""
    by = Counter((r["surface"], r["kind"]) for r in results.values())
    kinds = ("clean", "unhandled", "silent", "leftover")
    print(f"\n{title}")
    print("surface  " + "  ".join(f"{k:>9}" for k in kinds))
    for s in ("api", "cli", "http"):
        print(f"{s:8} " + "  ".join(f"{by[(s, k)]:9d}" for k in kinds))
    print("all      " + "  ".join(f"{sum(by[(s, k)] for s in ('api', 'cli', 'http')):9d}" for k in kinds))
    for cid, r in results.items():
        if r["kind"] != "clean":
            print(f"  {r['kind']:9} {cid}: {r['error']} {r['message'][:110]!r}")


def _http(corpus, tree: Path, ckpt: Path, capture: Path, tmp: Path, record) -> None:
    """Launch tree/app.py and run the HTTP cases, plus the cross-user read (relative and wildcard)."""
    import urllib.request

    from app_fixtures import free_port
    from gradio_client import Client, handle_file

    work = tmp / "app_tmp"
    work.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, AVAT3R_WEIGHTS=str(ckpt), PYTHONPATH=str(tree), TMPDIR=str(work), GRADIO_ANALYTICS_ENABLED="False",
               AVAT3R_TURNTABLE_FRAMES="4", AVAT3R_VIDEO_SIZE="64", AVAT3R_UPLOADS_PER_MINUTE="1000")
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(tree / "app.py"), "--port", str(port)], cwd=tree, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        t0 = time.time()
        while True:  # a busy box can take minutes to import gradio
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > 900:
                    raise RuntimeError(f"{tree}/app.py did not start: {(tmp / 'app.log').read_text()[-2000:]}") from None
                time.sleep(1.0)
        app_work = work / "avat3r_app"
        ctx = corpus.Ctx(ckpt, capture)
        zips = tmp / "zips"
        zips.mkdir()
        good = corpus.zip_folder(capture, zips / "ok.zip")
        avatar_client = Client(url, verbose=False)
        avatar_client.predict([handle_file(str(good))], None, api_name="/create")
        for case in corpus.HTTP_CASES:
            d = tmp / "http" / case.id
            d.mkdir(parents=True)
            record(case, corpus.run_http(case, ctx, d, url, app_work, avatar_client), "http")
        # the cross-user read: B's cameras.json names A's uploaded photo
        a_img = next(p for p in app_work.rglob("images/*.png"))
        rel = a_img.relative_to(app_work).with_suffix("")
        cams = json.loads((capture / "cameras.json").read_text())
        first = sorted(cams)[0]
        for cid, name in (("http_cross_user_relative", "../../../../" + str(rel)),
                          ("http_cross_user_wildcard", "../../../../*/upload/*/images/" + rel.name),
                          ("http_cross_user_deep_relative", "../../../../../" + str(rel))):
            f = corpus.copy_capture(ctx, tmp / "x" / cid)
            (f / "cameras.json").write_text(json.dumps({name: cams[first]}))
            z = corpus.zip_folder(f, tmp / "x" / cid / "b.zip")
            case = corpus.Case(cid, "http", lambda c, t, z=z: ("/create", ([("file", str(z))], None), False), "AppError",
                               r"not allowed")
            record(case, corpus.run_http(case, ctx, tmp / "x" / cid, url, app_work), "http")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
