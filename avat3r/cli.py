"""The ``avat3r`` command line: reconstruct, animate, render, export, synth, train, eval.

Every command that runs the network goes through ``avat3r.pipeline`` (the same object the app and notebooks
use). Errors the user can fix come out as one line on stderr and exit code 2; ``--debug`` shows the traceback.
Heavy modules are imported inside the commands so ``avat3r --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class _Bar:
    """``progress(fraction, message)`` callback drawing a tqdm bar on stderr (hidden when not a terminal)."""

    def __init__(self, desc: str, quiet: bool = False):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=100, desc=desc, disable=True if quiet else None, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
        self.base = desc

    def __call__(self, frac: float, msg: str) -> None:
        self.bar.set_description_str(f"{self.base}: {msg}", refresh=False)
        self.bar.n = int(round(100 * max(0.0, min(1.0, frac))))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _say(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg)


# ---- shared argument helpers --------------------------------------------------------------------------
def _sources_help() -> str:
    """The input sources (``avat3r.sources``), one line each, for --help."""
    from .sources import list_sources

    lines = []
    for s in list_sources():
        how = {"seed": "--seed S", "text": '--prompt "..."', "photo": "PHOTO"}.get(s.takes, "FILES")
        why = s.available()
        lines.append(f"  {s.name:<9} {how:<12} {s.help}" + (f" [not available here: {why}]" if why else ""))
    return "input sources (--source NAME; picked from the inputs when omitted):\n" + "\n".join(lines)


def _add_input_args(p: argparse.ArgumentParser, what: str = "1-8 photos, a video, a capture folder or its .zip") -> None:
    from .sources import list_sources

    p.add_argument("inputs", nargs="*", help=f"{what} (see the input sources below)")
    p.add_argument("--source", default=None, choices=[s.name for s in list_sources()],
                   help="input source (default: picked from the inputs)")
    p.add_argument("--seed", type=int, default=None, help="seed, for sources that take one (e.g. --source synth)")
    p.add_argument("--prompt", default=None, help="text, for sources that take a prompt")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    _add_input_args(p)
    p.add_argument("--weights", default=None, help="checkpoint directory or Hub repo id (default: $AVAT3R_WEIGHTS or the shipped weights/)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--cameras", default=None, help="cameras.json for the photos (views in the order of the photos); estimated when omitted")


def _add_view_args(p: argparse.ArgumentParser, size: int = 256) -> None:
    p.add_argument("--size", type=int, default=size, help=f"output image size in pixels (default {size})")
    p.add_argument("--azimuth", type=float, default=0.0, help="degrees, 0 = frontal, positive = subject's left (default 0)")
    p.add_argument("--elevation", type=float, default=5.0, help="degrees above the eyes (default 5)")


def _inputs(args):
    """Positional inputs (or --seed / --prompt for sources that take them) -> what Pipeline.reconstruct takes."""
    from .errors import InputError
    from .io.paths import VIDEO_SUFFIXES
    from .limits import MAX_INPUT_FILES

    src = None
    if getattr(args, "source", None):
        from .sources import get_source

        src = get_source(args.source)
        if src.takes == "seed":
            if args.seed is None or args.inputs:
                raise InputError(f"--source {src.name} takes --seed S (an integer) and no input files")
            return args.seed
        if src.takes == "text":
            if not args.prompt or args.inputs:
                raise InputError(f'--source {src.name} takes --prompt "..." and no input files')
            return args.prompt
    if not args.inputs:
        raise InputError("no inputs given: give 1-8 photos, a video, a capture folder or its .zip, or a source that takes "
                         "no files (e.g. --source synth --seed 3); see avat3r reconstruct --help")
    items = [Path(x) for x in args.inputs]
    for p in items:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    if len(items) > MAX_INPUT_FILES:
        raise InputError(f"{len(items)} inputs given; at most {MAX_INPUT_FILES} photos are considered (8 are used): "
                         "pick the best ones")
    if len(items) == 1 and items[0].is_dir():
        return items[0]
    videos = [p for p in items if p.suffix.lower() in VIDEO_SUFFIXES]
    if videos:  # a video is read as a video (frames chosen from it), never as a photo
        if len(items) > 1:
            raise InputError(f"{videos[0]}: give one video on its own, or photos; not both")
        return videos[0]
    return items


def _cameras(args, n: int):
    if not getattr(args, "cameras", None):
        return None
    from .cameras import read_cameras_json

    names, cams = read_cameras_json(args.cameras)
    if len(cams) != n:
        from .errors import InputError

        raise InputError(f"{args.cameras}: has {len(cams)} cameras but {n} photos were given; give one camera per photo, in order")
    return cams


def _device(value):
    """--device -> a torch device that exists here, or InputError saying which ones do."""
    if value is None:
        return None
    import torch

    from .errors import InputError

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {value!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InputError(f"--device {value}: this machine has no CUDA GPU (or PyTorch was built without CUDA); "
                             "use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise InputError(f"--device {value}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
    elif dev.type not in ("cpu", "mps"):
        raise InputError(f"--device {value!r} is not supported; use cpu or cuda")
    return dev


def _load(args):
    from .pipeline import load_pipeline

    if getattr(args, "inputs", None) or getattr(args, "source", None):
        _inputs(args)  # a missing input file is reported before the model loads
    return load_pipeline(args.weights, device=_device(args.device))


def _reconstruct(args, pipe):
    inputs = _inputs(args)
    cams = _cameras(args, len(inputs)) if isinstance(inputs, list) else None
    with _Bar("reconstruct", args.quiet) as bar:
        avatar = pipe.reconstruct(inputs, cameras=cams, source=getattr(args, "source", None), progress=bar)
    for line in avatar.report:
        _say(args, f"  {line}")
    return avatar


def _expression(pipe, value):
    """--expression: a preset name, comma-separated numbers, or a .json/.npy file with one code."""
    if value is None:
        return None
    import numpy as np

    from .errors import InputError

    p = Path(value)
    space = pipe.expression_space
    if p.suffix.lower() in (".json", ".npy"):
        z = _read_numbers(p, "--expression")
        return np.asarray(space.resolve(np.asarray(z, np.float32).reshape(-1)), np.float32)
    if "," in value or value.replace(".", "", 1).lstrip("-").isdigit() or value.lower() in ("nan", "inf", "-inf"):
        try:
            z = [float(v) for v in value.split(",")]
        except ValueError:
            raise InputError(f"--expression {value!r}: not a list of numbers") from None
        return np.asarray(space.resolve(z), np.float32)
    if value not in space.presets:
        raise InputError(f"unknown expression preset {value!r}; this model knows: {', '.join(sorted(space.presets))}")
    return value


def _read_numbers(p: Path, what: str):
    """A .json (numbers or preset names) or .npy (numbers; never pickles) file -> its content, or InputError."""
    import numpy as np

    from .errors import InputError
    from .limits import MAX_CODES_FILE_BYTES

    if not p.is_file():
        raise InputError(f"{p}: {what} file not found")
    if p.stat().st_size > MAX_CODES_FILE_BYTES:
        raise InputError(f"{p}: {p.stat().st_size / 2**20:.0f} MB is too large for {what} (limit "
                         f"{MAX_CODES_FILE_BYTES // 2**20} MB)")
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(f"{p}: not a numeric .npy array ({str(e)[:100]}); save codes with numpy.save") from None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e}); give a list of numbers (one code) or of codes") from None


def _sequence(pipe, args):
    """--expressions: comma-separated presets, or a .json/.npy file with codes [T, C] (or preset names)."""
    import numpy as np

    from .errors import InputError
    from .pipeline import check_codes, expression_sequence

    space = pipe.expression_space
    p = Path(args.expressions)
    if p.suffix.lower() in (".json", ".npy"):
        data = _read_numbers(p, "expression sequence")
        if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
            return expression_sequence(space, data, args.frames_per_step, loop=not args.no_loop)
        try:
            codes = np.asarray(data, np.float32)
        except (TypeError, ValueError):
            raise InputError(f"{p}: expected codes [T, {space.dim}] (one list of numbers per frame) or preset names") from None
        if codes.ndim != 2 or codes.shape[1] != space.dim:
            raise InputError(f"{p}: expected codes [T, {space.dim}] (one row per frame), got shape {list(codes.shape)}")
        try:
            return check_codes(codes, space.dim)
        except InputError as e:
            raise InputError(f"{p}: {e}") from None
    keys = [k.strip() for k in args.expressions.split(",") if k.strip()]
    return expression_sequence(space, keys, args.frames_per_step, loop=not args.no_loop)


# ---- commands -----------------------------------------------------------------------------------------
def _check_out_dir(out: Path) -> Path:
    from .errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder for -o/--out")
    return out


def cmd_reconstruct(args) -> int:
    from .io.images import save_image
    from .io.video import check_fps, write_video
    from .pipeline import check_frame_count, check_render_size

    # every option is checked before the model runs and before anything is written
    out = _check_out_dir(Path(args.out))
    if args.frames > 0:
        check_frame_count(args.frames, "--frames")
        check_render_size(args.size, "--size")
        check_fps(args.fps, "--fps")
    elif args.frames < 0:
        from .errors import InputError

        raise InputError(f"--frames {args.frames}: give 0 (no video) or a positive number of frames")
    pipe = _load(args)
    expr = _expression(pipe, args.expression)
    avatar = _reconstruct(args, pipe)
    frames = None
    if args.frames > 0:  # render before writing anything: a failure leaves no partial output
        with _Bar("turntable", args.quiet) as bar:
            frames = avatar.turntable(args.frames, args.size, expr, elevation=args.elevation, progress=bar)
    out.mkdir(parents=True, exist_ok=True)
    ply = avatar.save_ply(out / "head.ply", expr)
    _say(args, f"wrote {ply}  ({len(avatar.animate(expr))} Gaussians)")
    if avatar.preview is not None:
        save_image(out / "preview.png", avatar.preview)
        _say(args, f"wrote {out / 'preview.png'}")
    if frames is not None:
        video = write_video(out / f"turntable.{args.video_format}", frames, fps=args.fps)
        _say(args, f"wrote {video}")
    return 0


def cmd_animate(args) -> int:
    from .io.images import output_path
    from .io.video import check_fps, check_video_path, write_video
    from .pipeline import check_angles, check_render_size

    check_video_path(args.out)
    output_path(args.out, "video")
    check_fps(args.fps, "--fps")
    check_render_size(args.size, "--size")
    check_angles(args.azimuth, args.elevation)
    pipe = _load(args)
    codes = _sequence(pipe, args)
    avatar = _reconstruct(args, pipe)
    with _Bar("animate", args.quiet) as bar:
        frames = avatar.animation(codes, (args.azimuth, args.elevation), size=args.size, progress=bar)
    video = write_video(args.out, frames, fps=args.fps)
    _say(args, f"wrote {video}  ({len(frames)} frames)")
    if getattr(args, "ply_zip", None):
        from .export.sequence import write_ply_sequence

        with _Bar("ply sequence", args.quiet) as bar:
            z = write_ply_sequence(args.ply_zip, avatar, codes, fps=args.fps, progress=bar)
        _say(args, f"wrote {z}  ({len(codes)} .ply frames + manifest.json)")
    return 0


def cmd_drive(args) -> int:
    """avat3r drive AVATAR_SOURCE... DRIVING_VIDEO -o out.mp4: the avatar follows the video's face (issue 19)."""
    from .drive.render import write_driven_video
    from .drive.video import code_for_space, drive_video
    from .errors import InputError

    if not args.inputs or (len(args.inputs) < 2 and not getattr(args, "source", None)):
        raise InputError("give the avatar's inputs (photos, a capture folder, ...) and then the driving video, e.g. "
                         "avat3r drive me.jpg talking.mp4 -o driven.mp4")
    video = Path(args.inputs.pop())
    if not video.is_file():
        raise InputError(f"{video}: driving video not found (it is the last argument)")
    if Path(args.out).suffix.lower() != ".mp4":
        raise InputError(f"{args.out}: the output is an .mp4 video")
    if not 1 <= args.max_frames <= MAX_DRIVE_FRAMES():
        raise InputError(f"--max-frames must be 1..{MAX_DRIVE_FRAMES()}")
    pipe = _load(args)
    with _Bar("driving video", args.quiet) as bar:
        from .drive.regressor import load_regressor

        drv = drive_video(video, regressor=load_regressor(args.regressor), max_frames=args.max_frames, progress=bar)
    for line in drv.report:
        _say(args, line)
    _say(args, f"code extraction: {drv.ms_per_frame:.0f} ms per frame ({drv.cpu_ms_per_frame:.0f} ms CPU)")
    avatar = _reconstruct(args, pipe)
    codes = code_for_space(drv.codes, drv.names, pipe.expression_space)
    with _Bar("rendering", args.quiet) as bar:
        out = write_driven_video(args.out, avatar, drv, codes, size=args.size, side_by_side=args.side_by_side,
                                 video=video, with_pose=not args.no_pose, progress=bar)
    _say(args, f"wrote {out}  ({len(codes)} frames)")
    if args.codes:
        from .io.images import atomic_save

        payload = {"names": list(pipe.expression_space.names), "fps": drv.fps, "codes": codes.round(4).tolist(),
                   "poses": drv.poses.round(2).tolist(), "face_found": drv.found.tolist()}
        atomic_save(Path(args.codes), lambda tmp: Path(tmp).write_text(json.dumps(payload)))
        _say(args, f"wrote {args.codes}")
    if args.ply_zip:
        from .export.sequence import write_ply_sequence

        with _Bar("ply sequence", args.quiet) as bar:
            z = write_ply_sequence(args.ply_zip, avatar, codes, fps=drv.fps,
                                   poses=None if args.no_pose else drv.poses, progress=bar)
        _say(args, f"wrote {z}")
    return 0


def MAX_DRIVE_FRAMES() -> int:  # noqa: N802
    from .limits import MAX_VIDEO_DRIVE_FRAMES

    return MAX_VIDEO_DRIVE_FRAMES


def cmd_render(args) -> int:
    from .io.images import output_path, save_image
    from .pipeline import check_angles, check_render_size

    out = output_path(args.out, "image")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        from .errors import InputError

        raise InputError(f"{out}: unsupported image extension {out.suffix or '(none)'!r}; use .png, .jpg or .webp")
    check_render_size(args.size, "--size")
    check_angles(args.azimuth, args.elevation)
    if len(args.inputs) == 1 and args.inputs[0].lower().endswith(".ply") and not args.source:
        # render a .ply directly: no network, no weights
        from .io.ply import load_ply
        from .pipeline import orbit_camera
        from .render import render

        g = load_ply(args.inputs[0])
        img = render(g, orbit_camera(args.azimuth, args.elevation, args.size)).color[0]
        save_image(out, img.clamp(0, 1).numpy())
    else:
        pipe = _load(args)
        expr = _expression(pipe, args.expression)
        avatar = _reconstruct(args, pipe)
        img = avatar.render((args.azimuth, args.elevation), expr, size=args.size)
        save_image(out, img)
    _say(args, f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from .io.images import output_path

    output_path(args.out, ".ply")
    pipe = _load(args)
    expr = _expression(pipe, args.expression)
    avatar = _reconstruct(args, pipe)
    path = avatar.save_ply(args.out, expr, orientation=args.orientation)
    _say(args, f"wrote {path}  ({len(avatar.animate(expr))} Gaussians, {args.orientation})")
    return 0


def cmd_synth(args) -> int:
    from .data.capture_folder import synth

    paths = synth(args.out, subjects=args.subjects, seed=args.seed, views=args.views, size=args.size)
    if paths:
        for p in paths if isinstance(paths, (list, tuple)) else [paths]:
            _say(args, f"wrote {p}")
    else:
        _say(args, f"wrote {args.subjects} capture folder(s) under {args.out}")
    return 0


def _generate_avatar(seed: int, truncation: float, out_dir, *, generator=None, pipe=None, size: int | None = None,
                    frames: int = 24, expressions=("neutral", "smile", "surprise"), frames_per_step: int = 8,
                    video_size: int = 256, fps: float = 24.0, progress=None) -> dict[str, Path]:
    """Everything ``avat3r generate`` writes into out_dir: gghead.ply, capture/ (the four views), avatar.ply,
    turntable.mp4 and expressions.mp4. Returns the paths by name."""
    from .data.capture_folder import write_capture_folder
    from .export.clips import write_avatar_files
    from .generate.avatar import check_request, generated_capture, head_gaussians
    from .generate.hub import load_generator
    from .io.ply import save_ply
    from .pipeline import load_pipeline

    tick = progress or (lambda f, m: None)
    seed, truncation = check_request(seed, truncation)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tick(0.0, "loading the generator")
    G = generator if generator is not None else load_generator()
    pipe = pipe if pipe is not None else load_pipeline()
    tick(0.05, f"sampling head {seed} (truncation {truncation:g})")
    cap, gout = generated_capture(G, seed, truncation, size or pipe.image_size)
    paths = {"gghead_ply": save_ply(out / "gghead.ply", head_gaussians(G, gout))}
    paths["capture"] = write_capture_folder(out / "capture", cap)
    tick(0.15, "Avat3r: reconstructing from the four views")
    avatar = pipe.reconstruct(cap)
    paths.update(write_avatar_files(avatar, out, frames=frames, video_size=video_size, fps=fps, expressions=expressions,
                                    frames_per_step=frames_per_step, tick=tick, span=(0.5, 1.0)))
    tick(1.0, "done")
    return paths


def cmd_generate_prompt(args) -> int:
    """A text prompt -> portrait.png -> the Avat3r avatar (.ply, turntable, expression clip); docs/TEXT2IMG.md."""
    from .pipeline import load_pipeline
    from .text2img.pipeline import check_sampling
    from .text2img.route import check_out_dir, check_prompt, generate_from_prompt, load_model

    check_out_dir(args.out)
    check_prompt(args.prompt)
    check_sampling(1 if args.steps is None else args.steps, 0.0 if args.guidance is None else args.guidance,
                   0 if args.seed is None else args.seed)
    kind, model = load_model(args.model, args.device)  # a missing model is reported before anything is written
    if kind == "ours":
        model.check_prompt(args.prompt)
    pipe = load_pipeline(args.weights, device=args.device)
    with _Bar("generate", args.quiet) as bar:
        paths = generate_from_prompt(args.prompt, args.out, seed=args.seed or 0, steps=args.steps, guidance=args.guidance,
                                     model=args.model, pipe=pipe, device=args.device, frames=args.frames,
                                     frames_per_step=args.frames_per_step, video_size=args.size, progress=bar)
    for line in paths["report"].read_text().splitlines()[1:]:
        _say(args, f"  {line}")
    for name, p in paths.items():
        _say(args, f"wrote {p}  ({name})")
    return 0


def cmd_generate(args) -> int:
    """A GGHead head (seed, truncation) -> its .ply, the four views as a capture folder, the Avat3r avatar."""
    if args.prompt is not None:
        return cmd_generate_prompt(args)
    if args.seed is None:
        from .errors import InputError

        raise InputError('avat3r generate needs --seed S (a GGHead head) or --prompt "..." (a head from text)')
    from .generate.avatar import check_request
    from .generate.hub import load_generator
    from .pipeline import load_pipeline

    seed, trunc = check_request(args.seed, args.truncation)  # bad requests are refused before anything loads
    G = load_generator(args.generator, device=args.device or "cpu")
    pipe = load_pipeline(args.weights, device=args.device)
    with _Bar("generate", args.quiet) as bar:
        paths = _generate_avatar(seed, trunc, args.out, generator=G, pipe=pipe, frames=args.frames,
                                frames_per_step=args.frames_per_step, video_size=args.size, progress=bar)
    for name, p in paths.items():
        _say(args, f"wrote {p}  ({name})")
    return 0


def _lift_avatar(photo, out_dir, *, pipe, mode=None, generator=None, encoder=None, config=None, with_photo=False,
                 frames: int = 24, expressions=("neutral", "smile", "surprise"), frames_per_step: int = 8,
                 video_size: int = 256, fps: float = 24.0, progress=None) -> dict[str, Path]:
    """Everything ``avat3r lift`` writes into out_dir: capture/ (the lifted views, or the photo's view in native
    mode), lift_views.png (photo | fit | views), avatar.ply, turntable.mp4, expressions.mp4, lift.json."""
    import numpy as np

    from .data.capture_folder import write_capture_folder
    from .export.clips import write_avatar_files
    from .io.images import save_image
    from .lift.route import photo_avatar

    tick = progress or (lambda f, m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    avatar, cap, lr, report = photo_avatar(photo, pipe, mode=mode, generator=generator, encoder=encoder, config=config,
                                           with_photo=with_photo, progress=lambda f, m: tick(0.6 * f, m))
    paths = {"capture": write_capture_folder(out / "capture", cap)}
    strip = np.concatenate(list(cap.images), 1)
    if lr is not None and lr.render_after is not None:
        from .pipeline import _resize_square

        h = strip.shape[0]
        strip = np.concatenate([_resize_square(lr.render_before, h), _resize_square(lr.render_after, h), strip], 1)
    save_image(out / "lift_views.png", strip)
    paths["views_png"] = out / "lift_views.png"
    paths.update(write_avatar_files(avatar, out, frames=frames, video_size=video_size, fps=fps, expressions=expressions,
                                    frames_per_step=frames_per_step, tick=tick, span=(0.65, 0.95)))
    from .lift.route import check_mode

    info = {"mode": check_mode(mode), "views": len(cap), "report": report,
            "curve": [] if lr is None else lr.curve, "seconds": {} if lr is None else lr.seconds}
    (out / "lift.json").write_text(json.dumps(info, indent=2) + "\n")
    paths["json"] = out / "lift.json"
    tick(1.0, "done")
    return paths


def cmd_lift(args) -> int:
    """One photo -> GAN inversion -> four views -> the animated Avat3r avatar (or the photo alone: --mode native)."""
    from .errors import InputError
    from .lift.config import InvertConfig
    from .lift.route import check_mode, load_lift_models
    from .pipeline import load_pipeline

    mode = check_mode(args.mode)
    if (args.steps is not None and not 0 <= args.steps <= 1000) or (args.pti_steps is not None and not 0 <= args.pti_steps <= 1000):
        raise InputError("--steps and --pti-steps must be in 0..1000")
    pipe = load_pipeline(args.weights, device=args.device)
    G = enc = None
    if mode != "native":  # lift and lift+photo: the generator (and encoder) the user named
        G, enc = load_lift_models(args.generator, args.encoder, device=str(pipe.device))
    cfg = InvertConfig.for_device(pipe.device)
    cfg.steps = cfg.steps if args.steps is None else args.steps
    cfg.pti_steps = cfg.pti_steps if args.pti_steps is None else args.pti_steps
    with _Bar("lift", args.quiet) as bar:
        paths = _lift_avatar(args.photo, args.out, pipe=pipe, mode=mode, generator=G, encoder=enc, config=cfg,
                             frames=args.frames, frames_per_step=args.frames_per_step,
                             video_size=args.size, progress=bar)
    for name, p in paths.items():
        _say(args, f"wrote {p}  ({name})")
    return 0


def cmd_train(args) -> int:
    from .train import train_main

    return int(train_main(list(args.rest)) or 0)


def cmd_eval(args) -> int:
    from .eval.__main__ import eval_main

    return int(eval_main(list(args.rest)) or 0)


# ---- parser -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avat3r",
        description="Avat3r: animatable 3D Gaussian head avatars from a few photos.",
        epilog="Examples:\n"
               "  avat3r synth --out captures --subjects 1 --views 4 --size 256\n"
               "  avat3r reconstruct captures/<subject> -o out/      # head.ply + turntable.mp4\n"
               "  avat3r reconstruct me1.jpg me2.jpg me3.jpg -o out/\n"
               "  avat3r reconstruct clip.mp4 -o out/               # frames with different head poses\n"
               "  avat3r reconstruct --source synth --seed 3 -o out/  # a procedural SynthHeads head\n"
               "  avat3r animate me*.jpg --expressions neutral,smile,surprise -o smile.mp4\n"
               "  avat3r render out/head.ply --azimuth 30 -o view.png\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp):
        # allow --debug/--quiet after the subcommand too
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sp.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    r = sub.add_parser("reconstruct", help="photos, a video, a capture or any input source -> head.ply + turntable video",
                       epilog=_sources_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(r)
    r.add_argument("-o", "--out", default="avat3r_out", help="output folder (default ./avat3r_out)")
    r.add_argument("--expression", default=None, help="preset name, comma-separated code, or .json/.npy (default neutral)")
    r.add_argument("--frames", type=int, default=48, help="turntable frames; 0 = no video (default 48)")
    r.add_argument("--size", type=int, default=256, help="turntable size in pixels (default 256)")
    r.add_argument("--elevation", type=float, default=5.0, help="turntable elevation in degrees (default 5)")
    r.add_argument("--fps", type=float, default=24.0)
    r.add_argument("--video-format", choices=("mp4", "gif"), default="mp4")
    common(r)
    r.set_defaults(func=cmd_reconstruct)

    a = sub.add_parser("animate", help="photos or a capture folder + an expression sequence -> video",
                       epilog=_sources_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(a)
    a.add_argument("-o", "--out", default="animation.mp4", help="output video (.mp4 or .gif)")
    a.add_argument("--expressions", default="neutral,smile,surprise",
                   help="comma-separated presets, or a .json/.npy with codes [T, C] (default neutral,smile,surprise)")
    a.add_argument("--frames-per-step", type=int, default=12, help="frames between two presets (default 12)")
    a.add_argument("--no-loop", action="store_true", help="do not return to the first expression at the end")
    a.add_argument("--fps", type=float, default=24.0)
    a.add_argument("--ply-zip", default=None, help="also write one .ply per frame into this .zip (an animated sequence "
                   "for external splat viewers, docs/VIEWER.md)")
    _add_view_args(a)
    common(a)
    a.set_defaults(func=cmd_animate)

    dr = sub.add_parser("drive", help="an avatar (photos, capture, source) driven by a person's video -> mp4",
                        description="avat3r drive AVATAR_INPUTS... DRIVING_VIDEO -o driven.mp4: the last argument is the "
                                    "driving video (one face; start it with a relaxed, neutral face for calibration).",
                        epilog=_sources_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(dr)
    dr.add_argument("-o", "--out", default="driven.mp4", help="output video (.mp4)")
    dr.add_argument("--side-by-side", action="store_true", help="the driving video (with its landmarks) on the left")
    dr.add_argument("--size", type=int, default=256, help="avatar render size in pixels (default 256)")
    dr.add_argument("--max-frames", type=int, default=MAX_DRIVE_FRAMES(), help="use at most this many frames")
    dr.add_argument("--no-pose", action="store_true", help="expressions only; keep the avatar's head still")
    dr.add_argument("--codes", default=None, help="also write the codes and poses per frame to this .json")
    dr.add_argument("--regressor", default=None, help="driving regressor folder (default: the shipped weights/drive)")
    dr.add_argument("--ply-zip", default=None, help="also write one .ply per frame into this .zip (see docs/VIEWER.md)")
    common(dr)
    dr.set_defaults(func=cmd_drive)

    v = sub.add_parser("render", help="render one view of an avatar (from photos/capture) or of a .ply",
                       epilog=_sources_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_input_args(v, "a .ply file, or 1-8 photos, a video, a capture folder or its .zip")
    v.add_argument("--weights", default=None)
    v.add_argument("--device", default=None)
    v.add_argument("--cameras", default=None)
    v.add_argument("-o", "--out", default="render.png", help="output image (.png/.jpg)")
    v.add_argument("--expression", default=None)
    _add_view_args(v, 512)
    common(v)
    v.set_defaults(func=cmd_render)

    e = sub.add_parser("export", help="photos or a capture folder -> a standard 3DGS .ply",
                       epilog=_sources_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(e)
    e.add_argument("-o", "--out", default="head.ply")
    e.add_argument("--expression", default=None)
    e.add_argument("--orientation", choices=("y_up", "y_down"), default="y_up",
                   help="y_up (our frame, Gradio/three.js) or y_down (COLMAP/3DGS convention); default y_up")
    common(e)
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("synth", help="write SynthHeads capture folders (procedural heads with cameras and expressions)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--subjects", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--views", type=int, default=4)
    s.add_argument("--size", type=int, default=256)
    common(s)
    s.set_defaults(func=cmd_synth)

    g = sub.add_parser("generate", help="a GGHead head (--seed) or a text prompt (--prompt) -> the animated Avat3r avatar")
    g.add_argument("--seed", type=int, default=None, help="which head (0 .. 2^31-1); with --prompt: the portrait's seed (default 0)")
    g.add_argument("--prompt", default=None, help='text -> portrait -> avatar, e.g. "long blond hair, glasses, smiling" '
                   "(our small model knows hair, hair colour, skin, beard, glasses, hat, headband, expression, view words)")
    g.add_argument("--steps", type=int, default=None, help="with --prompt: sampler steps (default 20; turbo models 2)")
    g.add_argument("--guidance", type=float, default=None, help="with --prompt: classifier-free guidance (default 3; turbo 0)")
    g.add_argument("--model", default=None, help="with --prompt: text-to-image model folder (default $AVAT3R_TEXT2IMG, "
                   "weights/sd-turbo when present, else the shipped weights/text2img)")
    g.add_argument("--truncation", type=float, default=0.7, help="GGHead truncation psi in [0, 2] (default 0.7)")
    g.add_argument("-o", "--out", default="generated", help="output folder (default ./generated)")
    g.add_argument("--generator", default=None, help="GGHead weights directory or official .pkl (default $AVAT3R_GGHEAD_WEIGHTS or weights/gghead)")
    g.add_argument("--weights", default=None, help="Avat3r checkpoint (default: the shipped weights/)")
    g.add_argument("--device", default=None)
    g.add_argument("--frames", type=int, default=24, help="turntable frames; 0 = none (default 24)")
    g.add_argument("--size", type=int, default=256, help="video size in pixels (default 256)")
    g.add_argument("--frames-per-step", type=int, default=8, help="expression clip: frames between presets (default 8)")
    common(g)
    g.set_defaults(func=cmd_generate)

    l = sub.add_parser("lift", help="one photo -> GAN inversion -> 4 views (capture folder) -> the animated Avat3r avatar")
    l.add_argument("photo", help="one photo of a head (jpg/png/...)")
    l.add_argument("-o", "--out", default="lifted", help="output folder (default ./lifted)")
    l.add_argument("--mode", default=None, choices=["lift", "lift+photo", "native"],
                   help="lift: 4 views from GAN inversion; lift+photo: those and the photo; native: the photo alone "
                        "(V = 1); default: the measured best, native since session 9 (docs/LIFT.md)")
    l.add_argument("--steps", type=int, default=None,
                   help="optimisation steps of w+ against the photo (default 12 on a CPU, 40 on a GPU; 0 = encoder only)")
    l.add_argument("--pti-steps", type=int, default=None, help="pivotal tuning steps of the generator (default 0 on a CPU, 30 on a GPU)")
    l.add_argument("--generator", default=None, help="GGHead weights directory or official .pkl (default weights/gghead)")
    l.add_argument("--encoder", default=None, help="lift encoder directory (default $AVAT3R_LIFT_WEIGHTS or weights/lift)")
    l.add_argument("--weights", default=None, help="Avat3r checkpoint (default: the shipped weights/)")
    l.add_argument("--device", default=None)
    l.add_argument("--frames", type=int, default=24, help="turntable frames; 0 = none (default 24)")
    l.add_argument("--size", type=int, default=256, help="video size in pixels (default 256)")
    l.add_argument("--frames-per-step", type=int, default=8, help="expression clip: frames between presets (default 8)")
    common(l)
    l.set_defaults(func=cmd_lift)

    t = sub.add_parser("train", help="train a model (see `avat3r train --help`)", add_help=False)
    t.add_argument("rest", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_train)
    ev = sub.add_parser("eval", help="evaluate a model (see `avat3r eval --help`)", add_help=False)
    ev.add_argument("rest", nargs=argparse.REMAINDER)
    ev.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # train/eval own their whole argument list (incl. --help): hand it over untouched
    cmd_i = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if cmd_i is not None and argv[cmd_i] in ("train", "eval") and all(a in ("--debug", "-q", "--quiet") for a in argv[:cmd_i]):
        args = argparse.Namespace(command=argv[cmd_i], rest=argv[cmd_i + 1:], debug="--debug" in argv[:cmd_i],
                                  quiet=bool({"-q", "--quiet"} & set(argv[:cmd_i])),
                                  func=cmd_train if argv[cmd_i] == "train" else cmd_eval)
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    args.quiet = getattr(args, "quiet", False)
    debug = getattr(args, "debug", False) or os.environ.get("AVAT3R_DEBUG") == "1"
    if debug:
        return int(args.func(args) or 0)
    from .errors import Avat3rError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("avat3r: interrupted", file=sys.stderr)
        return 130
    except Avat3rError as e:  # the whole message: multi-line ones list every reason (e.g. one per photo)
        msg = str(e).strip() or type(e).__name__
        print(f"avat3r: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"avat3r: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("avat3r: error: out of memory; use fewer or smaller images, or a smaller --size", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as e:
        print(f"avat3r: error: this command needs the missing module {e.name!r}; install avat3r with its dependencies "
              "(pip install -e .)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug, not a user error: still one line, the traceback is behind --debug
        print(f"avat3r: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
