"""The fine-tune testbed's images (docs/counterfactual.md): procedurally drawn shapes whose captions name shared
attributes only, so that no caption identifies one image and no query's prompt names its answer.

Every image is "a <colour> <shape> on a <background> background" drawn with its own random size, position,
rotation and shade (unnamed), so the four training images of one caption are four different drawings, never views
of one image. The 4 × 6 × 4 = 96 attribute combinations split by a fixed rule into 64 training combinations
(4 drawings each: 256 images) and 32 held-out ones, never a training caption: 16 reported and 16 validation
combinations, each a cluster of queries (generations of the fine-tuned model, and held-out drawings with their
caption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .synthesis import seeded_rng

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {
    "red": (220, 30, 30),
    "green": (40, 170, 50),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 180),
    "orange": (245, 135, 25),
}
BACKGROUNDS = {"white": (240, 240, 240), "black": (20, 20, 20), "grey": (128, 128, 128), "beige": (215, 195, 150)}
#: Drawings per training combination (same caption, independent random size, position, rotation and shade).
DRAWINGS = 4
#: Pixels of a drawn image (the diffusion model reads it at its own resolution, area-averaged).
DRAWN_SIDE = 64


@dataclass(frozen=True, order=True)
class Combo:
    """One attribute combination: indices into SHAPES, COLOURS and BACKGROUNDS."""

    shape: int
    colour: int
    background: int

    @property
    def name(self) -> str:
        return f"{list(COLOURS)[self.colour]}-{SHAPES[self.shape]}-on-{list(BACKGROUNDS)[self.background]}"

    @property
    def caption(self) -> str:
        return (
            f"a {list(COLOURS)[self.colour]} {SHAPES[self.shape]} on a {list(BACKGROUNDS)[self.background]} background"
        )


def all_combos() -> list[Combo]:
    return [Combo(s, c, b) for s in range(len(SHAPES)) for c in range(len(COLOURS)) for b in range(len(BACKGROUNDS))]


def is_held_out(combo: Combo) -> bool:
    """A third of the combinations never appear in training (every attribute value still does, in other ones)."""
    return (combo.shape + combo.colour + combo.background) % 3 == 0


def training_combos() -> list[Combo]:
    return [c for c in all_combos() if not is_held_out(c)]


def held_out_combos(validation: bool) -> list[Combo]:
    """The held-out combinations, alternately reported and validation (16 each)."""
    held = [c for c in all_combos() if is_held_out(c)]
    return held[1::2] if validation else held[0::2]


def combo_by_name(name: str) -> Combo | None:
    return next((c for c in all_combos() if c.name == name), None)


def draw(combo: Combo, key: str) -> Image.Image:
    """A drawing of ``combo`` whose unnamed attributes (size, position, rotation, shade) come from ``key``'s seed."""
    rng = seeded_rng("shapes", combo.name, key)
    side = DRAWN_SIDE
    shade = rng.integers(-25, 26, 3)
    background = tuple(
        int(np.clip(v + rng.integers(-12, 13), 0, 255)) for v in BACKGROUNDS[list(BACKGROUNDS)[combo.background]]
    )
    colour = tuple(
        int(np.clip(v + d, 0, 255)) for v, d in zip(COLOURS[list(COLOURS)[combo.colour]], shade, strict=True)
    )
    img = Image.new("RGB", (side, side), background)
    radius = side * rng.uniform(0.22, 0.36)
    cx, cy = side * rng.uniform(0.35, 0.65), side * rng.uniform(0.35, 0.65)
    angle = rng.uniform(0, 2 * math.pi)
    ImageDraw.Draw(img).polygon(_outline(SHAPES[combo.shape], cx, cy, radius, angle), fill=colour)
    return img


def _outline(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """The polygon of ``shape`` centred at (cx, cy) with circumradius ``r``, rotated by ``angle``."""
    if shape == "circle":
        points = [(r, 2 * math.pi * i / 48) for i in range(48)]
    elif shape == "square":
        points = [(r, math.pi / 4 + math.pi / 2 * i) for i in range(4)]
    elif shape == "triangle":
        points = [(r, math.pi / 2 + 2 * math.pi / 3 * i) for i in range(3)]
    else:  # cross: a plus sign of arm width r * 0.6
        w = r * 0.3
        corners = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w),
                   (-w, r)]  # fmt: skip
        points = [(math.hypot(x, y), math.atan2(y, x)) for x, y in corners]
    return [(cx + d * math.cos(a + angle), cy + d * math.sin(a + angle)) for d, a in points]
