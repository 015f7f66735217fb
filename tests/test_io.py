import numpy as np
import pytest
from PIL import Image

from avat3r.errors import InputError
from avat3r.io.images import load_image, load_image_rgba, save_image
from avat3r.io.video import read_video_frames, write_video


def test_modes_and_bit_depths(tmp_path):
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.allclose(load_image(tmp_path / "rgb.png"), rgb / 255.0, atol=1e-6)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    g = load_image(tmp_path / "gray.png")
    assert g.shape == (20, 30, 3) and np.allclose(g[..., 0], g[..., 2])
    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    im, alpha = load_image_rgba(tmp_path / "rgba.png")
    assert alpha is not None and np.allclose(alpha, 128 / 255)
    assert np.allclose(load_image(tmp_path / "rgba.png", background=0.0), im * alpha[..., None])
    sixteen = (np.linspace(0, 65535, 20 * 30).reshape(20, 30)).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    g16 = load_image(tmp_path / "g16.png")
    assert abs(g16.max() - 1.0) < 1e-4 and g16.dtype == np.float32
    pal = Image.fromarray(rgb).convert("P")
    pal.save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png").shape == (20, 30, 3)


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_bad_images(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(InputError, match="cannot read"):
        load_image(tmp_path / "junk.jpg")
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="zero size"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        load_image(np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 7.0, np.float32))


def test_save_image_roundtrip(tmp_path):
    img = np.random.default_rng(1).random((8, 9, 3)).astype(np.float32)
    save_image(tmp_path / "o.png", img)
    assert np.abs(load_image(tmp_path / "o.png") - img).max() <= 0.5 / 255 + 1e-6


def test_video_mp4_and_gif(tmp_path):
    frames = [np.full((31, 33, 3), i / 10, np.float32) for i in range(10)]
    write_video(tmp_path / "v.mp4", frames, fps=10)
    back, fps = read_video_frames(tmp_path / "v.mp4")
    assert len(back) == 10 and back[0].shape == (32, 34, 3) and abs(fps - 10) < 0.1
    assert abs(back[5][10, 10].mean() - 0.5) < 0.05
    write_video(tmp_path / "v.gif", frames, fps=10)
    assert Image.open(tmp_path / "v.gif").n_frames == 10
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="cannot decode"):
        read_video_frames(tmp_path / "bad.mp4")
