"""Odd image files: each becomes a correct RGB image or a one-line reason naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data as data
from PIL import Image

from attribution_core.core.errors import InputImageError
from attribution_core.core.images import load_rgb


def test_cmyk_16bit_rgba_palette_are_converted(tmp_path) -> None:
    rgb = Image.fromarray(data.chelsea())
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    sixteen = (data.camera().astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "16bit.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)
    rgba.save(tmp_path / "transparent.png")
    rgb.convert("P", palette=Image.ADAPTIVE).save(tmp_path / "palette.png")
    for name in ["cmyk.jpg", "16bit.png", "transparent.png", "palette.png"]:
        img = load_rgb(tmp_path / name)
        assert img.mode == "RGB" and img.size[0] > 0, name
    sixteen_rgb = np.asarray(load_rgb(tmp_path / "16bit.png"))
    assert abs(int(sixteen_rgb[..., 0].mean()) - int(data.camera().mean())) <= 1  # scaled, not clipped
    assert np.asarray(load_rgb(tmp_path / "transparent.png")).min() == 255  # transparent -> white
    cmyk_back = np.asarray(load_rgb(tmp_path / "cmyk.jpg"), dtype=float)
    assert np.abs(cmyk_back - np.asarray(rgb, dtype=float)).mean() < 20


def test_exif_rotation_is_applied(tmp_path) -> None:
    img = Image.fromarray(data.chelsea())  # 451 wide, 300 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").size == (300, 451)


def test_animated_gif_uses_first_frame(tmp_path) -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_rgb(tmp_path / "anim.gif").getpixel((5, 5))[0] > 200


def test_bad_files_give_one_line_errors(tmp_path) -> None:
    (tmp_path / "notes.png").write_text("hello, not an image")
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    Image.new("1", (17_000, 17_000)).save(tmp_path / "bomb.png")  # 289 Mpx, a few KB on disk
    cases = {
        "missing.jpg": "file not found",
        "notes.png": "not an image file",
        "cut.jpg": "truncated",
        "bomb.png": "decompression bomb",
    }
    for name, reason in cases.items():
        with pytest.raises(InputImageError) as err:
            load_rgb(tmp_path / name, name)
        assert str(err.value).startswith(f"{name}: ") and reason in str(err.value), str(err.value)
        assert "\n" not in str(err.value)


def test_uploaded_bytes() -> None:
    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, format="WEBP")
    assert load_rgb(buf.getvalue(), "upload.webp").size == (600, 400)
