"""Avat3r web demo (Gradio 6): photos -> animatable 3D Gaussian head -> interactive viewer, videos, .ply.

Run ``python app.py`` (CPU or GPU, offline, with the shipped ``weights/`` or ``AVAT3R_WEIGHTS=<checkpoint dir>``).
The app is thin: every step calls ``avat3r.pipeline`` (the same object as the CLI and the notebooks). Nothing
heavy happens at import: the model is loaded once, on the first request. See docs/APP.md.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import gradio as gr

from avat3r import limits

try:  # Hugging Face Spaces (ZeroGPU): borrow a GPU for the decorated calls; a no-op elsewhere
    import spaces

    GPU = spaces.GPU(duration=60)
except ImportError:  # not on Spaces
    spaces = None

    def GPU(fn):  # noqa: N802
        return fn


ROOT = Path(__file__).resolve().parent
EXAMPLES = Path(os.environ.get("AVAT3R_EXAMPLES", ROOT / "demo" / "examples"))
from avat3r.io.paths import IMAGE_SUFFIXES, VIDEO_SUFFIXES  # noqa: E402  (the one list; light: no torch)

MAX_IMAGES = limits.MAX_VIEWS  # the network takes 1..8 views
MAX_FILE_MB = limits.MAX_FILE_MB  # per uploaded file (enforced by Gradio before our code runs)
# Disk and rate bounds (limits.py); the environment may lower or raise them for one deployment or a test.
SESSION_DISK_MB = float(os.environ.get("AVAT3R_SESSION_DISK_MB", limits.SESSION_DISK_MB))
TOTAL_DISK_MB = float(os.environ.get("AVAT3R_TOTAL_DISK_MB", limits.TOTAL_DISK_MB))
UPLOADS_PER_MINUTE = int(os.environ.get("AVAT3R_UPLOADS_PER_MINUTE", limits.UPLOADS_PER_MINUTE))
QUEUE_SIZE = int(os.environ.get("AVAT3R_QUEUE_SIZE", 16))
MAX_SLIDERS = 24  # models with longer codes (e.g. 256-d) get sliders for the first dims; the rest follow presets
TURNTABLE_FRAMES = int(os.environ.get("AVAT3R_TURNTABLE_FRAMES", 24))  # one orbit in 3 s
VIDEO_SIZE = int(os.environ.get("AVAT3R_VIDEO_SIZE", 256))
WORK = Path(tempfile.gettempdir()) / "avat3r_app"


def UserError(message: str, title: str = "Error") -> gr.Error:  # noqa: N802
    """A message for the user (shown in the page); no traceback in the server log: nothing went wrong there."""
    return gr.Error(message, title=title, print_exception=False)


def _user_error(e: Exception, title: str = "Cannot build the avatar") -> gr.Error:
    msg = str(e).strip() or type(e).__name__
    if str(WORK) in msg:  # never show a server path: name the user's file as they uploaded it
        msg = msg.replace(str(WORK) + os.sep, "").replace(str(WORK), "")
    return UserError(msg.replace("\n", "<br>"), title=title)


def friendly(title: str):
    """Every failure of a step reaches the page as a gr.Error with a message (never a bare "Error"): our
    Avat3rError as it is, anything else as an internal error (its traceback goes to the server log)."""

    def as_user_error(e: Exception) -> gr.Error:
        from avat3r.errors import Avat3rError

        if isinstance(e, gr.Error):
            return e
        if isinstance(e, Avat3rError):
            return _user_error(e, title)
        if isinstance(e, MemoryError):
            return UserError("The server ran out of memory for this request: use fewer or smaller images.", title=title)
        import traceback  # a bug: the user still gets a sentence, the log gets the traceback

        traceback.print_exc()
        return UserError(f"Internal error ({type(e).__name__}); please try again, and report it if it persists.",
                         title=title)

    def deco(fn):
        if inspect.isgeneratorfunction(fn):  # a step that streams its outputs (Gradio needs a generator function)
            @functools.wraps(fn)
            def streamed(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as e:
                    raise as_user_error(e) from None

            return streamed

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                raise as_user_error(e) from None

        return wrapped

    return deco


# ---- the model: loaded once, lazily ---------------------------------------------------------------------
_PIPE = None
_PIPE_LOCK = threading.Lock()


def weights_dir() -> Path:
    from avat3r.pipeline import default_weights_dir

    return default_weights_dir()


def read_config() -> dict | None:
    """The checkpoint's config.json (cheap, no torch) for building the UI; None when no weights are there."""
    p = weights_dir() / "config.json"
    if not (p.is_file() and (p.parent / "model.safetensors").is_file()):
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def get_pipeline():
    """Load the pipeline on first use (thread-safe); gr.Error with what to do when the weights are missing."""
    global _PIPE
    if _PIPE is None:
        with _PIPE_LOCK:
            if _PIPE is None:
                from avat3r.errors import Avat3rError
                from avat3r.pipeline import load_pipeline

                try:
                    pipe = load_pipeline(os.environ.get("AVAT3R_WEIGHTS") or None)
                    pipe.check_priors()
                except Avat3rError as e:
                    raise UserError(f"The model cannot be loaded: {e}", title="No model") from None
                _PIPE = pipe
    return _PIPE


# ---- per-session files, bounded (issue 13) ---------------------------------------------------------------
# WORK/<session key>/<creation>/: one folder per browser session (its key a hash of Gradio's session id, never
# the client's string itself), holding only that session's latest creation. Each session may keep SESSION_DISK_MB,
# all together TOTAL_DISK_MB: above it the oldest sessions are deleted first. Results older than 2 h go anyway.
_DISK_LOCK = threading.Lock()


def _session_key(request) -> str:
    raw = getattr(request, "session_hash", None) or uuid.uuid4().hex
    return hashlib.sha256(str(raw).encode()).hexdigest()[:16]


def _du(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _prune_total(keep: Path | None = None) -> None:
    """Delete sessions older than 2 h, then the oldest sessions until all of WORK fits TOTAL_DISK_MB."""
    now = time.time()
    sessions = []
    for d in WORK.iterdir():
        if d.name == "examples" or not d.is_dir():
            continue
        try:
            mtime = d.stat().st_mtime
        except OSError:
            continue
        if now - mtime > 7200:
            shutil.rmtree(d, ignore_errors=True)
        else:
            sessions.append((mtime, d))
    sizes = {d: _du(d) for _, d in sessions}
    total = sum(sizes.values())
    for _, d in sorted(sessions, key=lambda t: t[0]):  # oldest first
        if total <= TOTAL_DISK_MB * 2**20:
            break
        if keep is not None and d == keep:
            continue
        shutil.rmtree(d, ignore_errors=True)
        total -= sizes[d]


def _session_dir(request=None) -> Path:
    """A fresh folder for this session's new creation; the session's earlier creations are deleted (their
    outputs were handed to Gradio's cache already)."""
    with _DISK_LOCK:
        WORK.mkdir(parents=True, exist_ok=True)
        session = WORK / _session_key(request)
        if session.is_dir():
            for old in session.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        _prune_total(keep=session)
        d = session / uuid.uuid4().hex[:12]
        d.mkdir(parents=True)
        os.utime(session)
        return d


def _check_session_disk(work: Path) -> None:
    """Before writing more files for a session: drop its old viewer files, then refuse when it is over the limit."""
    session = work.parent
    with _DISK_LOCK:
        if _du(session) <= SESSION_DISK_MB * 2**20:
            return
        for p in sorted(work.glob("viewer_*.ply"), key=lambda q: q.stat().st_mtime)[:-1]:
            p.unlink(missing_ok=True)
        if _du(session) > SESSION_DISK_MB * 2**20:
            raise UserError(f"This session keeps more than {SESSION_DISK_MB:g} MB of files on the server (the limit). "
                            "Create the avatar again to start afresh.", title="Too much data")


# ---- uploads per client per minute ---------------------------------------------------------------------
_RATE: dict[str, collections.deque] = {}
_RATE_LOCK = threading.Lock()


def _client_key(request) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def _check_rate(request) -> None:
    """At most UPLOADS_PER_MINUTE creations per client (address) in any 60 s; else a message with the limit."""
    key, now = _client_key(request), time.monotonic()
    with _RATE_LOCK:
        q = _RATE.setdefault(key, collections.deque())
        while q and now - q[0] > 60:
            q.popleft()
        if len(q) >= UPLOADS_PER_MINUTE:
            wait = 60 - (now - q[0])
            raise UserError(f"Too many creations from your address: the limit is {UPLOADS_PER_MINUTE} a minute. Try "
                            f"again in {wait:.0f} s.", title="Please wait")
        q.append(now)
        if len(_RATE) > 10_000:  # forget idle clients
            for k in [k for k, v in _RATE.items() if not v or now - v[-1] > 60]:
                _RATE.pop(k, None)


class UploadLimiter:
    """ASGI middleware: at most UPLOAD_REQUESTS_PER_MINUTE uploads and UPLOAD_MB_PER_MINUTE per client address
    in any 60 s, on Gradio's upload route (which stores files before any of our code runs); 429 beyond."""

    def __init__(self, app):
        self.app = app
        self.seen: dict[str, collections.deque] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("method") == "POST" and scope.get("path", "").endswith("/upload"):
            host = (scope.get("client") or ("unknown", 0))[0]
            headers = dict(scope.get("headers") or [])
            try:
                size = int(headers.get(b"content-length", b"0"))
            except ValueError:
                size = 0
            now = time.monotonic()
            with self.lock:
                q = self.seen.setdefault(host, collections.deque())
                while q and now - q[0][0] > 60:
                    q.popleft()
                used = sum(n for _, n in q)
                over = (len(q) >= limits.UPLOAD_REQUESTS_PER_MINUTE
                        or used + size > limits.UPLOAD_MB_PER_MINUTE * 2**20)
                if not over:
                    q.append((now, size))
            if over:
                body = (f"Too many uploads from your address: the limit is {limits.UPLOAD_REQUESTS_PER_MINUTE} uploads "
                        f"and {limits.UPLOAD_MB_PER_MINUTE} MB a minute. Try again in a minute.").encode()
                await send({"type": "http.response.start", "status": 429,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"60")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _safe_extract(zip_path: Path, out: Path) -> Path:
    """Extract a capture-folder zip within the limits (the capture source's ``unpack_zip``, ``avat3r.io.zips``)
    -> the capture folder (or ``out``, a zip of photos)."""
    from avat3r.errors import Avat3rError
    from avat3r.sources.capture import unpack_zip

    try:
        return unpack_zip(zip_path, out)
    except Avat3rError as e:
        raise _user_error(e) from None


def _check_photo(path: Path) -> None:
    from avat3r.errors import Avat3rError
    from avat3r.io.images import check_image_file

    try:
        check_image_file(path, path.name)
    except Avat3rError as e:
        raise UserError(f"{e} Upload PNG or JPEG photos (or a capture-folder .zip).") from None


def input_sources() -> list:
    """The input sources this app offers (``avat3r.sources`` registry, those usable here), in listing order."""
    from avat3r.sources import list_sources

    return list_sources(available_only=True)


def resolve_source(source, files, example, seed, prompt, work: Path):
    """The picked input source and its widgets -> (what Pipeline.reconstruct takes, source name or None = picked
    from the files). Sources that take files share the upload (photos, a video or a capture zip are told apart
    by the pipeline); the others take the seed or the prompt."""
    from avat3r.sources import get_source

    src = get_source(source) if source else None
    if src is not None and src.takes == "seed":
        try:
            value = float(seed if seed is not None else 0)
        except (TypeError, ValueError):
            raise UserError(f"The seed must be a whole number, got {seed!r}.") from None
        if value != value or value != int(value) or not 0 <= value < 2**31:
            raise UserError(f"The seed must be a whole number from 0 to {2**31 - 1}, got {seed!r}.")
        return int(value), src.name
    if src is not None and src.takes == "text":
        if not (prompt or "").strip():
            raise UserError(f"Type a prompt for {src.label}.")
        return prompt.strip(), src.name
    if not files and example:
        files = example_files(example)
    inputs = resolve_inputs(files, work)
    return inputs, (src.name if src is not None and src.takes == "photo" else None)


def resolve_inputs(files, work: Path):
    """Uploaded paths -> what Pipeline.reconstruct takes (a capture-folder path or a list of photo paths)."""
    paths = [Path(f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", f)) for f in (files or [])]
    if not paths:
        raise UserError("Upload 1 to 8 photos of one head, a video, or a capture-folder .zip, or pick an example.")
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    if videos:  # the video source picks frames with different head poses
        if len(paths) > 1:
            raise UserError("Upload either one video or photos, not both.")
        return videos[0]
    zips = [p for p in paths if p.suffix.lower() == ".zip"]
    if zips:
        if len(paths) > 1:
            raise UserError("Upload either one capture-folder .zip or photos, not both.")
        folder = _safe_extract(zips[0], work / "upload")
        if (folder / "cameras.json").is_file():
            return folder
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"{zips[0].name} has neither cameras.json nor photos. Zip a capture folder (images/ + cameras.json).")
    cams = [p for p in paths if p.name == "cameras.json"]
    photos = [p for p in paths if p.name != "cameras.json"]
    bad = [p.name for p in photos if p.suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise UserError(f"Cannot use {', '.join(bad[:3])}: upload PNG/JPEG photos, one video, or one capture-folder .zip.")
    if len(photos) > MAX_IMAGES:
        raise UserError(f"{len(photos)} photos were uploaded; use at most {MAX_IMAGES} (4 from different sides work best).")
    for p in photos:
        _check_photo(p)
    if cams:  # loose capture folder: cameras.json + images named after its views
        folder = work / "capture"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(cams[0], folder / "cameras.json")
        for p in photos:
            shutil.copy(p, folder / "images" / p.name)
        return folder
    return photos


# ---- examples -------------------------------------------------------------------------------------------
def list_examples() -> dict[str, Path]:
    """demo/examples/<name>/: capture folders (cameras.json) or folders of photos -> {label: folder}."""
    out = {}
    if not EXAMPLES.is_dir():
        return out
    for d in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        if (d / "cameras.json").is_file():
            n = len([p for p in (d / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES])
            out[f"{d.name} (SynthHeads capture, {n} views)"] = d
        else:
            n = len([p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES])
            if n:
                out[f"{d.name} ({n} photo{'s' if n > 1 else ''})"] = d
    return out


@friendly("Cannot load the example")
def example_files(label: str | None) -> list[str]:
    """The files an example uploads: its photos, or a zip of its capture folder (made once, cached)."""
    if not label:
        return []
    d = list_examples().get(label)
    if d is None:
        raise UserError(f"Unknown example {label!r}.")
    if not (d / "cameras.json").is_file():
        return [str(p) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    z = WORK / "examples" / f"{d.name}.zip"
    if not z.is_file():
        z.parent.mkdir(parents=True, exist_ok=True)
        tmp = z.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(d.rglob("*")):
                if p.is_file():
                    zf.write(p, Path(d.name) / p.relative_to(d))
        os.replace(tmp, z)
    return [str(z)]


# ---- the steps ------------------------------------------------------------------------------------------
def _progress_cb(progress, lo: float = 0.0, hi: float = 1.0):
    return lambda f, msg: progress(lo + (hi - lo) * f, desc=msg)


def _viewer_ply(avatar, code, work: Path, tag: str) -> str:
    """The viewer's .ply (re-posed for Model3D) and nothing else; unique name so the viewer reloads."""
    from avat3r.io.ply import save_ply
    from avat3r.pipeline import viewer_gaussians

    g = viewer_gaussians(avatar.animate(code))
    path = work / f"viewer_{tag}_{uuid.uuid4().hex[:6]}.ply"
    save_ply(path, g, orientation="y_up")  # already posed for the viewer by viewer_gaussians
    return str(path)


@GPU
@friendly("Cannot build the avatar")
def create(files, example=None, source=None, seed=0, prompt="", request: gr.Request = None, progress=gr.Progress()):
    """The picked input source: photos / a video / a capture zip (or, with no upload, the picked example), or a
    seed / prompt for the sources that take one -> (session state, preview, report, viewer .ply, .ply download)."""
    from avat3r.errors import Avat3rError

    t0 = time.time()
    _check_rate(request)
    progress(0.0, desc="loading the model")
    pipe = get_pipeline()
    work = _session_dir(request)
    try:
        inputs, name = resolve_source(source, files, example, seed, prompt, work)
        try:
            avatar = pipe.reconstruct(inputs, source=name, progress=_progress_cb(progress, 0.05, 0.85))
        except Avat3rError as e:
            raise _user_error(e) from None
    except BaseException:  # a refused upload leaves nothing on the server
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(0.9, desc="writing the 3D viewer file")
    neutral = avatar.expression_code(None)
    viewer = _viewer_ply(avatar, neutral, work, "neutral")
    ply = str(avatar.save_ply(work / "avatar.ply"))
    lines = [line.replace(str(work / "upload") + "/", "").replace(str(work) + "/", "") for line in avatar.report]
    report = "\n".join(lines + [f"3D view ready in {time.time() - t0:.1f} s"])
    state = {"avatar": avatar, "work": str(work), "code": neutral.tolist()}
    return state, avatar.preview, report, viewer, ply


@GPU
@friendly("Cannot make the video")
def turntable(state, progress=gr.Progress()):
    """The current avatar (neutral) orbiting once -> mp4."""
    from avat3r.io.video import write_video

    avatar, work = _need_avatar(state)
    _check_session_disk(work)
    frames = avatar.turntable(TURNTABLE_FRAMES, VIDEO_SIZE, None, progress=_progress_cb(progress, 0.0, 0.95))
    progress(0.97, desc="encoding the video")
    return str(write_video(work / f"turntable_{uuid.uuid4().hex[:6]}.mp4", frames, fps=max(4, len(frames) / 3)))


def _need_avatar(state):
    if not isinstance(state, dict) or "avatar" not in state:
        raise UserError("Create an avatar first (tab 1: upload photos or pick an example, then press Create).")
    work = Path(state["work"])
    if not work.is_dir():
        raise UserError("This avatar's files were cleared from the server (sessions expire after 2 hours, or when the "
                        "server needs space). Create it again.", title="Avatar expired")
    return state["avatar"], work


def _code_from(state, pipe, values) -> list[float]:
    """Slider values (raw HTTP may send anything) -> a checked code: numbers, finite, within range."""
    from avat3r.errors import InputError

    code = list(state.get("code") or [0.0] * pipe.expression_space.dim)
    for i, v in enumerate(values[: len(code)]):
        try:
            code[i] = float(v)
        except (TypeError, ValueError):
            raise InputError(f"expression slider {i + 1} must be a number, got {str(v)[:40]!r}") from None
    return pipe.expression_space.resolve(code)


@GPU
@friendly("Cannot show this expression")
def show_expression(state, *values, progress=gr.Progress()):
    """Slider values -> (viewer .ply, .ply download, still frame) of the current avatar under that expression."""
    avatar, work = _need_avatar(state)
    pipe = get_pipeline()
    code = _code_from(state, pipe, values)
    _check_session_disk(work)
    progress(0.2, desc="animating")
    viewer = _viewer_ply(avatar, code, work, "expr")
    ply = str(avatar.save_ply(work / "avatar_expression.ply", code))
    state = dict(state, code=code)
    return state, viewer, ply


@friendly("Cannot apply the preset")
def apply_preset(state, name):
    """Preset button -> slider values (and the full code kept in the state)."""
    pipe = get_pipeline()
    space = pipe.expression_space
    code = [round(float(v), 4) for v in space.resolve(name)]
    state = dict(state or {}, code=code)
    k = min(space.dim, MAX_SLIDERS)
    return [state] + code[:k]


@GPU
@friendly("Cannot play the sequence")
def play(state, sequence, frames_per_step, azimuth, elevation, progress=gr.Progress()):
    """Expression presets in order -> an mp4 of the avatar animating through them from one viewpoint."""
    from avat3r.errors import Avat3rError
    from avat3r.io.video import write_video
    from avat3r.pipeline import expression_sequence

    avatar, work = _need_avatar(state)
    pipe = get_pipeline()
    keys = list(sequence or []) if isinstance(sequence, (list, tuple)) else [sequence]
    if not keys:
        raise UserError("Pick at least one expression for the sequence (e.g. neutral, smile, surprise).")
    if len(keys) > limits.MAX_SEQUENCE_KEYS:
        raise UserError(f"A sequence of {len(keys)} expressions is too long; use at most {limits.MAX_SEQUENCE_KEYS}.")
    _check_session_disk(work)
    try:
        codes = expression_sequence(pipe.expression_space, keys, frames_per_step)
        frames = avatar.animation(codes, (azimuth, elevation), size=VIDEO_SIZE,
                                  progress=_progress_cb(progress, 0.0, 0.95))
    except Avat3rError as e:
        raise _user_error(e) from None
    progress(0.97, desc="encoding the video")
    return str(write_video(work / f"animation_{uuid.uuid4().hex[:6]}.mp4", frames, fps=12))


# ---- live animated viewer (issue 19): Spark in an iframe, expression basis fitted per avatar ---------------
VIEWER_DIR = ROOT / "demo" / "viewer"
LIVE_WORK = Path(tempfile.gettempdir()) / "avat3r_live"  # scene folders only (no uploads): served as static files
VIEWER_SAMPLES = int(os.environ.get("AVAT3R_VIEWER_SAMPLES", 6))  # random mixtures on top of one sample per slider end
LIVE_HEIGHT = 460


def viewer_installed() -> bool:
    """Spark and three are installed at set-up (``npm ci --prefix demo/viewer``), never fetched at run time."""
    nm = VIEWER_DIR / "node_modules"
    return (nm / "@sparkjsdev" / "spark" / "dist" / "spark.module.js").is_file() and (nm / "three" / "build" / "three.module.js").is_file()


def _static_url(path: Path) -> str:
    return "/gradio_api/file=" + str(Path(path).resolve())


def live_viewer_html(scene: Path | None = None) -> str:
    """The iframe showing demo/viewer/viewer.html on ``scene`` (scene.json), or a note saying what to do."""
    if not viewer_installed():
        return ("<p id='live-missing'>The live 3D viewer is not installed: run <code>npm ci --prefix demo/viewer</code> "
                "(see README) and restart the app.</p>")
    if scene is None:  # no iframe until there is a scene: Spark + three are ~5 MB of JavaScript that a same-origin
        # iframe parses on the page's own main thread, so loading them with the page slows every click on it
        return (f"<div id='live-placeholder' style='height:{LIVE_HEIGHT}px;display:flex;align-items:center;"
                "justify-content:center;border-radius:8px;background:#1b1b1f;color:#ccc'>No avatar yet: create one, "
                "then press “Open the live 3D viewer”.</div>")
    from urllib.parse import quote

    src = _static_url(VIEWER_DIR / "viewer.html") + "?scene=" + quote(_static_url(scene), safe="/=")
    return (f"<iframe id='live-frame' src='{src}' title='Avat3r live 3D viewer' style='width:100%;height:{LIVE_HEIGHT}px;"
            "border:0;border-radius:8px;background:#1b1b1f' allow='fullscreen'></iframe>")


def _live_dir() -> Path:
    LIVE_WORK.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in LIVE_WORK.iterdir():  # scenes older than 2 h go, like the sessions
        try:
            if now - old.stat().st_mtime > 7200:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    d = LIVE_WORK / uuid.uuid4().hex  # unguessable: the folder is served to whoever knows its name
    d.mkdir()
    return d


@GPU
def build_live_viewer(state, progress=gr.Progress()):
    """The current avatar -> live viewer iframe (expression basis fitted to network samples, preset clip)."""
    from avat3r.export.basis import fit_expression_basis
    from avat3r.export.viewer_scene import preset_clip, write_viewer_scene

    avatar, _ = _need_avatar(state)
    if not viewer_installed():
        raise UserError("The live 3D viewer is not installed on this server (npm ci --prefix demo/viewer).")
    space = avatar.expression_space
    basis = fit_expression_basis(avatar, n_random=VIEWER_SAMPLES, progress=_progress_cb(progress, 0.0, 0.95))
    clips = {"presets": preset_clip(space)}
    if state.get("drive_clip"):
        clips = {"driven": state["drive_clip"], **clips}
    scene = write_viewer_scene(_live_dir(), basis, clips=clips, presets=space.presets)
    return dict(state, live_scene=str(scene)), live_viewer_html(scene)


# Sliders -> the iframe, in the browser (no server round trip): the viewer moves its splats from the basis.
SLIDERS_TO_VIEWER_JS = """(...values) => {
  const f = document.querySelector('#live-frame');
  if (f && f.contentWindow) f.contentWindow.postMessage({type: 'avat3r-code', code: values.map(Number)}, '*');
  return [];
}"""


def live_viewer_panel():
    """The live viewer's components (right column): iframe + button. -> (html, button)."""
    with gr.Group():
        html = gr.HTML(live_viewer_html(None), elem_id="live-viewer", label="Live 3D (animated)")
        btn = gr.Button("Open the live 3D viewer (animated; follows the sliders)", elem_id="live-btn")
    return html, btn


def wire_live_viewer(state, html, btn, sliders) -> None:
    btn.click(build_live_viewer, inputs=state, outputs=[state, html], api_name="live_viewer", concurrency_limit=1,
              concurrency_id="model", show_progress_on=[html])
    for s in sliders:
        s.change(None, inputs=sliders, outputs=None, js=SLIDERS_TO_VIEWER_JS, queue=False)


# ---- driving with a video (issue 19): landmarks -> pose + expression code per frame -> the avatar -------------
DRIVE_RENDER_FRAMES = int(os.environ.get("AVAT3R_DRIVE_RENDER_FRAMES", 150))  # CPU renders ~1 s a frame: bound it


@GPU
def drive_with_video(state, video, side_by_side, progress=gr.Progress()):
    """Driving video -> (state with the driven clip, mp4 of the driven avatar, report). The clip also plays in
    the live 3D viewer (open or re-open it)."""
    from avat3r.drive.render import write_driven_video
    from avat3r.drive.video import code_for_space, drive_video
    from avat3r.errors import Avat3rError

    avatar, work = _need_avatar(state)
    if not video:
        raise UserError("Upload a video of one face (or record one with the webcam), then press Drive.")
    path = Path(video if isinstance(video, (str, os.PathLike)) else getattr(video, "name", video))
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path.name} is not a video; use one of {', '.join(VIDEO_SUFFIXES)}.")
    try:
        drv = drive_video(path, max_frames=DRIVE_RENDER_FRAMES, progress=_progress_cb(progress, 0.0, 0.4))
        codes = code_for_space(drv.codes, drv.names, avatar.expression_space)
        out = write_driven_video(work / f"driven_{uuid.uuid4().hex[:6]}.mp4", avatar, drv, codes,
                                 size=VIDEO_SIZE, side_by_side=bool(side_by_side), video=path,
                                 progress=_progress_cb(progress, 0.4, 1.0))
    except Avat3rError as e:
        raise UserError(str(e), title="Cannot drive the avatar") from None
    clip = {"fps": drv.fps, "codes": codes.round(4).tolist(), "poses": drv.poses.round(2).tolist()}
    lines = drv.report + [f"code extraction {drv.ms_per_frame:.0f} ms per frame; press “Open the live 3D viewer” "
                          "to play the driven clip in 3D"]
    return dict(state, drive_clip=clip), str(out), "\n".join(lines)


def drive_tab():
    """The "Drive with a video" tab's components -> (video input, side-by-side box, button, report)."""
    gr.Markdown("Drive the avatar with a video of **one** face (start with a relaxed, neutral face: the first frames "
                f"calibrate). Up to {DRIVE_RENDER_FRAMES} frames are used here; the CLI `avat3r drive` takes longer videos.")
    src = gr.Video(label="Driving video (upload, or record with the webcam)", sources=["upload", "webcam"],
                   elem_id="drive-video")
    sbs = gr.Checkbox(value=True, label="show the driving video beside the avatar")
    btn = gr.Button("Drive", variant="primary", elem_id="drive-btn")
    report = gr.Textbox(label="Driving", lines=3, interactive=False, elem_id="drive-report")
    return src, sbs, btn, report


def wire_drive(state, src, sbs, btn, report, video_out) -> None:
    btn.click(drive_with_video, inputs=[state, src, sbs], outputs=[state, video_out, report], api_name="drive",
              concurrency_limit=1, concurrency_id="model", show_progress_on=[video_out])


# ---- the UI ---------------------------------------------------------------------------------------------
def _slider_range(cfg: dict, i: int) -> tuple[float, float]:
    """Slider range of dim i: [0, 1] for activations (all presets >= 0), [-1, 1] for signed dims (gaze, or any
    negative preset value), [-1, 1] for models without presets (generic latent codes)."""
    vals = [v[i] for v in (cfg.get("expression_presets") or {}).values() if len(v) > i]
    names = cfg.get("expression_names") or []
    signed = i < len(names) and any(k in names[i] for k in ("gaze", "yaw", "pitch", "roll"))
    lo = -1.0 if (not vals or min(vals) < 0 or signed) else 0.0
    hi = max(1.0, max(vals, default=1.0))
    return lo, hi


def _source_widgets(name):
    """Show the widgets the picked source takes: the upload and examples, a seed, or a prompt."""
    from avat3r.sources import get_source

    takes = get_source(name).takes if name else "files"
    on_files = takes in ("files", "photo")
    return (gr.update(visible=on_files), gr.update(visible=on_files), gr.update(visible=takes == "seed"),
            gr.update(visible=takes == "text"))


INTRO = """# Avat3r: an animatable 3D head from a few photos
Pick an input: 1-8 photos of one head (4 from different sides work best), a video turning the head, a capture
folder (.zip), or a procedural head from a seed; press **Create**, then drag the 3D view to orbit.
In **Animate**, change the expression or play a sequence. Everything runs on this machine; photos are not kept."""


# ---- generated heads (GGHead -> Avat3r; docs/GGHEAD.md) ---------------------------------------------------
def gghead_unavailable() -> str | None:
    """Why the 'Generate a head' route cannot run here (no GGHead weights), or None."""
    from avat3r.sources import get_source

    return get_source("gghead").available()


def surprise_seed() -> int:
    """A random seed for 'Surprise me'."""
    import secrets

    from avat3r.limits import MAX_SEED

    return secrets.randbelow(MAX_SEED + 1)


@GPU
@friendly("Cannot generate the head")
def generate_head(seed, truncation, request: gr.Request = None, progress=gr.Progress()):
    """Seed + truncation -> (session state, GGHead head viewer .ply, Avat3r avatar viewer .ply, expression clip,
    report, avatar .ply download). The GGHead head and the animated Avat3r avatar are shown side by side. Streams:
    the head and the avatar in the 3D viewers first (seconds), then the rendered expression clip (the slow part)."""
    from avat3r.errors import Avat3rError
    from avat3r.generate.avatar import check_request, generated_capture, head_gaussians
    from avat3r.generate.hub import load_generator
    from avat3r.io.ply import save_ply
    from avat3r.io.video import write_video
    from avat3r.pipeline import expression_sequence, viewer_gaussians

    t0 = time.time()
    try:
        seed, truncation = check_request(seed, truncation)  # refused before anything loads
        _check_rate(request)
        why = gghead_unavailable()
        if why:
            raise UserError(why, title="No GGHead weights")
        progress(0.0, desc="loading the models")
        pipe = get_pipeline()
        G = load_generator(device=pipe.device)
        progress(0.1, desc=f"GGHead: sampling head {seed}")
        cap, out = generated_capture(G, seed, truncation, pipe.image_size)
        work = _session_dir(request)
        head_ply = work / f"gghead_{uuid.uuid4().hex[:6]}.ply"
        save_ply(head_ply, viewer_gaussians(head_gaussians(G, out)), orientation="y_up")
        progress(0.25, desc="Avat3r: reconstructing from the four views")
        avatar = pipe.reconstruct(cap, progress=_progress_cb(progress, 0.25, 0.6))
    except Avat3rError as e:
        raise _user_error(e) from None
    neutral = avatar.expression_code(None)
    viewer = _viewer_ply(avatar, neutral, work, "neutral")
    ply = str(avatar.save_ply(work / "avatar.ply"))
    state = {"avatar": avatar, "work": str(work), "code": neutral.tolist()}
    lines = avatar.report + [f"GGHead head {seed} (truncation {truncation:g}) -> avatar in the 3D viewer in "
                             f"{time.time() - t0:.1f} s; rendering the expression clip ..."]
    yield state, str(head_ply), viewer, None, "\n".join(lines), ply
    space = pipe.expression_space
    keys = [k for k in ("neutral", "smile", "surprise") if k in space.presets] or list(space.presets)[:1]
    codes = expression_sequence(space, keys, 6)
    frames = avatar.animation(codes, (20.0, 5.0), size=VIDEO_SIZE, progress=_progress_cb(progress, 0.65, 0.95))
    clip = str(write_video(work / f"generated_{uuid.uuid4().hex[:6]}.mp4", frames, fps=12))
    lines[-1] = lines[-1].replace("; rendering the expression clip ...", f"; animated clip at {time.time() - t0:.1f} s")
    yield state, str(head_ply), viewer, clip, "\n".join(lines), ply


def _gghead_tab(state, viewer, ply_file) -> None:
    """The 'Generate a head' tab: seed, truncation, Surprise me; GGHead head and animated avatar side by side."""
    from avat3r.limits import MAX_SEED, TRUNCATION_RANGE

    why = gghead_unavailable()
    if why:
        gr.Markdown(f"> {why}", elem_id="gghead-missing")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id="gghead-seed")
        trunc = gr.Slider(TRUNCATION_RANGE[0], TRUNCATION_RANGE[1], value=0.7, step=0.05,
                          label="truncation (0 = average head, 1 = untruncated)", elem_id="gghead-trunc")
    with gr.Row():
        gen_btn = gr.Button("Generate", variant="primary", elem_id="gghead-btn")
        surprise = gr.Button("Surprise me", elem_id="gghead-surprise")
    with gr.Row():
        head_view = gr.Model3D(label="GGHead head (static)", height=300, elem_id="gghead-head")
        clip = gr.Video(label="Avat3r avatar, animated", autoplay=True, loop=True, interactive=False, height=300,
                        elem_id="gghead-clip")
    gen_report = gr.Textbox(label="What was done", lines=4, interactive=False, elem_id="gghead-report")
    outs = [state, head_view, viewer, clip, gen_report, ply_file]
    gen_btn.click(generate_head, inputs=[seed, trunc], outputs=outs, api_name="generate_head", concurrency_limit=1,
                  concurrency_id="model")
    surprise.click(surprise_seed, outputs=seed, api_name="surprise_seed", queue=False).then(
        generate_head, inputs=[seed, trunc], outputs=outs, api_name=False, concurrency_limit=1, concurrency_id="model")


# ---- one photo -> GAN inversion -> four views -> Avat3r (docs/LIFT.md) ------------------------------------
def _lift_photo_path(photo) -> Path:
    """The uploaded photo (one file) -> its path, checked like every upload (suffix, pixel count)."""
    if photo is None:
        raise UserError("Upload one photo of a head first.", title="No photo")
    p = Path(photo if isinstance(photo, (str, os.PathLike)) else getattr(photo, "name", photo))
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{p.name}: not a photo; upload one of {', '.join(IMAGE_SUFFIXES)}.", title="Not a photo")
    _check_photo(p)
    return p


@GPU
@friendly("Cannot lift the photo")
def lift_views(photo, mode, request: gr.Request = None, progress=gr.Progress()):
    """One photo -> (lift state, the strip photo crop | fit | four lifted views, report). Native mode: the crop only."""
    import numpy as np

    from avat3r.lift.route import check_mode, lift_photo, load_lift_models, photo_view
    from avat3r.pipeline import _resize_square

    t0 = time.time()
    mode = check_mode(mode or None)
    path = _lift_photo_path(photo)
    _check_rate(request)
    progress(0.0, desc="loading the model")
    pipe = get_pipeline()
    if mode == "native":
        res = photo_view(str(path), pipe.image_size)
        cap, report, strip = res.capture, list(res.report), res.capture.images[0]
    else:
        why = get_source_available("lift")
        if why:
            raise UserError(why + " (or choose 'native': the photo alone)", title="No GGHead weights")
        G, enc = load_lift_models(device=str(pipe.device))
        cap, lr, view, report = lift_photo(str(path), size=pipe.image_size, generator=G, encoder=enc,
                                           with_photo=mode == "lift+photo", progress=_progress_cb(progress, 0.0, 1.0))
        h = pipe.image_size
        strip = np.concatenate([view.images[0], _resize_square(lr.render_after, h), *cap.images[:4]], 1)
    report.append(f"{'the photo alone' if mode == 'native' else f'{len(cap)} views'} ready in {time.time() - t0:.1f} s")
    return {"capture": cap, "mode": mode}, (np.clip(strip, 0, 1) * 255).astype(np.uint8), "\n".join(report)


@GPU
@friendly("Cannot build the avatar")
def lift_animate(lift_state, request: gr.Request = None, progress=gr.Progress()):
    """The lifted views (or the photo) -> Avat3r -> (session state, viewer .ply, expression clip, report, .ply)."""
    from avat3r.io.video import write_video
    from avat3r.pipeline import expression_sequence

    if not lift_state or "capture" not in lift_state:
        raise UserError("Lift a photo first.", title="No photo")
    t0 = time.time()
    pipe = get_pipeline()
    work = _session_dir(request)
    cap = lift_state["capture"]
    avatar = pipe.reconstruct(cap, progress=_progress_cb(progress, 0.0, 0.5))
    neutral = avatar.expression_code(None)
    viewer = _viewer_ply(avatar, neutral, work, "neutral")
    ply = str(avatar.save_ply(work / "avatar.ply"))
    space = pipe.expression_space
    keys = [k for k in ("neutral", "smile", "surprise") if k in space.presets] or list(space.presets)[:1]
    frames = avatar.animation(expression_sequence(space, keys, 6), (20.0, 5.0), size=VIDEO_SIZE,
                              progress=_progress_cb(progress, 0.55, 0.95))
    clip = str(write_video(work / f"lifted_{uuid.uuid4().hex[:6]}.mp4", frames, fps=12))
    report = "\n".join(avatar.report + [f"animated avatar from {len(cap)} view{'s' if len(cap) > 1 else ''} "
                                        f"({lift_state['mode']} mode) in {time.time() - t0:.1f} s"])
    state = {"avatar": avatar, "work": str(work), "code": neutral.tolist()}
    return state, viewer, clip, report, ply


def get_source_available(name: str) -> str | None:
    from avat3r.sources import get_source

    return get_source(name).available()


def _lift_tab(state, viewer, ply_file) -> None:
    """The 'One photo' tab: a photo and a mode -> the lifted views, then the animated avatar."""
    from avat3r.lift.route import default_mode

    why = get_source_available("lift")
    if why:
        gr.Markdown(f"> Lift mode is unavailable here: {why}. Native mode (the photo alone) works.", elem_id="lift-missing")
    photo = gr.File(label="One photo of a head", file_count="single", file_types=list(IMAGE_SUFFIXES),
                    elem_id="lift-photo")
    mode = gr.Radio(choices=[("Lift: GAN inversion -> 4 views (the paper's route)", "lift"),
                             ("Lift + photo: the 4 views and the photo", "lift+photo"),
                             ("Native: the photo alone (V = 1)", "native")],
                    value=default_mode() if not why else "native", label="Mode", elem_id="lift-mode")
    gr.Markdown("*Native* is the default: with the shipped weights it is as good as the lift on new views and better "
                "on real photos, in a fraction of the time (docs/LIFT.md, \"Which mode\"). *Lift* is the paper's route: "
                "the photo is inverted into a 3D GAN (our GGHead, or EG3D + GOAE when installed) and four rendered "
                "views are the input.", elem_id="lift-mode-note")
    lift_btn = gr.Button("Make the avatar", variant="primary", elem_id="lift-btn")
    views = gr.Image(label="Photo crop (lift modes: | the generator's fit | the four views Avat3r sees)", interactive=False,
                     elem_id="lift-views")
    clip = gr.Video(label="Avat3r avatar, animated", autoplay=True, loop=True, interactive=False, height=300,
                    elem_id="lift-clip")
    lift_report = gr.Textbox(label="What was done", lines=5, interactive=False, elem_id="lift-report")
    lift_state = gr.State({})
    lift_btn.click(lift_views, inputs=[photo, mode], outputs=[lift_state, views, lift_report], api_name="lift_views",
                   concurrency_limit=1, concurrency_id="model").success(
        lift_animate, inputs=lift_state, outputs=[state, viewer, clip, lift_report, ply_file], api_name="lift_animate",
        concurrency_limit=1, concurrency_id="model")


# ---- heads from a text prompt (text -> portrait -> Avat3r; docs/TEXT2IMG.md) ------------------------------------
def prompt_unavailable() -> str | None:
    """Why the 'From a text prompt' route cannot run here (no text-to-image model), or None."""
    from avat3r.sources import get_source

    return get_source("prompt").available()


@GPU
@friendly("Cannot make a head from this prompt")
def generate_from_text(prompt, seed, steps, request: gr.Request = None, progress=gr.Progress()):
    """Prompt + seed + steps -> (session state, portrait, Avat3r avatar viewer .ply, expression clip, report,
    avatar .ply download)."""
    from avat3r.errors import Avat3rError
    from avat3r.pipeline import expression_sequence
    from avat3r.text2img.pipeline import check_sampling
    from avat3r.text2img.route import check_prompt, portrait_capture, text_portrait

    t0 = time.time()
    try:
        check_prompt(prompt if isinstance(prompt, str) else "")
        steps, _, seed = check_sampling(steps, 0.0, seed)  # refused before anything loads
        _check_rate(request)
        why = prompt_unavailable()
        if why:
            raise UserError(why, title="No text-to-image model")
        progress(0.0, desc="loading the models")
        pipe = get_pipeline()
        portrait = text_portrait(prompt, seed=seed, steps=steps, progress=_progress_cb(progress, 0.05, 0.3))
        cap, report = portrait_capture(portrait, pipe.image_size)
        progress(0.35, desc="Avat3r: reconstructing from the portrait")
        avatar = pipe.reconstruct(cap, source="capture", progress=_progress_cb(progress, 0.35, 0.6))
    except Avat3rError as e:
        raise _user_error(e) from None
    work = _session_dir(request)
    neutral = avatar.expression_code(None)
    viewer = _viewer_ply(avatar, neutral, work, "neutral")
    ply = str(avatar.save_ply(work / "avatar.ply"))
    space = pipe.expression_space
    keys = [k for k in ("neutral", "smile", "surprise") if k in space.presets] or list(space.presets)[:1]
    frames = avatar.animation(expression_sequence(space, keys, 6), (20.0, 5.0), size=VIDEO_SIZE,
                              progress=_progress_cb(progress, 0.65, 0.95))
    clip = str(write_video_file(work / f"prompt_{uuid.uuid4().hex[:6]}.mp4", frames))
    lines = report + list(avatar.report) + [f"prompt -> animated avatar in {time.time() - t0:.1f} s"]
    state = {"avatar": avatar, "work": str(work), "code": neutral.tolist()}
    return state, (portrait.image * 255 + 0.5).clip(0, 255).astype("uint8"), viewer, clip, "\n".join(lines), ply


def write_video_file(path: Path, frames) -> Path:
    from avat3r.io.video import write_video

    return write_video(path, frames, fps=12)


def _prompt_tab(state, viewer, ply_file) -> None:
    """The 'From a text prompt' tab: prompt, seed, steps; the portrait, then the animated avatar."""
    from avat3r.limits import MAX_DIFFUSION_STEPS, MAX_PROMPT_CHARS, MAX_SEED

    why = prompt_unavailable()
    if why:
        gr.Markdown(f"> {why}", elem_id="prompt-missing")
    gr.Markdown("Our small model (trained here on SynthHeads) knows hair (bald, short, long, voluminous), hair colour, "
                "skin (light, medium, dark), beard, stubble, moustache, glasses, sunglasses, hat, headband, "
                "expressions (smiling, laughing, open mouth, surprised, eyes closed, angry, tongue out) and the view "
                "(frontal, facing left/right). The portrait is lifted with one view (V = 1): the single-image "
                "lifting route (GAN inversion -> 4 views) replaces it once installed.")
    text = gr.Textbox(value="long blond hair, glasses, smiling", label="Prompt", max_length=MAX_PROMPT_CHARS,
                      elem_id="t2i-prompt")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed", elem_id="t2i-seed")
        steps = gr.Slider(1, min(50, MAX_DIFFUSION_STEPS), value=20, step=1, label="denoising steps", elem_id="t2i-steps")
    btn = gr.Button("Generate", variant="primary", elem_id="t2i-btn")
    with gr.Row():
        portrait = gr.Image(label="Portrait (64 x 64, our diffusion model)", interactive=False, height=300,
                            elem_id="t2i-portrait")
        clip = gr.Video(label="Avat3r avatar, animated", autoplay=True, loop=True, interactive=False, height=300,
                        elem_id="t2i-clip")
    rep = gr.Textbox(label="What was done", lines=4, interactive=False, elem_id="t2i-report")
    btn.click(generate_from_text, inputs=[text, seed, steps], outputs=[state, portrait, viewer, clip, rep, ply_file],
              api_name="generate_from_text", concurrency_limit=1, concurrency_id="model")


def build_demo() -> gr.Blocks:
    cfg = read_config()
    examples = list_examples()
    with gr.Blocks(title="Avat3r", delete_cache=(1800, 7200)) as demo:
        gr.Markdown(INTRO)
        if cfg is None:
            gr.Markdown(
                f"> **No model weights found** in `{weights_dir()}`. Put a checkpoint's `config.json` and "
                "`model.safetensors` there, or start the app with `AVAT3R_WEIGHTS=<checkpoint folder>`. "
                "Creating an avatar will fail until then.",
                elem_id="no-weights",
            )
        state = gr.State({})
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Tabs():
                    with gr.Tab("1 · Create", id="create"):
                        sources = input_sources()
                        file_sources = [x.name for x in sources if x.takes in ("files", "photo")]
                        source = gr.Radio(choices=[(x.label, x.name) for x in sources],
                                          value=file_sources[0] if file_sources else None, label="Input",
                                          elem_id="source")
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", visible=False, elem_id="seed")
                        prompt = gr.Textbox(value="", label="Prompt", visible=False, elem_id="prompt")
                        files = gr.File(label=f"Photos (1-{MAX_IMAGES}), a video, or a capture-folder .zip", file_count="multiple",
                                        file_types=sorted({suf for x in sources if x.takes in ("files", "photo")
                                                           for suf in x.suffixes}),
                                        elem_id="upload")
                        example = gr.Dropdown(choices=list(examples), value=None, label="…or pick an example",
                                              elem_id="example")
                        create_btn = gr.Button("Create avatar", variant="primary", elem_id="create-btn")
                        preview = gr.Image(label="Front end: crops, masks, landmarks, cameras", interactive=False,
                                           elem_id="preview")
                        report = gr.Textbox(label="What was done", lines=5, interactive=False, elem_id="report")
                    with gr.Tab("2 · Animate", id="animate"):
                        space = None
                        if cfg is not None:
                            from avat3r.model.config import ModelConfig

                            keys = {f for f in ModelConfig.__dataclass_fields__}
                            space = ModelConfig.from_dict({k: v for k, v in cfg.items() if k in keys}).expression_space
                        sliders = []
                        if space is None:
                            gr.Markdown("Expressions appear here once model weights are installed.")
                        else:
                            gr.Markdown("**Presets** (set the sliders and update the 3D view)")
                            with gr.Row():
                                preset_btns = [gr.Button(name, size="sm") for name in space.presets]
                            with gr.Accordion(f"Expression sliders ({min(space.dim, MAX_SLIDERS)} of {space.dim} dims)", open=True):
                                names = space.names[:MAX_SLIDERS]
                                for r in range(0, len(names), 2):  # two sliders a row keeps the tab short
                                    with gr.Row():
                                        for i in range(r, min(r + 2, len(names))):
                                            lo, hi = _slider_range(cfg, i)
                                            sliders.append(gr.Slider(lo, hi, value=0.0, step=0.05, label=names[i],
                                                                     min_width=120))
                            show_btn = gr.Button("Show this expression in 3D", variant="primary")
                            gr.Markdown("**Play** a sequence of expressions as a video")
                            sequence = gr.Dropdown(choices=list(space.presets), multiselect=True,
                                                   value=[k for k in ("neutral", "smile", "surprise") if k in space.presets]
                                                   or list(space.presets)[:1],
                                                   label="Sequence (in order; loops back to the first)")
                            with gr.Row():
                                fps_step = gr.Slider(2, 24, value=6, step=1, label="frames per step")
                                azimuth = gr.Slider(-90, 90, value=20, step=5, label="view azimuth (°)")
                                elevation = gr.Slider(-30, 45, value=5, step=5, label="view elevation (°)")
                            play_btn = gr.Button("Play", variant="primary", elem_id="play-btn")
                    gen_tab = gr.Tab("3 · Generate", id="generate")
                    with gr.Tab("4 · Drive", id="drive"):
                        drive_src, drive_sbs, drive_btn, drive_report = drive_tab()
                    lift_tab = gr.Tab("5 · One photo", id="lift")
                    text_tab = gr.Tab("6 · Text", id="text")
            with gr.Column(scale=6):
                live_html, live_btn = live_viewer_panel()
                viewer = gr.Model3D(label="3D avatar (drag to orbit, scroll to zoom)", height=460, elem_id="viewer")
                video = gr.Video(label="Video (turntable, or the animation you play)", autoplay=True, loop=True,
                                 interactive=False, height=340, elem_id="video")
                ply_file = gr.File(label="Download the avatar (.ply, 3D Gaussian splats, metres, y-up)",
                                   interactive=False, elem_id="ply")

        with gen_tab:
            _gghead_tab(state, viewer, ply_file)
        with lift_tab:
            _lift_tab(state, viewer, ply_file)
        with text_tab:
            _prompt_tab(state, viewer, ply_file)
        example.change(example_files, inputs=example, outputs=files, api_name="example_files", queue=False)
        source.change(_source_widgets, inputs=source, outputs=[files, example, seed, prompt], queue=False, api_name=False)
        create_btn.click(create, inputs=[files, example, source, seed, prompt], outputs=[state, preview, report, viewer, ply_file], api_name="create",
                         concurrency_limit=1, concurrency_id="model", show_progress_on=[preview, viewer]).success(
            turntable, inputs=state, outputs=video, api_name="turntable", concurrency_limit=1, concurrency_id="model", show_progress_on=[video])
        wire_live_viewer(state, live_html, live_btn, sliders)
        wire_drive(state, drive_src, drive_sbs, drive_btn, drive_report, video)
        if space is not None:
            show_btn.click(show_expression, inputs=[state] + sliders, outputs=[state, viewer, ply_file],
                           api_name="show_expression", concurrency_limit=1, concurrency_id="model")
            for btn, name in zip(preset_btns, space.presets):
                btn.click(apply_preset, inputs=[state, gr.State(name)], outputs=[state] + sliders, queue=False,
                          api_name=False).then(
                    show_expression, inputs=[state] + sliders, outputs=[state, viewer, ply_file], api_name=False,
                    concurrency_limit=1, concurrency_id="model")
            play_btn.click(play, inputs=[state, sequence, fps_step, azimuth, elevation], outputs=video,
                           api_name="play", concurrency_limit=1, concurrency_id="model")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Avat3r Gradio demo")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    ap.add_argument("--share", action="store_true")
    args = ap.parse_args()
    gr.set_static_paths([str(VIEWER_DIR), str(LIVE_WORK)])  # the live viewer's page and scenes (no uploads)
    LIVE_WORK.mkdir(parents=True, exist_ok=True)
    demo = build_demo()
    from starlette.middleware import Middleware

    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=f"{MAX_FILE_MB}mb",
                show_error=False, allowed_paths=[str(EXAMPLES)], footer_links=["api", "gradio"],
                app_kwargs={"middleware": [Middleware(UploadLimiter)]})


if __name__ == "__main__":
    main()
