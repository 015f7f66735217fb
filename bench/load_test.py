"""Load test of the running app (issue 13): N concurrent clients, each making M creations (upload a capture-folder
zip, /create), as separate browser sessions would. Records successes, latency percentiles (p50 / p90 / max), the
app process's memory (RSS before, peak, after) and whether the app still answers afterwards.

    python bench/load_test.py --clients 8 --creations 5                 # launches app.py with the shipped weights
    python bench/load_test.py --weights CKPT --clients 4 --creations 2  # a given checkpoint (the CI version)
    python bench/load_test.py --url http://127.0.0.1:7860/ --pid 1234   # an app that is already running

The launched app gets AVAT3R_UPLOADS_PER_MINUTE raised (all clients share one address here; the per-client limit
has its own test). Output: one JSON object on stdout (and --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (Linux)."""
    cur = peak = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def capture_zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, Path(folder.name) / p.relative_to(folder))
    return out


def answers(url: str, timeout: float = 10.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def launch(weights: str | None, work: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(work),
               AVAT3R_UPLOADS_PER_MINUTE="100000", PYTHONPATH=str(ROOT))
    if weights:
        env["AVAT3R_WEIGHTS"] = str(weights)
    log = open(work / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while not answers(url, 2):
        if proc.poll() is not None or time.time() - t0 > 600:
            proc.kill()
            raise RuntimeError(f"app.py did not start: {(work / 'app.log').read_text()[-2000:]}")
        time.sleep(0.5)
    return proc, url


def run(url: str, clients: int, creations: int, zip_path: Path, pid: int | None = None) -> dict:
    """The load itself -> the figures (see the module docstring)."""
    from gradio_client import Client, handle_file

    lat, errors = [], []
    lock = threading.Lock()
    peak = [0.0]
    rss0 = rss_mb(pid)[0] if pid else None
    done = threading.Event()

    def sample():
        while not done.is_set():
            if pid:
                peak[0] = max(peak[0], rss_mb(pid)[0])
            done.wait(0.5)

    def client(k: int):
        # a queued request may wait many minutes on a busy CPU box: the client waits (gradio_client's default
        # read timeout of 20 s on some calls would count a slow answer as a failure)
        c = Client(url, verbose=False, httpx_kwargs={"timeout": 3600})
        for _ in range(creations):
            t = time.perf_counter()
            try:
                out = c.predict([handle_file(str(zip_path))], None, api_name="/create")
                ok = "Gaussians" in out[1] and Path(out[3]).stat().st_size > 0
                err = None if ok else f"unexpected output {str(out)[:100]}"
            except Exception as e:  # noqa: BLE001 - every failure is a data point
                err = f"{type(e).__name__}: {str(e)[:200]}"
            with lock:
                (errors.append(err) if err else lat.append(time.perf_counter() - t))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    after_ok = answers(url)
    # one more creation after the load: the app still works, not only answers
    try:
        from gradio_client import Client as C2

        C2(url, verbose=False).predict([handle_file(str(zip_path))], None, api_name="/create")
        after_create = True
    except Exception:  # noqa: BLE001
        after_create = False
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))], 2) if lat else None

    cur, hwm = rss_mb(pid) if pid else (None, None)
    return {
        "clients": clients, "creations_each": creations, "attempted": clients * creations, "succeeded": len(lat),
        "failed": len(errors), "errors": errors[:5], "wall_s": round(wall, 1),
        "latency_s": {"p50": pct(50), "p90": pct(90), "max": round(lat[-1], 2) if lat else None},
        "rss_mb": {"before": rss0 and round(rss0), "peak_sampled": round(peak[0]) if pid else None,
                   "peak_hwm": hwm and round(hwm), "after": cur and round(cur)},
        "answers_afterwards": after_ok, "creates_afterwards": after_create,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="N concurrent clients x M creations against the app")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--creations", type=int, default=5)
    ap.add_argument("--weights", default=None, help="checkpoint for the launched app (default: shipped weights/)")
    ap.add_argument("--url", default=None, help="use a running app instead of launching one")
    ap.add_argument("--pid", type=int, default=None, help="the running app's process id (for its memory)")
    ap.add_argument("--capture", default=str(ROOT / "demo" / "examples" / "synth_1"), help="capture folder to upload")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="avat3r_load_"))
    zip_path = capture_zip(Path(args.capture), work / "capture.zip")
    proc = None
    url, pid = args.url, args.pid
    if url is None:
        proc, url = launch(args.weights, work)
        pid = proc.pid
    try:
        res = run(url, args.clients, args.creations, zip_path, pid)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)  # the app's session folders and Gradio's cache of this run
    res.update(machine=f"{os.cpu_count()} CPU cores", weights=args.weights or "shipped weights/", capture=args.capture)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if res["succeeded"] == res["attempted"] and res["answers_afterwards"] else 1


if __name__ == "__main__":
    sys.exit(main())
