"""The ``avat3r`` command line end to end: synth -> reconstruct (capture folder and a real photo) -> animate,
render, export; errors come out as one line on stderr with exit code 2 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from app_fixtures import astronaut_png

from avat3r.cli import main


def _cli(*args, env=None):
    e = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "avat3r.cli", *map(str, args)], capture_output=True, text=True, env=e,
                          timeout=300)


def test_help_lists_commands():
    r = _cli("--help")
    assert r.returncode == 0
    for cmd in ("reconstruct", "animate", "render", "synth", "train", "eval", "export"):
        assert cmd in r.stdout


def test_synth_command(tmp_path):
    assert main(["-q", "synth", "--out", str(tmp_path / "caps"), "--subjects", "1", "--views", "3", "--size", "32"]) == 0
    cams = list((tmp_path / "caps").rglob("cameras.json"))
    assert len(cams) == 1
    assert len(list((cams[0].parent / "images").iterdir())) == 3


def test_reconstruct_capture_folder(ckpt, capture_dir, tmp_path):
    from avat3r.io.ply import load_ply
    from avat3r.io.video import read_video_frames

    out = tmp_path / "out"
    rc = main(["-q", "reconstruct", str(capture_dir), "--weights", str(ckpt), "-o", str(out), "--frames", "4", "--size", "48"])
    assert rc == 0
    g = load_ply(out / "head.ply")
    assert len(g) > 100
    frames, _ = read_video_frames(out / "turntable.mp4")
    assert len(frames) == 4 and frames[0].shape == (48, 48, 3)


def test_reconstruct_real_photo(ckpt, tmp_path):
    from avat3r.io.ply import load_ply

    photo = astronaut_png(tmp_path / "astronaut.png")
    out = tmp_path / "out"
    rc = main(["-q", "reconstruct", str(photo), "--weights", str(ckpt), "-o", str(out), "--frames", "2", "--size", "32"])
    assert rc == 0
    assert len(load_ply(out / "head.ply")) > 50
    assert (out / "preview.png").is_file() and (out / "turntable.mp4").is_file()


def test_animate_render_export(ckpt, capture_dir, tmp_path):
    from avat3r.io.images import load_image
    from avat3r.io.ply import load_ply
    from avat3r.io.video import read_video_frames

    vid = tmp_path / "anim.mp4"
    assert main(["-q", "animate", str(capture_dir), "--weights", str(ckpt), "--expressions", "neutral,smile",
                 "--frames-per-step", "2", "--size", "32", "-o", str(vid)]) == 0
    frames, _ = read_video_frames(vid)
    assert len(frames) == 4
    ply = tmp_path / "head_y_down.ply"
    assert main(["-q", "export", str(capture_dir), "--weights", str(ckpt), "--expression", "surprise",
                 "--orientation", "y_down", "-o", str(ply)]) == 0
    up = tmp_path / "head_up.ply"
    assert main(["-q", "export", str(capture_dir), "--weights", str(ckpt), "--expression", "surprise", "-o", str(up)]) == 0
    a, b = load_ply(ply), load_ply(up)
    np.testing.assert_allclose(a.means[:, 1].numpy(), -b.means[:, 1].numpy(), atol=1e-5)
    png = tmp_path / "view.png"
    assert main(["-q", "render", str(up), "--azimuth", "20", "--size", "40", "-o", str(png)]) == 0  # a .ply: no weights
    assert load_image(png).shape == (40, 40, 3)
    png2 = tmp_path / "view2.png"
    assert main(["-q", "render", str(capture_dir), "--weights", str(ckpt), "--size", "40", "-o", str(png2)]) == 0
    assert load_image(png2).max() > 0.1


def test_errors_are_one_clean_line(ckpt, tmp_path):
    r = _cli("reconstruct", tmp_path / "missing.jpg", "--weights", ckpt, "-o", tmp_path / "o")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "missing.jpg" in r.stderr
    r = _cli("reconstruct", tmp_path, "-o", tmp_path / "o", env={"AVAT3R_WEIGHTS": str(tmp_path / "none")})
    assert r.returncode == 2 and "Traceback" not in r.stderr and "AVAT3R_WEIGHTS" in r.stderr


def test_bad_expression_is_user_error(ckpt, capture_dir, tmp_path, capsys):
    rc = main(["export", str(capture_dir), "--weights", str(ckpt), "--expression", "grumpy_cat", "-o", str(tmp_path / "x.ply")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown expression preset" in err and "Traceback" not in err


@pytest.mark.parametrize("cmd", ["train", "eval"])
def test_train_eval_are_wired(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert f"avat3r {cmd}" in capsys.readouterr().out
