"""What is checked when a feature store is opened (store.py): every field of ``meta.json`` and ``paths.json`` for
its type, ``feats.npy`` as a float32 array (never unpickled), the optional per-path files, and the checksum, which
is recomputed when the data files changed behind the store's back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import StoreError
from ..core.fileio import atomic_write_json

CHUNK = 65536

log = logging.getLogger("attribution_core.data.store")


@dataclass(frozen=True)
class StoreMeta:
    """What a store records about itself; checked on every open."""

    backbone: str  # backbone name the features came from
    dim: int  # feature dimension d
    count: int  # number of images N
    checksum: str  # sha256 over the features and paths
    image_root: str  # folder the paths are relative to ("" when unknown)
    source: str = ""  # where the features came from (a folder, a .pth file)


#: Fields of ``meta.json`` and their types; ``source`` may be absent.
META_FIELDS = {"backbone": str, "dim": int, "count": int, "checksum": str, "image_root": str, "source": str}


def checked_meta(raw: dict, shown: str) -> dict:
    """The fields of the store's record, each checked for its type (one error naming the file and the field)."""
    for name, kind in META_FIELDS.items():
        if name not in raw:
            if name == "source":
                continue
            raise StoreError(f"{shown}: field {name!r} is missing; delete the store and extract again")
        value = raw[name]
        wrong = not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < (name == "dim")))
        if wrong:
            want = "a non-negative integer" if kind is int else "text"
            raise StoreError(f"{shown}: field {name!r} is {value!r}, not {want}; delete the store and extract again")
    return {k: raw[k] for k in META_FIELDS if k in raw}


def mapped_feats(file: Path, shown: str) -> np.ndarray:
    """``feats.npy`` memory-mapped, or one error that says what it is not (never numpy's pickle advice)."""
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"{shown}: missing; delete the store and extract again") from None
    except (OSError, ValueError):
        raise StoreError(
            f"{shown}: not a feature file (a .npy array of float32 features); delete the store and extract again"
        ) from None


def data_stamp(path: Path) -> str:
    """Size and modification time of a store's data files: cheap to read, changes whenever the data is rewritten."""
    parts = []
    for name in ("feats.npy", "paths.json"):
        st = (path / name).stat()
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return "/".join(parts)


def verified_meta(path: Path, raw: dict, meta: StoreMeta, feats: np.ndarray, paths: list[str]) -> StoreMeta:
    """The store's checksum, re-computed when its data files changed since it was written (stamp differs).

    What is checked on open: the stamp (size + mtime of ``feats.npy`` and ``paths.json``) against the one recorded
    in ``meta.json``; only when it differs are the data hashed again. A changed checksum is recorded (when the
    folder is writable), so every index built over the old data is seen as stale and rebuilt.
    """
    stamp = data_stamp(path)
    if raw.get("data_stamp") == stamp:
        return meta
    if "data_stamp" in raw:  # written by this library, then changed behind its back
        checksum = checksum_of(feats, paths)
        if checksum != meta.checksum:
            log.warning("%s: the store's data changed since it was written; indexes over it will be rebuilt", path)
            meta = dataclasses.replace(meta, checksum=checksum)
    try:
        atomic_write_json(path / "meta.json", {**raw, **meta.__dict__, "data_stamp": stamp})
    except OSError:
        pass  # a read-only store: verified in memory, each time it is opened
    return meta


def read_stamps(path: Path) -> dict[str, str]:
    return read_optional(path / "stamps.json")


def read_optional(file: Path) -> dict[str, str]:
    """An optional ``{path: text}`` JSON file of a store (stamps, captions); empty when absent or unreadable."""
    if not file.is_file():
        return {}
    try:
        values = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items() if isinstance(v, str)}  # a damaged entry is dropped, not shown


def checksum_of(feats: np.ndarray, paths: list[str]) -> str:
    """sha256 over the feature bytes (in chunks, so a memory map is not loaded whole) and the paths."""
    h = hashlib.sha256()
    h.update(f"{feats.shape}".encode())
    for i in range(0, feats.shape[0], CHUNK):
        h.update(np.ascontiguousarray(feats[i : i + CHUNK], dtype=np.float32).tobytes())
    h.update("\n".join(paths).encode())
    return h.hexdigest()
