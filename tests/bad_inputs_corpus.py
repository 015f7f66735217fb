"""The bad-input corpus (issue 13): bad or odd inputs generated on the fly (no binary fixtures), each with what a
clean refusal looks like. Used by tests/test_bad_inputs*.py (which assert it) and bench/bad_input_audit.py (which
classifies each case as clean / unhandled / silent-wrong / leftover-files, also against older code).

A case is ``Case(id, surface, build, error, phrase, outputs)``:
- surface "api": ``build(ctx, tmp)`` returns a zero-argument callable; it must raise ``error`` (a class name of
  avat3r.errors) whose message matches ``phrase`` (a regex, case-insensitive);
- surface "cli": ``build(ctx, tmp)`` returns the argument list of ``python -m avat3r.cli``; it must exit with 2,
  print ``avat3r: error:`` and ``phrase`` on stderr and no traceback;
- surface "http": ``build(ctx, tmp)`` returns ``(endpoint, args, needs_avatar)`` for gradio_client; the call must
  fail with a message (not a bare "Error") matching ``phrase``.
``outputs``: paths (relative to ``tmp``) that must not exist afterwards; the HTTP cases also check that the app's
work folder holds no new file.
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass
class Case:
    id: str
    surface: str
    build: Callable[[Any, Path], Any]
    error: str
    phrase: str
    outputs: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    """What the cases build on: a tiny checkpoint, a 4-view capture folder, and (API) a pipeline and avatar."""

    ckpt: Path
    capture: Path
    pipe: Any = None
    avatar: Any = None


# ---- file makers (all tiny on disk) ---------------------------------------------------------------------
def png_header_only(path: Path, w: int, h: int) -> Path:
    """A valid 1-bit PNG of w x h whose pixels are all zero: a few KB on disk, w*h pixels when decoded."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (w + 7) // 8)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def grey_png(path: Path, size: int = 96, value: int = 128) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def ply_bytes(header_lines: list[str], body: bytes = b"") -> bytes:
    return ("\n".join(["ply"] + header_lines + ["end_header"]) + "\n").encode() + body


GOOD_PROPS = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
              "rot_0", "rot_1", "rot_2", "rot_3"]


def good_ply_header(n: int) -> list[str]:
    return ["format binary_little_endian 1.0", f"element vertex {n}"] + [f"property float {p}" for p in GOOD_PROPS]


def copy_capture(ctx: Ctx, tmp: Path, name: str = "cap") -> Path:
    dst = tmp / name
    shutil.copytree(ctx.capture, dst)
    return dst


def edit_cameras(folder: Path, fn) -> Path:
    cams = json.loads((folder / "cameras.json").read_text())
    (folder / "cameras.json").write_text(json.dumps(fn(cams)) if not isinstance(fn(cams), str) else fn(cams))
    return folder


def rename_first_view(cams: dict, new: str) -> dict:
    first = sorted(cams)[0]
    out = {new: cams[first]}
    out.update({k: v for k, v in cams.items() if k != first})
    return out


def zip_folder(folder: Path, out: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, Path("cap") / p.relative_to(folder))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def zip_members(out: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def patch_zip(path: Path, fn) -> Path:
    """Rewrite the raw bytes of a zip (forged sizes, flags) with ``fn(bytes) -> bytes``."""
    path.write_bytes(fn(path.read_bytes()))
    return path


def forge_sizes(data: bytes) -> bytes:
    """Declare every member's uncompressed size as 10 bytes (local headers and central directory)."""
    b = bytearray(data)
    i = 0
    while (i := b.find(b"PK\x03\x04", i)) >= 0:
        struct.pack_into("<I", b, i + 22, 10)
        i += 4
    i = 0
    while (i := b.find(b"PK\x01\x02", i)) >= 0:
        struct.pack_into("<I", b, i + 24, 10)
        i += 4
    return bytes(b)


def set_encrypted(data: bytes) -> bytes:
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = 0
        while (i := b.find(sig, i)) >= 0:
            flags = struct.unpack_from("<H", b, i + off)[0]
            struct.pack_into("<H", b, i + off, flags | 0x1)
            i += 4
    return bytes(b)


def small_video(path: Path, w: int, h: int, frames: int = 3, fps: float = 10.0) -> Path:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, ffmpeg_log_level="error") as wr:
        for k in range(frames):
            wr.append_data(np.full((h, w, 3), 100 + k, np.uint8))
    return path


def bad_config_ckpt(ctx: Ctx, tmp: Path, **changes) -> Path:
    d = tmp / "bad_ckpt"
    shutil.copytree(ctx.ckpt, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


# ---- the cases ------------------------------------------------------------------------------------------
def _api(ctx_fn):
    return lambda ctx, tmp: (lambda: ctx_fn(ctx, tmp))


def _load_image(p):
    from avat3r.io.images import load_image

    return load_image(p, name=Path(p).name)


def _load_ply(p):
    from avat3r.io.ply import load_ply

    return load_ply(p)


def _read_cams(p):
    from avat3r.cameras import read_cameras_json

    return read_cameras_json(p)


def _write(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _cams_file(ctx: Ctx, tmp: Path, fn) -> Path:
    cams = json.loads((ctx.capture / "cameras.json").read_text())
    out = tmp / "cameras.json"
    res = fn(cams)
    out.write_text(res if isinstance(res, str) else json.dumps(res))
    return out


def _with_entry(cams, key, value):
    first = sorted(cams)[0]
    cams[first][key] = value
    return cams


def _reconstruct(ctx: Ctx, folder: Path):
    return ctx.pipe.reconstruct(folder)


def _expr_capture(ctx, tmp, content: str):
    f = copy_capture(ctx, tmp)
    (f / "expressions.json").write_text(content)
    return _reconstruct(ctx, f)


def _mask_bomb_capture(ctx, tmp):
    f = copy_capture(ctx, tmp)
    first = sorted(json.loads((f / "cameras.json").read_text()))[0]
    png_header_only(f / "masks" / f"{first}.png", 20000, 20000)
    return _reconstruct(ctx, f)


def _symlink_capture(ctx, tmp):
    f = copy_capture(ctx, tmp)
    first = sorted(json.loads((f / "cameras.json").read_text()))[0]
    secret = grey_png(tmp / "elsewhere" / "secret.png", 64, 250)
    img = f / "images" / f"{first}.png"
    img.unlink()
    img.symlink_to(secret)
    return _reconstruct(ctx, f)


def _capture_named(ctx, tmp, name):
    f = copy_capture(ctx, tmp)
    cams = json.loads((f / "cameras.json").read_text())
    (f / "cameras.json").write_text(json.dumps(rename_first_view(cams, name)))
    return _reconstruct(ctx, f)


def _wrong_k_capture(ctx, tmp):
    f = copy_capture(ctx, tmp)
    cams = json.loads((f / "cameras.json").read_text())
    for v in cams.values():
        v["K"][0][2] += 5000.0  # principal point far outside the image
    (f / "cameras.json").write_text(json.dumps(cams))
    return _reconstruct(ctx, f)


def _load_pipeline(ckpt):
    import avat3r

    return avat3r.load_pipeline(ckpt, device="cpu")


def _dim(ctx):
    return ctx.pipe.expression_space.dim


API_CASES = [
    Case("image_bomb_400mp", "api", _api(lambda c, t: _load_image(png_header_only(t / "bomb.png", 20000, 20000))),
         "InputError", r"megapixel"),
    Case("image_50mp", "api", _api(lambda c, t: _load_image(png_header_only(t / "big.png", 8000, 6500))),
         "InputError", r"limit is 40 megapixels"),
    Case("image_truncated", "api", _api(lambda c, t: _load_image(_write(t / "cut.png", grey_png(t / "g.png").read_bytes()[:80]))),
         "InputError", r"cannot read"),
    Case("image_empty", "api", _api(lambda c, t: _load_image(_write(t / "empty.png", b""))), "InputError", r"empty"),
    Case("image_text", "api", _api(lambda c, t: _load_image(_write(t / "notes.png", b"hello, not an image"))),
         "InputError", r"cannot read"),
    Case("image_array_nan", "api", _api(lambda c, t: _load_image_arr(np.full((8, 8, 3), np.nan, np.float32))),
         "InputError", r"NaN"),
    Case("ply_float_count", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        ["format binary_little_endian 1.0", "element vertex 2.5", "property float x"])))), "FormatError", r"header"),
    Case("ply_short_element", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        ["format binary_little_endian 1.0", "element vertex"])))), "FormatError", r"element"),
    Case("ply_no_format", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        ["format", "element vertex 1", "property float x"])))), "FormatError", r"format"),
    Case("ply_short_property", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        ["format binary_little_endian 1.0", "element vertex 1", "property float"])))), "FormatError", r"property"),
    Case("ply_duplicate_property", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        good_ply_header(1) + ["property float x"], b"\0" * 60)))), "FormatError", r"twice"),
    Case("ply_huge_count", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(good_ply_header(10**11))))),
         "FormatError", r"vertices"),
    Case("ply_truncated", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(good_ply_header(10), b"\0" * 30)))),
         "FormatError", r"truncated"),
    Case("ply_nan_values", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        good_ply_header(2), np.full(2 * len(GOOD_PROPS), np.nan, "<f4").tobytes())))), "FormatError", r"NaN"),
    Case("ply_ascii", "api", _api(lambda c, t: _load_ply(_write(t / "a.ply", ply_bytes(
        ["format ascii 1.0", "element vertex 1", "property float x"], b"0\n")))), "FormatError", r"ascii"),
    Case("cams_dotdot_name", "api", _api(lambda c, t: _read_cams(_cams_file(c, t, lambda d: rename_first_view(d, "../../etc/passwd")))),
         "InputError", r"not allowed"),
    Case("cams_wildcard_name", "api", _api(lambda c, t: _read_cams(_cams_file(c, t, lambda d: rename_first_view(d, "*")))),
         "InputError", r"not allowed"),
    Case("cams_absolute_name", "api", _api(lambda c, t: _read_cams(_cams_file(c, t, lambda d: rename_first_view(d, "/tmp/x")))),
         "InputError", r"not allowed"),
    Case("cams_nan_literal", "api", _api(lambda c, t: _read_cams(_cams_file(
        c, t, lambda d: json.dumps(_with_entry(d, "K", [[float("nan"), 0, 32], [0, 60, 32], [0, 0, 1]]))))),
         "FormatError", r"NaN"),
    Case("cams_width_float", "api", _api(lambda c, t: _read_cams(_cams_file(c, t, lambda d: _with_entry(d, "width", 64.5)))),
         "FormatError", r"positive integer"),
    Case("cams_width_huge", "api", _api(lambda c, t: _read_cams(_cams_file(c, t, lambda d: json.dumps(d).replace(
        '"width": 64', '"width": 1e400', 1)))), "FormatError", r"width"),
    Case("cams_not_json", "api", _api(lambda c, t: _read_cams(_write(t / "cameras.json", b"{oops"))),
         "FormatError", r"not valid JSON"),
    Case("config_float_dim", "api", _api(lambda c, t: _load_pipeline(bad_config_ckpt(c, t, dim=32.0))),
         "CheckpointError", r"dim.*integer"),
    Case("config_string_size", "api", _api(lambda c, t: _load_pipeline(bad_config_ckpt(c, t, image_size="64"))),
         "CheckpointError", r"image_size"),
    Case("config_negative_heads", "api", _api(lambda c, t: _load_pipeline(bad_config_ckpt(c, t, heads=-2))),
         "CheckpointError", r"heads"),
    Case("render_size_100000", "api", _api(lambda c, t: c.avatar.render((0, 0), size=100000)), "InputError", r"2048"),
    Case("render_size_0", "api", _api(lambda c, t: c.avatar.render((0, 0), size=0)), "InputError", r"16 to 2048"),
    Case("render_angle_nan", "api", _api(lambda c, t: c.avatar.render((float("nan"), 0), size=32)), "InputError", r"finite"),
    Case("animate_nan", "api", _api(lambda c, t: c.avatar.animate([float("nan")] * _dim(c))), "InputError", r"NaN"),
    Case("animate_inf", "api", _api(lambda c, t: c.avatar.animate([float("inf")] + [0.0] * (_dim(c) - 1))),
         "InputError", r"NaN or inf"),
    Case("animate_huge_value", "api", _api(lambda c, t: c.avatar.animate([1e6] * _dim(c))), "InputError", r"out of range"),
    Case("animate_unknown_preset", "api", _api(lambda c, t: c.avatar.animate("../../etc")), "InputError", r"unknown expression"),
    Case("animate_wrong_length", "api", _api(lambda c, t: c.avatar.animate([0.0] * 3)), "InputError", r"expects"),
    Case("animation_200k_frames", "api", _api(lambda c, t: c.avatar.animation(np.zeros((200_000, _dim(c)), np.float32), size=32)),
         "InputError", r"2000"),
    Case("animation_nan_codes", "api", _api(lambda c, t: c.avatar.animation(np.full((3, _dim(c)), np.nan, np.float32), size=32)),
         "InputError", r"NaN"),
    Case("turntable_0_frames", "api", _api(lambda c, t: c.avatar.turntable(0, 32)), "InputError", r"frame"),
    Case("turntable_million_frames", "api", _api(lambda c, t: c.avatar.turntable(10**6, 32)), "InputError", r"2000"),
    Case("turntable_size_0", "api", _api(lambda c, t: c.avatar.turntable(2, 0)), "InputError", r"16 to 2048"),
    Case("save_ply_bad_orientation", "api", _api(lambda c, t: c.avatar.save_ply(t / "o" / "x.ply", orientation="sideways")),
         "InputError", r"orientation", ["o/x.ply"]),
    Case("save_ply_into_folder", "api", _api(lambda c, t: c.avatar.save_ply((t / "dir.ply").mkdir() or t / "dir.ply")),
         "InputError", r"folder"),
    Case("video_fps_negative", "api", _api(lambda c, t: _write_video(t / "v" / "a.mp4", -1)), "InputError", r"fps",
         ["v/a.mp4"]),
    Case("video_fps_nan", "api", _api(lambda c, t: _write_video(t / "v" / "a.mp4", float("nan"))), "InputError", r"fps",
         ["v/a.mp4"]),
    Case("video_bad_extension", "api", _api(lambda c, t: _write_video(t / "v" / "a.avi", 24)), "InputError", r"extension",
         ["v/a.avi"]),
    Case("video_frame_10mp", "api", _api(lambda c, t: _read_video(small_video(t / "big.mp4", 4000, 2560, 1))),
         "InputError", r"megapixels"),
    Case("capture_expressions_nan", "api", _api(lambda c, t: _expr_capture(c, t, '{"x": [NaN]}')), "FormatError",
         r"expressions\.json"),
    Case("capture_expressions_not_object", "api", _api(lambda c, t: _expr_capture(c, t, "[1, 2, 3]")), "FormatError",
         r"expressions\.json"),
    Case("capture_mask_bomb", "api", _api(_mask_bomb_capture), "InputError", r"megapixel"),
    Case("capture_symlinked_image", "api", _api(_symlink_capture), "InputError", r"symbolic link"),
    Case("capture_name_dotdot", "api", _api(lambda c, t: _capture_named(c, t, "../images/x")), "InputError", r"not allowed"),
    Case("capture_name_glob", "api", _api(lambda c, t: _capture_named(c, t, "cam*")), "InputError", r"not allowed"),
    Case("capture_wrong_K", "api", _api(_wrong_k_capture), "FormatError", r"check its K"),
]


def _load_image_arr(a):
    from avat3r.io.images import load_image

    return load_image(a, name="array")


def _write_video(path, fps):
    from avat3r.io.video import write_video

    return write_video(path, [np.zeros((32, 32, 3), np.uint8)] * 3, fps=fps)


def _read_video(path):
    from avat3r.io.video import read_video_frames

    return read_video_frames(path)


# ---- CLI ------------------------------------------------------------------------------------------------
def _cli_capture_named(ctx, tmp, name):
    f = copy_capture(ctx, tmp)
    cams = json.loads((f / "cameras.json").read_text())
    (f / "cameras.json").write_text(json.dumps(rename_first_view(cams, name)))
    return f


def _rec(ctx, *extra, inputs=None):
    return ["-q", "reconstruct", *(map(str, inputs) if inputs else [str(ctx.capture)]), "--weights", str(ctx.ckpt),
            *map(str, extra)]


def _anim(ctx, tmp, *extra, out="anim.mp4"):
    return ["-q", "animate", str(ctx.capture), "--weights", str(ctx.ckpt), "-o", str(tmp / out), "--size", "32",
            *map(str, extra)]


def _npy(path: Path, arr) -> Path:
    np.save(path, arr)
    return path


CLI_CASES = [
    Case("cli_device_cuda_on_cpu", "cli", lambda c, t: _rec(c, "--device", "cuda", "-o", t / "out"), "2",
         r"(no CUDA GPU|has \d+ CUDA GPU)", ["out"]),
    Case("cli_expression_bad_json", "cli", lambda c, t: _rec(c, "--expression", _write(t / "e.json", b"[1, 2,"), "-o",
                                                             t / "out"), "2", r"not valid JSON", ["out"]),
    Case("cli_expression_nan", "cli", lambda c, t: _rec(c, "--expression", ",".join(["nan"] * 20), "-o", t / "out"), "2",
         r"NaN", ["out"]),
    Case("cli_reconstruct_size_0", "cli", lambda c, t: _rec(c, "--size", "0", "--frames", "2", "-o", t / "out"), "2",
         r"16 to 2048", ["out/head.ply", "out/preview.png"]),
    Case("cli_reconstruct_size_100000", "cli", lambda c, t: _rec(c, "--size", "100000", "--frames", "2", "-o", t / "out"),
         "2", r"2048", ["out/head.ply"]),
    Case("cli_reconstruct_fps_0", "cli", lambda c, t: _rec(c, "--fps", "0", "--frames", "2", "-o", t / "out"), "2",
         r"fps", ["out/head.ply"]),
    Case("cli_animate_fps_negative", "cli", lambda c, t: _anim(c, t, "--fps", "-1"), "2", r"fps", ["anim.mp4"]),
    Case("cli_animate_size_huge", "cli", lambda c, t: _anim(c, t, "--size", "100000"), "2", r"2048", ["anim.mp4"]),
    Case("cli_animate_200k_frames_npy", "cli", lambda c, t: _anim(c, t, "--expressions", _npy(t / "seq.npy", np.zeros(
        (200_000, 20), np.float32))), "2", r"2000", ["anim.mp4"]),
    Case("cli_animate_frames_per_step_huge", "cli", lambda c, t: _anim(c, t, "--frames-per-step", "100000"), "2",
         r"2000", ["anim.mp4"]),
    Case("cli_animate_avi", "cli", lambda c, t: _anim(c, t, out="anim.avi"), "2", r"extension", ["anim.avi"]),
    Case("cli_render_bad_ply", "cli", lambda c, t: ["-q", "render", str(_write(t / "x.ply", ply_bytes(
        ["format binary_little_endian 1.0", "element vertex"]))), "-o", str(t / "r.png")], "2", r"element", ["r.png"]),
    Case("cli_render_txt_output", "cli", lambda c, t: ["-q", "render", str(c.capture), "--weights", str(c.ckpt), "-o",
                                                       str(t / "r.txt"), "--size", "32"], "2", r"extension", ["r.txt"]),
    Case("cli_whole_message", "cli", lambda c, t: _rec(c, "-o", t / "out", inputs=[grey_png(t / "wall1.png"),
                                                                                   grey_png(t / "wall2.png", value=90)]),
         "2", r"wall1\.png[\s\S]*wall2\.png", ["out"]),
    Case("cli_capture_dotdot", "cli", lambda c, t: _rec(c, "-o", t / "out", inputs=[_cli_capture_named(c, t, "../../x")]),
         "2", r"not allowed", ["out"]),
    Case("cli_config_float_dim", "cli", lambda c, t: ["-q", "export", str(c.capture), "--weights",
                                                      str(bad_config_ckpt(c, t, dim=32.0)), "-o", str(t / "h.ply")],
         "2", r"integer", ["h.ply"]),
    Case("cli_export_into_folder", "cli", lambda c, t: ["-q", "export", str(c.capture), "--weights", str(c.ckpt), "-o",
                                                        str((t / "d.ply").mkdir() or t / "d.ply")], "2", r"folder"),
    Case("cli_video_is_a_video", "cli", lambda c, t: _rec(c, "-o", t / "out", inputs=[small_video(t / "clip.mp4", 96, 96, 4)]),
         "2", r"frame", ["out"]),
]


# ---- HTTP (the running app) ------------------------------------------------------------------------------
def _zip_cap(ctx, tmp, edit=None, extra=None, name="cap.zip"):
    f = copy_capture(ctx, tmp, "zipcap")
    if edit:
        edit(f)
    return zip_folder(f, tmp / name, extra)


def _first(folder: Path) -> str:
    return sorted(json.loads((folder / "cameras.json").read_text()))[0]


def _bomb_member(f: Path):
    png_header_only(f / "images" / f"{_first(f)}.png", 20000, 20000)


def _cams_nan(f: Path):
    cams = json.loads((f / "cameras.json").read_text())
    cams[_first(f)]["K"][0][0] = float("nan")
    (f / "cameras.json").write_text(json.dumps(cams))


def _expr_bad(f: Path):
    (f / "expressions.json").write_text(json.dumps({_first(f): ["a", "b"]}))


def _create(files):
    return ("/create", ([("file", str(p)) for p in files], None), False)


HTTP_CASES = [
    Case("http_zip_image_bomb", "http", lambda c, t: _create([_zip_cap(c, t, _bomb_member)]), "AppError", r"megapixel"),
    Case("http_zip_declared_too_big", "http", lambda c, t: _create([zip_members(t / "big.zip", {
        "cap/images/a.png": b"\0" * (101 * 2**20)})]), "AppError", r"(limit is 100 MB|compressed)"),
    Case("http_zip_ratio_bomb", "http", lambda c, t: _create([zip_members(t / "ratio.zip", {
        "cap/images/a.png": b"\0" * (5 * 2**20)})]), "AppError", r"compressed \d+-fold"),
    Case("http_zip_forged_sizes", "http", lambda c, t: _create([patch_zip(_zip_cap(c, t), forge_sizes)]), "AppError",
         r"(forged|damaged|cannot be unpacked)"),
    Case("http_zip_encrypted", "http", lambda c, t: _create([patch_zip(_zip_cap(c, t), set_encrypted)]), "AppError",
         r"encrypted"),
    Case("http_zip_member_folder_clash", "http", lambda c, t: _create([_zip_cap(c, t, extra={
        "cap/images/x": b"file", "cap/images/x/y.png": b"also"})]), "AppError", r"both a file and a folder"),
    Case("http_zip_duplicate_member", "http", lambda c, t: _create([_zip_cap(c, t, extra={
        "cap/IMAGES/dup.png": b"1", "cap/images/dup.png": b"2"})]), "AppError", r"twice"),
    Case("http_zip_absolute_path", "http", lambda c, t: _create([zip_members(t / "abs.zip", {"/tmp/evil.png": b"x"})]),
         "AppError", r"unsafe path"),
    Case("http_zip_backslash_path", "http", lambda c, t: _create([zip_members(t / "bs.zip", {"..\\..\\evil.png": b"x"})]),
         "AppError", r"unsafe path"),
    Case("http_zip_too_many_files", "http", lambda c, t: _create([zip_members(t / "many.zip", {
        f"cap/f{i}.txt": b"x" for i in range(201)})]), "AppError", r"at most 200"),
    Case("http_zip_not_a_zip", "http", lambda c, t: _create([_write(t / "fake.zip", b"PK\x03\x04 not really")]),
         "AppError", r"not a valid zip"),
    Case("http_zip_cameras_nan", "http", lambda c, t: _create([_zip_cap(c, t, _cams_nan)]), "AppError", r"NaN"),
    Case("http_zip_expressions_bad", "http", lambda c, t: _create([_zip_cap(c, t, _expr_bad)]), "AppError",
         r"expressions\.json"),
    Case("http_zip_view_name_glob", "http", lambda c, t: _create([_zip_cap(c, t, lambda f: (f / "cameras.json").write_text(
        json.dumps(rename_first_view(json.loads((f / "cameras.json").read_text()), "*"))))]), "AppError", r"not allowed"),
    Case("http_photo_50mp", "http", lambda c, t: _create([png_header_only(t / "big.png", 8000, 6500)]), "AppError",
         r"megapixels"),
    Case("http_photo_bomb", "http", lambda c, t: _create([png_header_only(t / "bomb.png", 20000, 20000)]), "AppError",
         r"megapixel"),
    Case("http_photo_truncated", "http", lambda c, t: _create([_write(t / "cut.png", grey_png(t / "g.png").read_bytes()[:80])]),
         "AppError", r"cut\.png"),
    Case("http_slider_nan", "http", lambda c, t: ("/show_expression", tuple([float("nan")] * 20), True), "AppError",
         r"NaN"),
    Case("http_slider_inf", "http", lambda c, t: ("/show_expression", tuple([float("inf")] + [0.0] * 19), True), "AppError",
         r"(NaN or inf|greater than maximum)"),
    Case("http_slider_huge", "http", lambda c, t: ("/show_expression", tuple([1e30] * 20), True), "AppError",
         r"(out of range|greater than maximum)"),
    Case("http_play_frames_huge", "http", lambda c, t: ("/play", (["neutral", "smile"], 10**9, 0, 0), True), "AppError",
         r"(2000|greater than maximum)"),
    Case("http_play_azimuth_nan", "http", lambda c, t: ("/play", (["neutral"], 2, float("nan"), 0), True), "AppError",
         r"finite"),
    Case("http_play_unknown_preset", "http", lambda c, t: ("/play", (["../../etc/passwd"], 2, 0, 0), True), "AppError",
         r"(unknown expression|not in the list|Value)"),
    Case("http_example_unknown", "http", lambda c, t: ("/example_files", ("../../etc",), False), "AppError",
         r"(Unknown example|not in the list|Value)"),
]

ALL_CASES = API_CASES + CLI_CASES + HTTP_CASES


# ---- running a case -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What happened: ``kind`` in clean / unhandled / silent / leftover, the error class (or exit code) and
    message seen, and the outputs that exist although they should not."""

    kind: str
    error: str
    message: str
    leftovers: list[str]


def _leftovers(case: Case, tmp: Path) -> list[str]:
    return [o for o in case.outputs if (tmp / o).exists()]


def run_api(case: Case, ctx: Ctx, tmp: Path) -> Outcome:
    from avat3r.errors import Avat3rError

    try:
        fn = case.build(ctx, tmp)
        fn()
    except Avat3rError as e:
        left = _leftovers(case, tmp)
        return Outcome("leftover" if left else "clean", type(e).__name__, str(e), left)
    except Exception as e:  # noqa: BLE001 - that is what the audit looks for
        return Outcome("unhandled", type(e).__name__, str(e)[:300], _leftovers(case, tmp))
    return Outcome("silent", "", "", _leftovers(case, tmp))


def cli_command(case: Case, ctx: Ctx, tmp: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "avat3r.cli", *case.build(ctx, tmp)]


def cli_outcome(case: Case, tmp: Path, rc: int, stderr: str) -> Outcome:
    left = _leftovers(case, tmp)
    if rc == 0:
        return Outcome("silent", "0", stderr[-300:], left)
    if "Traceback" in stderr or "internal error" in stderr or rc != 2:
        return Outcome("unhandled", str(rc), stderr[-300:], left)
    return Outcome("leftover" if left else "clean", str(rc), stderr, left)


def run_cli_cases(cases: list[Case], ctx: Ctx, tmp_for, env: dict, workers: int = 4, timeout: float = 300) -> dict:
    """Run CLI cases as subprocesses, ``workers`` at a time -> {case id: Outcome}."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def one(case):
        tmp = tmp_for(case)
        cmd = cli_command(case, ctx, tmp)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return case.id, Outcome("unhandled", "timeout", f"no answer within {timeout} s (hangs)", _leftovers(case, tmp))
        return case.id, cli_outcome(case, tmp, r.returncode, r.stderr)

    with ThreadPoolExecutor(workers) as ex:
        return dict(ex.map(one, cases))


def files_under(d: Path) -> set[Path]:
    return {p for p in Path(d).rglob("*") if p.is_file()} if Path(d).exists() else set()


def run_http(case: Case, ctx: Ctx, tmp: Path, url: str, app_work: Path, avatar_client=None) -> Outcome:
    """One HTTP case through gradio_client; ``avatar_client`` is a Client whose session has an avatar (for the
    cases that need one)."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    endpoint, args, needs_avatar = case.build(ctx, tmp)
    args = tuple([handle_file(p) for _, p in a] if isinstance(a, list) and a and isinstance(a[0], tuple) else a
                 for a in args)
    client = avatar_client if needs_avatar else Client(url, verbose=False)
    before = files_under(app_work)
    try:
        if any(isinstance(a, float) and not np.isfinite(a) for a in args):  # gradio_client refuses to send these
            raw_call(url, endpoint, args, client.session_hash)
        else:
            client.predict(*args, api_name=endpoint)
    except AppError as e:
        msg = str(e)
        new = sorted(str(p.relative_to(app_work)) for p in files_under(app_work) - before)
        bare = msg.strip() in ("", "Error", "None") or "has not enabled verbose error reporting" in msg
        if bare:
            return Outcome("unhandled", "AppError", msg[:300], new)
        return Outcome("leftover" if new else "clean", "AppError", msg, new)
    except Exception as e:  # noqa: BLE001
        return Outcome("unhandled", type(e).__name__, str(e)[:300], [])
    new = sorted(str(p.relative_to(app_work)) for p in files_under(app_work) - before)
    return Outcome("silent", "", "", new)


def raw_call(url: str, endpoint: str, args, session_hash: str) -> Any:
    """Call an app endpoint over raw HTTP (Gradio's /call API) with JSON that may hold NaN/Infinity, as any HTTP
    client can send; raises gradio_client's AppError with the app's message on an error event."""
    import urllib.request

    from gradio_client.exceptions import AppError

    body = json.dumps({"data": list(args), "session_hash": session_hash})  # NaN / Infinity literals stay
    api = url.rstrip("/") + "/gradio_api/call" + endpoint
    req = urllib.request.Request(api, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        event_id = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{api}/{event_id}", timeout=300) as r:
        text = r.read().decode()
    event = data = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
    if event == "error":
        try:
            msg = json.loads(data) if data else None
        except json.JSONDecodeError:
            msg = data
        if isinstance(msg, dict):
            msg = msg.get("message") or msg.get("error") or json.dumps(msg)
        raise AppError(str(msg) if msg else "Error")
    return data
