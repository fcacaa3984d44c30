"""Gallery maths: thumbnail sizes follow the original demo's formula; rows fill left to right."""

from __future__ import annotations

from PIL import Image

from app.gallery import DISPLAY_PER, layout_rows, pad_right, resize_short_side, thumbnail_side


def test_thumbnail_side_follows_the_original_formula() -> None:
    assert thumbnail_side(DISPLAY_PER, 256) == 256  # 0.7% influence -> full resolution
    assert thumbnail_side(DISPLAY_PER / 4, 256) == 1 + int(255 * 0.5)
    assert thumbnail_side(0.0, 256) == 1
    assert thumbnail_side(0.5, 256, max_side=256) == 256
    assert thumbnail_side(0.0, 256, min_side=8) == 8


def test_rows_close_when_wider_than_the_width_and_keep_the_last_row() -> None:
    widths = [256, 256, 256, 100, 1, 1]
    influence = [0.4, 0.3, 0.2, 0.05, 0.0, 0.0]
    rows = layout_rows(widths, influence, columns=2, res=256, pad=8)
    assert [r.items for r in rows] == [(0, 1), (2, 3, 4, 5)]
    assert rows[0].influence == 0.7 and rows[0].heading == "**[70.00%] estimated influence**, **2 images**"
    assert sum(len(r.items) for r in layout_rows([10] * 37, [0.0] * 37, 1, 64, 0)) == 37


def test_resize_and_pad() -> None:
    img = Image.new("RGB", (300, 200))
    assert resize_short_side(img, 100).size == (150, 100)
    assert pad_right(img, 8).size == (308, 200)
