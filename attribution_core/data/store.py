"""Feature stores on disk: raw backbone features [N, d], memory-mapped, with their image paths.

Layout of a store folder::

    STORE/meta.json    {"format", "backbone", "dim", "count", "checksum", "image_root", "source"}
    STORE/feats.npy    float32 [N, d] raw backbone features (before any head), opened memory-mapped
    STORE/paths.json   N image paths, relative to image_root
    STORE/index/       FAISS indexes built over the head-mapped features (see ``index``)

A store is written into a temporary folder and renamed into place, so a reader never sees half of one.
The released AbC ``{"feats", "paths"}`` ``.pth`` files are converted once into this layout; what is checked on
open is in store_checks.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..core.checkpoints import load_checkpoint
from ..core.errors import StoreError
from ..core.fileio import atomic_write_json, clean_stale_temps, is_writable_dir, replace_dir, temp_sibling
from ..core.paths import cache_dir, display_path, project_root
from .store_checks import (
    CHUNK,
    StoreMeta,
    checked_meta,
    checksum_of,
    data_stamp,
    mapped_feats,
    read_optional,
    read_stamps,
    verified_meta,
)

STORE_FORMAT = "attribution-store/1"
#: Bumped when the conversion of released .pth files changes, so older conversions are redone.
CONVERTER_VERSION = 2

log = logging.getLogger(__name__)


class FeatureStore:
    """An opened store: ``feats`` is a read-only memory map [N, d]; ``paths`` the N image paths."""

    def __init__(
        self, path: Path, meta: StoreMeta, feats: np.ndarray, paths: list[str], stamps: dict[str, str] | None = None
    ):
        self.path = path
        self.meta = meta
        self.feats = feats
        self.paths = paths
        self.stamps = stamps or {}  # path -> "size:mtime_ns" of the image when it was embedded (extracted stores)
        self.captions = read_optional(path / "captions.json")  # path -> caption, where the store has them
        self.urls = read_optional(path / "urls.json")  # path -> where the image came from (webdataset shards)

    def caption(self, i: int) -> str | None:
        """The caption of image ``i``, or None."""
        return self.captions.get(self.paths[i])

    def url(self, i: int) -> str | None:
        """The source URL of image ``i`` (as ``img2dataset`` recorded it), or None."""
        return self.urls.get(self.paths[i])

    def __len__(self) -> int:
        return self.meta.count

    @property
    def dim(self) -> int:
        return self.meta.dim

    @property
    def backbone(self) -> str:
        return self.meta.backbone

    @property
    def checksum(self) -> str:
        return self.meta.checksum

    def image_path(self, i: int) -> Path:
        """Absolute path of image ``i`` (image_root / path)."""
        root = Path(self.meta.image_root) if self.meta.image_root else Path()
        return root / self.paths[i]

    @classmethod
    def open(cls, path: Path | str) -> FeatureStore:
        """Open a store folder (or a released ``.pth``, converted on first use: see :func:`resolve_store`).

        Raises:
            StoreError: missing or incomplete store, with the command that makes it.
        """
        path = Path(path)
        if path.suffix == ".pth":
            path = resolve_store(path)
        shown = display_path(path)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            if (Path(str(path) + ".partial")).is_dir():
                raise StoreError(f"{shown}: extraction was interrupted; run the same `attribute extract` again")
            raise StoreError(f"{shown}: no feature store here (make one with `attribute extract`)")
        try:
            raw = json.loads(meta_file.read_text())
            if not isinstance(raw, dict):
                raise ValueError(f"meta.json holds a {type(raw).__name__}, not an object")
            if raw.get("format") != STORE_FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            paths = json.loads((path / "paths.json").read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{shown}: damaged feature store ({exc}); delete it and extract again") from None
        meta = StoreMeta(**checked_meta(raw, f"{shown}/meta.json"))
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            found = type(paths).__name__ if not isinstance(paths, list) else "a list with non-text entries"
            raise StoreError(
                f"{shown}/paths.json: expected a list of {meta.count} image paths (text), found {found}; "
                "delete the store and extract again"
            )
        feats = mapped_feats(path / "feats.npy", f"{shown}/feats.npy")
        if feats.dtype != np.float32 or feats.shape != (meta.count, meta.dim) or len(paths) != meta.count:
            raise StoreError(
                f"{shown}: damaged feature store: meta says {meta.count} x {meta.dim}, feats.npy is "
                f"{tuple(feats.shape)} {feats.dtype}, {len(paths)} paths; delete it and extract again"
            )
        meta = verified_meta(path, raw, meta, feats, paths)
        stamps = read_stamps(path)
        return cls(path, meta, feats, paths, stamps)

    def check_backbone(self, backbone: str, dim: int) -> None:
        """Refuse to mix features of different backbones."""
        if self.meta.dim != dim or (self.meta.backbone and self.meta.backbone != backbone):
            raise StoreError(
                f"{display_path(self.path)}: store holds {self.meta.dim}-d features from backbone "
                f"{self.meta.backbone!r}, but backbone {backbone!r} makes {dim}-d features; "
                "extract the images again with this backbone or pick the store's backbone"
            )


def check_store_target(path: Path | str, flag: str = "--out") -> Path:
    """``path`` as an absolute folder a store may be written to, or a one-line error: a store replaces only a
    store (or an empty folder), so no folder a user owns (their images, a project) is ever deleted.

    Raises:
        StoreError: ``path`` is a file, or a folder holding anything but a feature store.
    """
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise StoreError(f"{display_path(path)}: {flag} is a file, not a folder; choose a new folder for the store")
    if path.is_dir() and not _is_store(path) and any(path.iterdir()):
        raise StoreError(
            f"{display_path(path)}: {flag} is a folder that already holds files and is not a feature store; nothing "
            "was written or removed; choose a new (or empty) folder"
        )
    return path


def _is_store(path: Path) -> bool:
    try:
        meta = json.loads((path / "meta.json").read_text())
        return meta.get("format") == STORE_FORMAT or ("backbone" in meta and (path / "paths.json").is_file())
    except (OSError, ValueError, AttributeError):
        return False


def write_store(
    path: Path | str,
    feats: np.ndarray | Iterable[np.ndarray],
    paths: list[str],
    backbone: str,
    image_root: Path | str | None = None,
    source: str = "",
    stamps: dict[str, str] | None = None,
    captions: dict[str, str] | None = None,
    urls: dict[str, str] | None = None,
) -> FeatureStore:
    """Write a store atomically (a temporary folder renamed into place) and return it opened.

    Args:
        feats: float32 [N, d], or blocks of rows (a list, or a generator that makes them one at a time: a store
            larger than RAM is written in constant memory).
        paths: N image paths, relative to ``image_root``.
        stamps: "size:mtime_ns" per path, when the images are files (extraction re-embeds what changed).
        captions: a caption per path (optional; shown with results).
        urls: a source URL per path (optional; shown with results).

    Raises:
        StoreError: a feature row holds NaN or inf, or ``path`` holds something other than a store (nothing is
            written).
    """
    path = check_store_target(path, "the store folder")
    blocks = iter([feats] if isinstance(feats, np.ndarray) else feats)
    first = next(blocks, None)
    dim = first.shape[1] if first is not None else 0
    blocks = itertools.chain([first] if first is not None else [], blocks)
    count = len(paths)
    tmp = temp_sibling(path)
    tmp.mkdir(parents=True)
    try:
        out = np.lib.format.open_memmap(tmp / "feats.npy", mode="w+", dtype=np.float32, shape=(count, dim))
        row = 0
        for block in blocks:
            for i in range(0, block.shape[0], CHUNK):
                part = np.asarray(block[i : i + CHUNK], dtype=np.float32)
                if not np.isfinite(part).all():
                    bad = row + int(np.flatnonzero(~np.isfinite(part).all(axis=1))[0])
                    raise StoreError(
                        f"{source or display_path(path)}: feature row {bad} ({paths[bad]}) holds NaN or inf; "
                        "the features are broken (re-extract them)"
                    )
                if row + part.shape[0] > count:
                    raise ValueError(f"more feature rows than the {count} paths")
                out[row : row + part.shape[0]] = part
                row += part.shape[0]
        if row != count:
            raise ValueError(f"{row} feature rows but {count} paths")
        out.flush()
        checksum = checksum_of(out, paths)
        del out
        (tmp / "paths.json").write_text(json.dumps(paths))
        if stamps:
            (tmp / "stamps.json").write_text(json.dumps(stamps))
        if captions:
            (tmp / "captions.json").write_text(json.dumps({p: captions[p] for p in paths if p in captions}))
        if urls:
            (tmp / "urls.json").write_text(json.dumps({p: urls[p] for p in paths if p in urls}))
        meta = StoreMeta(backbone, int(dim), int(count), checksum, str(image_root or ""), source)
        record = {"format": STORE_FORMAT, **meta.__dict__, "data_stamp": data_stamp(tmp)}
        (tmp / "meta.json").write_text(json.dumps(record, indent=1))
        clean_stale_temps(path.parent)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FeatureStore.open(path)


def converted_store_path(pth: Path) -> Path:
    """Where a released ``.pth`` is converted to: ``feats/clip/laion_subset.pth`` -> ``....store`` beside it, or,
    when that folder is read-only, a folder in the cache named after the file's absolute path."""
    beside = pth.with_suffix(".store")
    if (beside / "meta.json").is_file() or is_writable_dir(pth.parent):
        return beside
    key = hashlib.sha256(str(pth.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "stores" / f"{pth.stem}-{key}.store"


def resolve_store(path: Path | str, backbone: str = "", image_root: Path | str | None = None) -> Path:
    """A store folder for ``path``: the folder itself, or a released ``.pth`` converted once (and reused while
    the ``.pth`` is unchanged)."""
    path = Path(path)
    if path.suffix != ".pth":
        return path
    out = converted_store_path(path)
    stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}:v{CONVERTER_VERSION}" if path.is_file() else ""
    if (out / "meta.json").is_file():
        meta = json.loads((out / "meta.json").read_text())
        if meta.get("source_stamp") == stamp or not path.is_file():
            return out
    if not path.is_file():
        raise StoreError(f"{display_path(path)}: released features file not found")
    import_released_feats(path, out, backbone=backbone or path.parent.name, image_root=image_root)
    meta_file = out / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["source_stamp"] = stamp
    atomic_write_json(meta_file, meta)
    log.info("%s: converted once into the store %s", display_path(path), display_path(out))
    return out


def import_released_feats(
    pth: Path | str, out: Path | str, backbone: str, image_root: Path | str | None = None
) -> FeatureStore:
    """Convert a released ``{"feats": float32 [N, d], "paths": [N names]}`` file into a store.

    The released paths name PNGs in ``dataset/laion_subset``; like the original demo, the store points at the
    JPEG copies (``dataset/laion_subset_jpeg``, same names with ``.jpg``) when ``image_root`` is not given.
    """
    pth = Path(pth)
    shown = display_path(pth)
    state = load_checkpoint(pth, "features file")
    if not isinstance(state, dict) or "feats" not in state or "paths" not in state:
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise StoreError(f"{shown}: not a released features file: expected keys ['feats', 'paths'], found {found}")
    feats, paths = state["feats"], state["paths"]
    if not hasattr(feats, "shape") or len(feats.shape) != 2:
        raise StoreError(f"{shown}: 'feats' must be a 2-d tensor [N, d]")
    if len(paths) != feats.shape[0]:
        raise StoreError(f"{shown}: {feats.shape[0]} feature rows but {len(paths)} paths")
    if feats.shape[0] == 0:
        raise StoreError(f"{shown}: the features file has no rows (an empty or truncated download?)")
    if image_root is None:
        image_root = project_root() / "dataset" / "laion_subset_jpeg"
    paths = names_in_image_folder([str(p) for p in paths], Path(image_root))
    arr = feats.float().numpy() if hasattr(feats, "numpy") else np.asarray(feats, dtype=np.float32)
    return write_store(out, arr, [str(p) for p in paths], backbone, image_root, source=str(pth))


def names_in_image_folder(names: list[str], image_root: Path, probe: int = 16) -> list[str]:
    """The released names as they are in ``image_root``: the features name PNGs (``dataset/laion_subset``), while
    the JPEG folder (``dataset/laion_subset_jpeg``) holds the same names with ``.jpg``.

    The names become ``.jpg`` when the folder holds the ``.jpg`` files and not the ``.png`` ones (probed on a few
    names), or, before the images are downloaded, when the folder is named as a JPEG folder.
    """
    pngs = [n for n in names if n.lower().endswith(".png")]
    if not pngs:
        return names
    step = max(1, len(pngs) // probe)
    sample = pngs[::step][:probe]
    as_png = sum((image_root / n).is_file() for n in sample)
    as_jpg = sum((image_root / _png_to_jpg(n)).is_file() for n in sample)
    jpeg_folder = as_jpg > as_png or (as_jpg == as_png == 0 and "jp" in image_root.name.lower())
    return [_png_to_jpg(n) for n in names] if jpeg_folder else names


def _png_to_jpg(name: str) -> str:
    return name[: -len(".png")] + ".jpg" if name.lower().endswith(".png") else name
