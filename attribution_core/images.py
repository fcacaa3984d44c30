"""Reading images safely: every odd file either becomes an RGB image or a one-line reason."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InputImageError
from .paths import display_path

#: Suffixes considered images when scanning a folder (case-insensitive).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

#: Largest image accepted, in pixels (about 16k x 16k); larger files are refused as decompression bombs.
MAX_IMAGE_PIXELS = 268_435_456

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of an extraction, and why."""

    path: str
    reason: str


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (CMYK, 16-bit, palette, alpha, ...) to 8-bit RGB; transparency goes onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return Image.fromarray((arr * 255 + 0.5).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def load_rgb(source: Path | str | bytes | BinaryIO, name: str | None = None) -> Image.Image:
    """Open an image as 8-bit RGB, upright (EXIF orientation applied), first frame of an animation.

    Args:
        source: a path, the file's bytes, or an open binary file (an upload).
        name: how to name the file in errors (defaults to the path).

    Raises:
        InputImageError: missing, not an image, truncated, or larger than ``MAX_IMAGE_PIXELS``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or display_path(path)
        if not path.exists():
            raise InputImageError(f"{name}: file not found")
        if path.is_dir():
            raise InputImageError(f"{name}: is a folder, not an image file")
        opener: Path | BinaryIO = path
    elif isinstance(source, bytes):
        name = name or "uploaded image"
        opener = io.BytesIO(source)
    else:
        name = name or getattr(source, "name", "uploaded image")
        opener = source
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opener) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img).copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputImageError(
            f"{name}: image is too large (over {MAX_IMAGE_PIXELS:,} pixels); refused as a possible "
            "decompression bomb. Downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise InputImageError(f"{name}: not an image file (or an image format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc).strip() or type(exc).__name__
        if "truncated" in text.lower():
            text = "image file is truncated (incomplete download or copy?)"
        raise InputImageError(f"{name}: cannot decode image: {text}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def scan_image_files(folders: Sequence[Path], root: Path) -> tuple[list[Path], list[SkippedFile]]:
    """List image files under ``folders`` (recursively, sorted), and the other files with a reason.

    Hidden files and folders (``.name``) are ignored silently.
    """
    found: list[Path] = []
    skipped: list[SkippedFile] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputImageError(f"{display_path(folder)}: folder not found")
        for path in sorted(_walk(folder)):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
            else:
                skipped.append(SkippedFile(_rel(path, root), f"not an image file type ({path.suffix or 'no suffix'})"))
    return found, skipped


def _walk(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file():
            yield path


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def common_root(folders: Iterable[Path]) -> Path:
    """The folder that image paths in a store are recorded relative to: the deepest common parent."""
    resolved = [Path(f).resolve() for f in folders]
    if len(resolved) == 1:
        return resolved[0]
    common: list[str] = []
    for segs in zip(*(p.parts for p in resolved), strict=False):
        if any(s != segs[0] for s in segs):
            break
        common.append(segs[0])
    return Path(*common) if common else Path("/")
