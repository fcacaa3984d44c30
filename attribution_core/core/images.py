"""Reading images safely: every odd file either becomes an RGB image or a one-line reason."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InputImageError
from .paths import display_path
from .webdataset import is_shard, odd_members, read_member, shard_images, split_member

#: Suffixes considered images when scanning a folder (case-insensitive).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

#: Largest image accepted, in pixels (40 megapixels, e.g. 8000 x 5000; Pillow's own limit is 89 MP). Larger files
#: are refused before they are decoded, as possible decompression bombs: a generated image is far smaller.
MAX_IMAGE_PIXELS = 40_000_000

#: Most elongated image accepted (long side / short side). Backbones resize the short side to 224–384 px, so a
#: 20000 x 1 strip would become 5,120,000 x 256 pixels (6 GB for one 144-byte PNG); generated images and training
#: photographs are far from this (a 4:1 panorama is already rare).
MAX_ASPECT = 16

#: Side beyond which a *query* is reduced while it is decoded (JPEG draft mode, else an integer-factor reduce):
#: backbones embed at 224–384 px, so nothing of use is lost, and a large upload costs a fraction of the memory.
QUERY_MAX_SIDE = 2048

_ROWS = 1024  # rows converted at a time for 16-bit and float images (bounded temporary memory)

#: Images above this many pixels are decoded at most ``LARGE_DECODE_SLOTS`` at a time in one process, so that many
#: concurrent large uploads cost the memory of two, not of all of them (the rest wait a moment).
LARGE_PIXELS = 8_000_000
LARGE_DECODE_SLOTS = 2
_large_decodes = threading.BoundedSemaphore(LARGE_DECODE_SLOTS)

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of an extraction, and why."""

    path: str
    reason: str


def _to_gray8(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float single-channel images -> 8-bit grey, a block of rows at a time (never a
    float64 copy of the whole image)."""
    arr = np.asarray(img)
    out = np.empty(arr.shape, dtype=np.uint8)
    if img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        for r in range(0, arr.shape[0], _ROWS):
            block = (arr[r : r + _ROWS].astype(np.float32) - lo) * scale + 0.5
            out[r : r + _ROWS] = np.clip(np.nan_to_num(block), 0, 255).astype(np.uint8)
    else:
        hi = 65535 if img.mode.startswith("I;16") or int(arr.max()) > 255 else 255
        for r in range(0, arr.shape[0], _ROWS):
            block = np.clip(arr[r : r + _ROWS].astype(np.int64), 0, hi)
            out[r : r + _ROWS] = ((block * 255 + hi // 2) // hi).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (CMYK, 16-bit, palette, alpha, ...) to 8-bit RGB; transparency goes onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_gray8(img).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def _decode(img: Image.Image, max_side: int | None) -> Image.Image:
    """Decode an opened image (reduced while decoding when it is much larger than ``max_side``) to upright RGB."""
    if max_side and img.format == "JPEG" and min(img.size) >= 2 * max_side:
        img.draft(img.mode, (max_side, max_side))  # DCT-domain scaling: decodes 1/2, 1/4 or 1/8 of the pixels
    img.load()
    if max_side and min(img.size) >= 2 * max_side:
        img = img.reduce(min(img.size) // max_side)
    img = ImageOps.exif_transpose(img)
    return _to_rgb(img).copy()


def check_shape(img: Image.Image, name: str) -> Image.Image:
    """``img`` unchanged, or a one-line error when no method should read it: more pixels than ``MAX_IMAGE_PIXELS``
    or more elongated than ``MAX_ASPECT``:1. The one rule for every query, read from a file or handed in opened
    (the Python API, the explorer).

    Raises:
        InputImageError: naming ``name``, the size and what to do.
    """
    if max(img.size) > MAX_ASPECT * max(1, min(img.size)):
        raise InputImageError(
            f"{name}: {img.width} x {img.height} pixels is too elongated (at most {MAX_ASPECT}:1; a "
            "backbone would scale the short side up to its input size); crop it to the part that matters"
        )
    if img.width * img.height > MAX_IMAGE_PIXELS:
        raise InputImageError(
            f"{name}: image is too large (over the limit of {MAX_IMAGE_PIXELS:,} pixels); downscale it first"
        )
    return img


def load_rgb(
    source: Path | str | bytes | BinaryIO, name: str | None = None, max_side: int | None = None
) -> Image.Image:
    """Open an image as 8-bit RGB, upright (EXIF orientation applied), first frame of an animation.

    Args:
        source: a path (a file, or ``SHARD.tar/MEMBER`` for an image inside a webdataset shard), the file's
            bytes, or an open binary file (an upload).
        name: how to name the file in errors (defaults to the path).
        max_side: reduce images larger than twice this while decoding (JPEG draft, else an integer-factor
            reduce), keeping at least ``max_side`` on the short side; None keeps every pixel (extraction).

    Raises:
        InputImageError: missing, not an image, truncated, larger than ``MAX_IMAGE_PIXELS`` or more elongated than
            ``MAX_ASPECT``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or display_path(path)
        in_shard = None if path.exists() else split_member(path)
        if in_shard is not None:
            opener: Path | BinaryIO = io.BytesIO(read_member(*in_shard))
        elif not path.exists():
            raise InputImageError(f"{name}: {dangling(path) if path.is_symlink() else 'file not found'}")
        elif path.is_dir():
            raise InputImageError(f"{name}: is a folder, not an image file")
        else:
            opener = path
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
                check_shape(img, name)
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                large = img.width * img.height > LARGE_PIXELS
                with _large_decodes if large else contextlib.nullcontext():
                    return _decode(img, max_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputImageError(
            f"{name}: image is too large (over the limit of {MAX_IMAGE_PIXELS:,} pixels); refused as a possible "
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


def thumbnail(source: Path | str | bytes, size: int, name: str | None = None) -> Image.Image:
    """A training image at most ``size`` pixels on its long side (decoded reduced where it can be), for galleries:
    the explorer's and the service's ``/v1/images``."""
    image = load_rgb(source, name, max_side=size)
    image.thumbnail((size, size), Image.BICUBIC)
    return image


def scan_image_files(folders: Sequence[Path], root: Path) -> tuple[list[Path], list[SkippedFile]]:
    """List image files under ``folders`` (recursively, sorted), and everything else with a reason.

    A webdataset shard (``.tar``) stands for its images, listed as ``SHARD.tar/MEMBER`` in member order.
    Hidden files and folders (``.name``) are ignored silently. Symlinks to files are followed (the stored path
    is the link's); symlinks to folders are not followed (no loops, no escaping the folder) and are reported,
    as are broken links, unreadable folders and non-image files. Paths are absolute, not resolved.
    """
    found: list[Path] = []
    skipped: list[SkippedFile] = []
    for folder in folders:
        folder = Path(os.path.abspath(folder))
        if not folder.is_dir():
            raise InputImageError(f"{display_path(folder)}: folder not found")
        for path, reason in _walk(folder):
            if reason is not None:
                skipped.append(SkippedFile(_rel(path, root), reason))
            elif is_shard(path):
                try:
                    found += [path / m for m in shard_images(path, IMAGE_SUFFIXES)]
                    skipped += [
                        SkippedFile(f"{_rel(path, root)}/{m}", why) for m, why in odd_members(path, IMAGE_SUFFIXES)
                    ]
                except InputImageError as exc:
                    skipped.append(SkippedFile(_rel(path, root), str(exc).split(": ", 1)[-1]))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
            else:
                skipped.append(SkippedFile(_rel(path, root), f"not an image file type ({path.suffix or 'no suffix'})"))
    found.sort()
    return found, skipped


def _walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for every file under ``folder``, and (path, reason) for what cannot or will not be read."""
    unreadable: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable.append, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in list(dirnames):
            if (here / d).is_symlink():
                dirnames.remove(d)
                yield here / d, "symlink to a folder: not followed (copy or link the files themselves)"
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.is_symlink() and not path.exists():
                yield path, dangling(path)
            elif path.is_file():
                yield path, None
        while unreadable:
            exc = unreadable.pop()
            yield Path(exc.filename or dirpath), f"cannot read folder ({exc.strerror or type(exc).__name__})"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def dangling(link: Path) -> str:
    """Why a symlink leads to no file: a loop, or a broken link."""
    try:
        link.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop (the link leads back to itself)"
    return "broken symlink"


def relative_name(path: Path, root: Path) -> str:
    """The name a store records for ``path``: relative to ``root``, without resolving symlinks.

    Raises:
        InputImageError: ``path`` is not inside ``root``.
    """
    for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
        try:
            return candidate.relative_to(root).as_posix()
        except ValueError:
            continue
    raise InputImageError(f"{display_path(path)}: not inside {display_path(root)} (the folder paths are relative to)")


def file_stamp(path: Path) -> str:
    """``"size:mtime_ns"`` of a file (of its shard, for an image inside one): changes when the file is replaced or
    rewritten."""
    try:
        in_shard = None if path.exists() else split_member(path)
        st = (in_shard[0] if in_shard else path).stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


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


def release_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc ``malloc_trim``), e.g. after a large upload
    was decoded and reduced, so a long-running server's resident memory comes back down. A no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
