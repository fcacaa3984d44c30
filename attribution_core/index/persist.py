"""Saving, verifying and loading indexes; an index is rebuilt, never trusted, when anything it was built from
changed.

Where: ``STORE/index/<kind>-<head fingerprint>.faiss`` + ``.json`` for the store's own heads (identity or a space's
registered heads), and the cache (``~/.cache/attribution/indexes/``, capped in size) for ad-hoc heads or when
the store folder is read-only. Indexes are only ever read from those places, never from an upload.

What is checked on load (cheap; docs/reliability.md):

- the JSON is an object of the current format, and records the store checksum (which the store itself re-checks
  when its files' size or mtime change), backbone, head fingerprint (type and weights), count and dimension;
- the ``.faiss`` file's size is the one written;
- a spot check: 16 evenly spaced rows of the store, mapped by the real head now, equal the vectors stored in the
  index (catches an index copied in from another head or store, and damaged data);
- a ``.faiss`` file FAISS cannot read (truncated, corrupt) is rebuilt like a stale one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import torch

from ..core.device import DEFAULT_DEVICE, resolve_device
from ..core.fileio import atomic_write_json, clean_stale_temps, is_writable_dir
from ..core.paths import cache_dir, display_path
from ..core.progress import Tracker
from ..data.store import FeatureStore
from ..heads import Heads, identity_heads, load_heads
from .registry import IndexKind, StaleIndexError, get_index_kind, list_index_kinds, split_params
from .search import AttributionIndex, IndexMeta

log = logging.getLogger(__name__)

INDEX_FORMAT = "attribution-index/2"
CACHE_MAX_ENV = "ATTRIBUTION_CACHE_MAX_GB"
CACHE_MAX_GB = 20.0


def index_dir(store: FeatureStore, cached: bool = False) -> Path:
    """Where the store's indexes go: beside it, or (ad-hoc heads, read-only store) in the cache."""
    if not cached and is_writable_dir(store.path):
        return store.path / "index"
    return cache_dir() / "indexes" / f"{store.path.name}-{store.checksum[:16]}"


def index_paths(store: FeatureStore, kind: str, heads: Heads, cached: bool = False) -> tuple[Path, Path]:
    stem = index_dir(store, cached) / f"{kind}-{heads.fingerprint()}"
    return stem.with_suffix(".faiss"), stem.with_suffix(".json")


def build_index(
    store: FeatureStore,
    heads: Heads,
    kind: str = "flat",
    params: dict | None = None,
    progress: bool | Tracker = True,
    device: str = DEFAULT_DEVICE,
    cached: bool = False,
) -> AttributionIndex:
    """Build and save an index of a registered ``kind`` over ``store`` mapped by ``heads.real_head``.

    Args:
        params: the kind's build parameters (its defaults for this store fill the rest) and query-time ones.
        progress: a terminal bar, or a :class:`~attribution_core.core.progress.Tracker` (callback and cancel flag).
    """
    cls = get_index_kind(kind)
    device = index_device(cls, device)  # checked before any work
    build, query = split_params(cls, dict(params or {}))
    requested = dict(build)  # what the user chose; a stale index is rebuilt with it (defaults recomputed)
    store.check_backbone(store.backbone, heads.in_dim)
    faiss_path, meta_path = index_paths(store, kind, heads, cached)
    faiss_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(faiss_path.parent)
    params = cls.build(store, heads, faiss_path, {**cls.default_params(len(store), heads.dim), **build}, progress)
    meta = IndexMeta(kind, store.checksum, store.backbone, heads.fingerprint(), heads.dim, len(store), params)
    record = {"format": INDEX_FORMAT, **asdict(meta), "requested": requested, "faiss_bytes": faiss_path.stat().st_size}
    atomic_write_json(meta_path, record)
    if faiss_path.is_relative_to(cache_dir()):
        prune_cache(cache_dir() / "indexes", keep=faiss_path)
    # reopened memory-mapped, like a saved index: the vectors stay in the page cache, not the heap
    loaded = cls.attach(cls.read(faiss_path), faiss_path, store, heads, params, device)
    loaded.set_params(**query)
    return AttributionIndex(loaded, meta)


def index_device(cls: type[IndexKind], device: str | torch.device) -> torch.device:
    """The device a ``cls`` index searches on: the one asked for when the kind runs there, else the CPU (said)."""
    resolved = resolve_device(device)
    if resolved.type not in cls.devices:
        if str(device) != DEFAULT_DEVICE:
            log.info("%s indexes search on %s only: this one searches on the CPU", cls.name, ", ".join(cls.devices))
        return resolve_device("cpu")
    return resolved


def _read_meta(meta_path: Path) -> dict | None:
    try:
        raw = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) and raw.get("format") == INDEX_FORMAT else None


def _stale_reason(raw: dict | None, faiss_path: Path, store: FeatureStore, heads: Heads, kind: str) -> str | None:
    """Why the saved index cannot be used, or None when its record fits (store, heads, kind)."""
    if raw is None:
        return "its record is missing, damaged or of an older format"
    want = {
        "kind": kind,
        "store_checksum": store.checksum,
        "backbone": store.backbone,
        "head": heads.fingerprint(),
        "count": len(store),
        "dim": heads.dim,
    }
    for key, value in want.items():
        if raw.get(key) != value:
            return f"its {key} differs (the store or heads changed)"
    if raw.get("faiss_bytes") != faiss_path.stat().st_size:
        return "the .faiss file is not the one written with its record"
    return get_index_kind(kind).stale_reason(raw.get("params") or {})


def load_index(
    store: FeatureStore,
    heads: Heads,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool | Tracker = True,
    device: str = DEFAULT_DEVICE,
    cached: bool = False,
    params: dict | None = None,
) -> tuple[AttributionIndex, bool]:
    """Load the saved index for (store, heads, kind), or build it when absent, stale or damaged.

    Args:
        cached: keep the index in the cache, not beside the store (heads that are not the store's own).
        params: build parameters (e.g. ``{"factory": "IVF4096,PQ64"}``): a saved index built otherwise is rebuilt;
            and query-time ones (``nprobe``, ``efSearch``, ``rerank``), which are set on the loaded index and
            never cause a rebuild.

    Returns:
        (index, built): ``built`` is True when it was (re)built now.
    """
    build, search = split_params(get_index_kind(kind), dict(params or {}))
    index, built = _load_or_build(store, heads, kind, rebuild, progress, device, cached, build)
    index.set_params(**search)
    return index, built


def _load_or_build(
    store: FeatureStore,
    heads: Heads,
    kind: str,
    rebuild: bool,
    progress: bool | Tracker,
    device: str,
    cached: bool,
    params: dict,
) -> tuple[AttributionIndex, bool]:
    cls = get_index_kind(kind)
    faiss_path, meta_path = index_paths(store, kind, heads, cached)
    raw = _read_meta(meta_path)
    if not rebuild and faiss_path.is_file():
        reason = _stale_reason(raw, faiss_path, store, heads, kind)
        if reason is None and any(raw["params"].get(k) != v for k, v in params.items()):
            reason = "it was built with other parameters"
        index = None
        if reason is None:
            try:
                index = cls.read(faiss_path)
            except RuntimeError:
                reason = "FAISS cannot read the .faiss file (truncated or corrupt)"
        if index is not None and (index.ntotal != raw["count"] or index.d != raw["dim"]):
            reason = "the .faiss file holds another shape than its record"
        if reason is None:
            try:
                loaded = cls.open(index, faiss_path, store, heads, raw["params"], index_device(cls, device))
            except StaleIndexError as exc:
                reason = str(exc)
        if reason is None:
            meta = IndexMeta(**{k: raw[k] for k in IndexMeta.__dataclass_fields__})
            os.utime(faiss_path)  # recently used: the cache keeps it longest
            return AttributionIndex(loaded, meta), False
        log.warning("%s: rebuilding the index: %s", display_path(faiss_path), reason)
    if raw is not None and isinstance(raw.get("requested"), dict):
        params = {**raw["requested"], **params}  # a rebuild keeps what the user chose (--factory …) unless changed
    return build_index(store, heads, kind, params or None, progress=progress, device=device, cached=cached), True


def open_index(
    store_path: Path | str,
    mapper: Path | str | None = None,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool = True,
    device: str = DEFAULT_DEVICE,
    params: dict | None = None,
) -> tuple[AttributionIndex, bool]:
    """``attribute index``: the index of a store folder under a head checkpoint (identity when None)."""
    store = FeatureStore.open(store_path)
    heads = load_heads(mapper, store.dim) if mapper else identity_heads(store.dim)
    return load_index(store, heads, kind, rebuild=rebuild, progress=progress, device=device, params=params)


def prune_cache(folder: Path, keep: Path | None = None) -> None:
    """Delete the least recently used cached indexes until the cache is under ``$ATTRIBUTION_CACHE_MAX_GB``."""
    limit = float(os.environ.get(CACHE_MAX_ENV, CACHE_MAX_GB)) * 2**30
    files = sorted(folder.glob("*/*.faiss"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for path in files:
        if total <= limit:
            break
        if path == keep:
            continue
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        for kind in list_index_kinds():
            for sidecar in get_index_kind(kind).sidecars(path):
                sidecar.unlink(missing_ok=True)
