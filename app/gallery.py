"""Result galleries: images sized by influence, laid out in rows headed by their aggregated influence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

#: Influence at which a thumbnail is shown at the full chosen resolution (the original demo's constant).
DISPLAY_PER = 0.007


def thumbnail_side(influence: float, res: int, min_side: int = 1, max_side: int | None = None) -> int:
    """Short side in pixels: ``1 + (res - 1) * sqrt(p / 0.007)`` (the original demo), clamped."""
    side = 1 + int((res - 1) * math.sqrt(max(influence, 0.0) / DISPLAY_PER))
    side = max(side, min_side)
    return min(side, max_side) if max_side else side


def resize_short_side(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    scale = side / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


@dataclass(frozen=True)
class GalleryRow:
    """One row of results: positions into the result list, their summed influence."""

    items: tuple[int, ...]
    influence: float

    @property
    def heading(self) -> str:
        return f"**[{self.influence * 100:.2f}%] estimated influence**, **{len(self.items)} images**"


def layout_rows(
    widths: Sequence[int], influences: Sequence[float], columns: int, res: int, pad: int
) -> list[GalleryRow]:
    """Fill rows left to right, as the original demo does: a row closes once it is wider than
    ``columns * res``; unlike the original, the last partial row is shown too."""
    rows: list[GalleryRow] = []
    start, width = 0, 0
    for i, w in enumerate(widths):
        width = w if i == start else width + pad + w
        if width > columns * res:
            rows.append(GalleryRow(tuple(range(start, i + 1)), float(sum(influences[start : i + 1]))))
            start, width = i + 1, 0
    if start < len(widths):
        rows.append(GalleryRow(tuple(range(start, len(widths))), float(sum(influences[start:]))))
    return rows


def pad_right(img: Image.Image, pad: int) -> Image.Image:
    """White space after an image (the "Padding" control)."""
    if pad <= 0:
        return img
    out = Image.new("RGB", (img.width + pad, img.height), (255, 255, 255))
    out.paste(img, (0, 0))
    return out


def mark(img: Image.Image, colour: tuple[int, int, int] = (230, 57, 70), border: int = 3) -> Image.Image:
    """A coloured frame (marks an image retrieved by every compared space)."""
    border = max(1, min(border, min(img.size) // 4))
    return ImageOps.expand(img, border=border, fill=colour)
