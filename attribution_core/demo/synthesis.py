"""Image synthesis for the demo bundle, with PIL alone: views of photographs, and exemplar-influenced queries made
as AbC defines them without a diffusion model (``object`` pastes an exemplar's content into another scene;
``style`` carries an exemplar's colours and texture onto other content)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from .layout import SIDE

#: What captions call each corpus photo ("a photo of <noun>").
PHOTO_NOUNS = {
    "hubble": "deep space",
    "retina": "a retina",
    "camera": "a cameraman",
    "moon": "the moon",
    "coins": "coins",
    "brick": "a brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "page": "a page of text",
    "text": "printed letters",
    "cell": "a cell",
    "clock": "a clock",
    "horse": "a horse",
    "ihc": "stained tissue",
    "colorwheel": "a colour wheel",
    "logo": "a logo",
    "phantom": "a phantom",
}


def caption(photo: str, view: ViewParams) -> str:
    """The caption of a corpus view: "a photo of coins, close-up, flipped"."""
    return ", ".join([f"a photo of {PHOTO_NOUNS[photo]}", *view.words()])


def corpus_photos() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as data

    return {
        "hubble": data.hubble_deep_field,
        "retina": data.retina,
        "camera": data.camera,
        "moon": data.moon,
        "coins": data.coins,
        "brick": data.brick,
        "grass": data.grass,
        "gravel": data.gravel,
        "page": data.page,
        "text": data.text,
        "cell": data.cell,
        "clock": data.clock,
        "horse": lambda: (~data.horse()).astype(np.uint8) * 255,
        "ihc": data.immunohistochemistry,
        "colorwheel": data.colorwheel,
        "logo": data.logo,
        "phantom": lambda: (data.shepp_logan_phantom() * 255).astype(np.uint8),
    }


def exemplar_photos() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as data

    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }


def seeded_rng(*key: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def as_rgb(arr: np.ndarray) -> Image.Image:
    img = Image.fromarray(arr)
    if img.mode == "RGBA":
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


@dataclass(frozen=True)
class ViewParams:
    """Every random choice of one view (drawn in a fixed order, so a view is reproducible from its seed)."""

    box: tuple[int, int, int, int]  # crop in the photo
    area_fraction: float  # crop area / photo area
    angle: float  # rotation, degrees
    flipped: bool
    tint: tuple[tuple[float, ...], tuple[float, ...]] | None  # duotone (dark, light) colours, if any
    contrast: float
    brightness: float

    def words(self) -> list[str]:
        """How a caption describes this view."""
        out = []
        if self.area_fraction < 0.35:
            out.append("close-up")
        if self.flipped:
            out.append("flipped")
        if abs(self.angle) > 5:
            out.append("rotated")
        if self.tint is not None:
            out.append("duotone")
        if self.brightness > 10:
            out.append("bright")
        elif self.brightness < -10:
            out.append("dark")
        if self.contrast > 1.1:
            out.append("high contrast")
        elif self.contrast < 0.9:
            out.append("low contrast")
        return out


def view_params(size: tuple[int, int], rng: np.random.Generator, scale=(0.15, 1.0), tint: bool = False) -> ViewParams:
    """Draw a random-resized crop, flip, small rotation and colour change for a photo of ``size``."""
    w, h = size
    fraction = rng.uniform(*scale)
    area = w * h * fraction
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, max(16, np.sqrt(area * aspect))))
    ch = int(min(h, max(16, np.sqrt(area / aspect))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    angle = float(rng.uniform(-10, 10))
    flipped = bool(rng.random() < 0.5)
    colours = (tuple(rng.uniform(0, 120, 3)), tuple(rng.uniform(150, 255, 3))) if tint else None
    contrast, brightness = float(rng.uniform(0.8, 1.2)), float(rng.uniform(-20, 20))
    return ViewParams((x0, y0, x0 + cw, y0 + ch), (cw * ch) / (w * h), angle, flipped, colours, contrast, brightness)


def apply_view(photo: Image.Image, v: ViewParams) -> Image.Image:
    """The view ``v`` of ``photo``, SIDE x SIDE."""
    view = photo.crop(v.box)
    view = view.rotate(v.angle, resample=Image.BICUBIC, expand=False, fillcolor=(255, 255, 255))
    if v.flipped:
        view = ImageOps.mirror(view)
    view = view.resize((SIDE, SIDE), Image.BICUBIC)
    arr = np.asarray(view, dtype=np.float32)
    if v.tint is not None:
        lum = arr.mean(axis=2, keepdims=True) / 255.0
        dark, light = np.array(v.tint[0]), np.array(v.tint[1])
        arr = dark + lum * (light - dark)
    arr = (arr - 128) * v.contrast + 128 + v.brightness
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def random_view(photo: Image.Image, rng: np.random.Generator, scale=(0.15, 1.0), tint: bool = False) -> Image.Image:
    """A random-resized crop, flip, small rotation and colour change of ``photo``, SIDE x SIDE."""
    return apply_view(photo, view_params(photo.size, rng, scale, tint))


def regions(photo: Image.Image) -> list[tuple[int, int, int, int]]:
    """The 2 x 2 quadrants of a photo, each grown by 12% for context: one AbC "model" each."""
    w, h = photo.size
    out = []
    for qy in range(2):
        for qx in range(2):
            x0, y0, x1, y1 = qx * w // 2, qy * h // 2, (qx + 1) * w // 2, (qy + 1) * h // 2
            mx, my = int(0.12 * w / 2), int(0.12 * h / 2)
            out.append((max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)))
    return out


def style_transfer(content: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Carry the exemplar's colours (luminance-ordered palette) and texture (its high frequencies) onto content."""
    c = np.asarray(content, dtype=np.float32)
    e = np.asarray(exemplar.resize((SIDE, SIDE), Image.BICUBIC), dtype=np.float32)
    c_lum, e_lum = c.mean(axis=2).ravel(), e.mean(axis=2).ravel()
    ranks = np.argsort(np.argsort(c_lum, kind="stable"), kind="stable")
    palette = e.reshape(-1, 3)[np.argsort(e_lum, kind="stable")]
    recoloured = palette[(ranks * (palette.shape[0] - 1)) // max(1, ranks.size - 1)].reshape(c.shape)
    blur = np.asarray(exemplar.resize((SIDE, SIDE), Image.BICUBIC).filter(ImageFilter.GaussianBlur(4)), np.float32)
    texture = e - blur
    if rng.random() < 0.5:
        texture = texture[:, ::-1]
    out = recoloured + float(rng.uniform(0.6, 1.0)) * texture
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def paste_object(background: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste (a crop of) the exemplar into the background with a feathered elliptical mask."""
    ew, eh = exemplar.size
    f = rng.uniform(0.7, 1.0)
    cw, ch = int(ew * f), int(eh * f)
    x0, y0 = int(rng.integers(0, ew - cw + 1)), int(rng.integers(0, eh - ch + 1))
    obj = exemplar.crop((x0, y0, x0 + cw, y0 + ch))
    side = int(SIDE * rng.uniform(0.55, 0.8))
    obj = obj.resize((side, side), Image.BICUBIC)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((side * 0.04, side * 0.04, side * 0.96, side * 0.96), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(side * 0.05))
    px, py = int(rng.integers(0, SIDE - side + 1)), int(rng.integers(0, SIDE - side + 1))
    out = background.copy()
    out.paste(obj, (px, py), mask)
    return out


def make_query(kind: str, other: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An exemplar-influenced query: ``object`` pastes the exemplar into a scene; ``style`` restyles a scene."""
    scene = random_view(other, rng, scale=(0.3, 1.0))
    return paste_object(scene, exemplar, rng) if kind == "object" else style_transfer(scene, exemplar, rng)
