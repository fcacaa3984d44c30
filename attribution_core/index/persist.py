"""Saving, verifying and loading indexes; an index is rebuilt, never trusted, when anything it was built from
changed.

Where: ``STORE/index/<kind>-<head fingerprint>.faiss`` + ``.json`` for the store's own heads (identity or a space's
registered heads), and the cache (``~/.cache/attribution/indexes/``, capped in size) for ad-hoc heads or when
the store folder is read-only. Indexes are only ever read from those places, never from an upload.

What is checked on load (cheap; docs: README "Reliability"):

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

import faiss
import numpy as np

from ..errors import AttributionError
from ..fileio import atomic_path, atomic_write_json, clean_stale_temps, is_writable_dir
from ..heads import Heads, identity_heads, load_heads
from ..mapped import gather_rows
from ..paths import cache_dir, display_path
from ..store import FeatureStore
from .build import build_faiss, default_params, mapped_features
from .compressed import COMPRESSED_KINDS, decoded, layout_stale
from .linear_scores import factored, linear_scorer, norms_path, norms_stale, read_norms, write_norms
from .ondisk import (
    RESCORE_SOURCES,
    RescoreCopy,
    build_ondisk,
    default_ivfpq_params,
    read_ondisk,
    read_rescore_copy,
    rescore_copy_path,
    slots_path,
)
from .search import INDEX_KINDS, SEARCH_PARAMS, AttributionIndex, IndexMeta

log = logging.getLogger(__name__)

INDEX_FORMAT = "attribution-index/2"
SPOT_CHECK_ROWS = 16
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
    progress: bool = True,
    device: str = "cpu",
    cached: bool = False,
) -> AttributionIndex:
    """Build and save an index over ``store`` mapped by ``heads.real_head``."""
    if kind not in INDEX_KINDS:
        raise AttributionError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    requested = dict(params or {})  # what the user chose; a stale index is rebuilt with it (defaults recomputed)
    store.check_backbone(store.backbone, heads.in_dim)
    faiss_path, meta_path = index_paths(store, kind, heads, cached)
    faiss_path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(faiss_path.parent)
    if kind == "ivfpq":  # built shard by shard from the memory-mapped store, never all in RAM
        params = {**default_ivfpq_params(len(store), heads.dim), **(params or {})}
        if params["rescore"] not in RESCORE_SOURCES:
            raise AttributionError(
                f"rescore {params['rescore']!r}: candidates are rescored from one of {', '.join(RESCORE_SOURCES)}"
            )
        index = build_ondisk(store, rescorer(store, heads), faiss_path, params, progress)
    else:
        params = {**default_params(kind, len(store)), **(params or {})}
        index = build_faiss(mapped_features(store, heads, progress), kind, params, progress)
        with atomic_path(faiss_path) as tmp:
            faiss.write_index(index, str(tmp))
        if kind in COMPRESSED_KINDS and factored(heads.real_head):
            write_norms(faiss_path, store.feats, heads.real_head)  # before the record: no record, no index
    meta = IndexMeta(kind, store.checksum, store.backbone, heads.fingerprint(), heads.dim, len(store), params)
    record = {"format": INDEX_FORMAT, **asdict(meta), "requested": requested, "faiss_bytes": faiss_path.stat().st_size}
    atomic_write_json(meta_path, record)
    if faiss_path.is_relative_to(cache_dir()):
        prune_cache(cache_dir() / "indexes", keep=faiss_path)
    del index  # reopened memory-mapped, like a saved index: the vectors stay in the page cache, not the heap
    rescore = index_rescorer(store, heads, faiss_path, params)
    score_rows = index_scorer(store, heads, faiss_path, kind)
    return AttributionIndex(_read(faiss_path, kind), meta, faiss_path, device, rescore, score_rows)


def index_scorer(store: FeatureStore, heads: Heads, faiss_path: Path, kind: str, norms: np.ndarray | None = None):
    """How a compressed index scores its candidates under a linear head: from the rows' norms beside it
    (linear_scores.py; ``norms`` when already read); None elsewhere (the index then maps each candidate through the
    head)."""
    if kind not in COMPRESSED_KINDS or not factored(heads.real_head):
        return None
    if norms is None:
        norms = read_norms(faiss_path, len(store))
    if norms is None:
        raise AttributionError(f"{display_path(norms_path(faiss_path))}: missing or damaged; rebuild the index")
    return linear_scorer(store.feats, heads.real_head, norms)


def rescorer(store: FeatureStore, heads: Heads):
    """Rows -> their exact float32 vectors in the attribution space, from the memory-mapped store (the rows' pages
    are read together: see attribution_core/mapped.py)."""

    def rescore(rows: np.ndarray) -> np.ndarray:
        return heads.real_head.map_numpy(gather_rows(store.feats, rows))

    return rescore


def index_rescorer(store: FeatureStore, heads: Heads, faiss_path: Path, params: dict, copy: RescoreCopy | None = None):
    """Where an index's candidates are rescored from: the float16 copy beside an IVF-PQ index built with
    ``rescore: "float16"`` (``copy`` when already read), else the float32 store through the head (:func:`rescorer`)."""
    if params.get("rescore") != "float16":
        return rescorer(store, heads)
    if copy is None:
        copy = read_rescore_copy(faiss_path, len(store), heads.dim)
    if copy is None:
        raise AttributionError(f"{display_path(rescore_copy_path(faiss_path))}: missing or damaged; rebuild the index")
    return copy.rows


def _rescore_copy_stale(copy: RescoreCopy | None, store: FeatureStore, heads: Heads) -> str | None:
    """Why an IVF-PQ index's float16 rescoring copy cannot be used (missing, other shape, or a spot check of 16
    rows against the store mapped by the head now), or None."""
    if copy is None:
        return "its float16 rescoring copy is missing or of another shape"
    rows = _spot_rows(len(store))
    expected = heads.real_head.map_numpy(gather_rows(store.feats, rows))
    if not (np.abs(copy.rows(rows) - expected) <= 2**-10).all():
        return "its float16 rescoring copy does not hold the store's rows under these heads"
    return None


def _spot_rows(n: int) -> np.ndarray:
    """The rows a spot check compares: up to SPOT_CHECK_ROWS, evenly spaced from first to last."""
    return np.unique(np.linspace(0, n - 1, min(SPOT_CHECK_ROWS, n)).astype(np.int64))


def _read(faiss_path: Path, kind: str) -> faiss.Index:
    """Flat and scalar-quantised indexes are memory-mapped (their codes are not copied into the heap)."""
    if kind in ("flat", *COMPRESSED_KINDS):
        return faiss.read_index(str(faiss_path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    if kind == "ivfpq":
        return read_ondisk(faiss_path)
    return faiss.read_index(str(faiss_path))


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
    return layout_stale(kind, raw.get("params") or {})


def spot_check(
    index: faiss.Index, store: FeatureStore, heads: Heads, kind: str = "flat", params: dict | None = None
) -> bool:
    """Whether a few of the index's stored vectors equal the store's rows mapped by the real head now (compressed
    kinds: decoded with the layout in ``params``, within its recorded decoding error). IVF-PQ codes are lossy
    without a bound and their on-disk lists have no direct map: only the record is checked for them."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists):
        return True
    rows = _spot_rows(index.ntotal)
    if ivf is not None:
        ivf.make_direct_map()
    try:
        stored = np.stack([index.reconstruct(int(i)) for i in rows])
    except RuntimeError:
        return False
    expected = heads.real_head.map_numpy(gather_rows(store.feats, rows))
    tolerance = 1e-4
    if kind in COMPRESSED_KINDS:
        stored = decoded(kind, stored, params or {})
        tolerance = np.asarray((params or {})["err"]) + 1e-4
    return bool((np.abs(stored - expected) <= tolerance).all())


def load_index(
    store: FeatureStore,
    heads: Heads,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool = True,
    device: str = "cpu",
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
    search = {k: v for k, v in (params or {}).items() if k in SEARCH_PARAMS}
    build = {k: v for k, v in (params or {}).items() if k not in SEARCH_PARAMS}
    index, built = _load_or_build(store, heads, kind, rebuild, progress, device, cached, build)
    index.set_params(**search)
    return index, built


def _load_or_build(
    store: FeatureStore,
    heads: Heads,
    kind: str,
    rebuild: bool,
    progress: bool,
    device: str,
    cached: bool,
    params: dict,
) -> tuple[AttributionIndex, bool]:
    faiss_path, meta_path = index_paths(store, kind, heads, cached)
    raw = _read_meta(meta_path)
    if not rebuild and faiss_path.is_file():
        reason = _stale_reason(raw, faiss_path, store, heads, kind)
        if reason is None and any(raw["params"].get(k) != v for k, v in params.items()):
            reason = "it was built with other parameters"
        index = None
        if reason is None:
            try:
                index = _read(faiss_path, kind)
            except RuntimeError:
                reason = "FAISS cannot read the .faiss file (truncated or corrupt)"
        if index is not None and (index.ntotal != raw["count"] or index.d != raw["dim"]):
            reason = "the .faiss file holds another shape than its record"
        elif index is not None and not spot_check(index, store, heads, kind, raw["params"]):
            reason = "its vectors are not the store's rows under these heads (copied from elsewhere?)"
        copy = norms = None  # read once: checked here, then used by the loaded index
        if reason is None and raw["params"].get("rescore") == "float16":
            copy = read_rescore_copy(faiss_path, len(store), heads.dim)
            reason = _rescore_copy_stale(copy, store, heads)
        if reason is None and kind in COMPRESSED_KINDS and factored(heads.real_head):
            norms = read_norms(faiss_path, len(store))
            reason = norms_stale(norms, store.feats, heads.real_head, _spot_rows(len(store)))
        if reason is None:
            meta = IndexMeta(**{k: raw[k] for k in IndexMeta.__dataclass_fields__})
            os.utime(faiss_path)  # recently used: the cache keeps it longest
            rescore = index_rescorer(store, heads, faiss_path, meta.params, copy)
            score_rows = index_scorer(store, heads, faiss_path, kind, norms)
            return AttributionIndex(index, meta, faiss_path, device, rescore, score_rows), False
        log.warning("%s: rebuilding the index: %s", display_path(faiss_path), reason)
    if not params and raw is not None and isinstance(raw.get("requested"), dict):
        params = raw["requested"]  # a rebuild keeps what the user chose (e.g. --factory, --rescore)
    return build_index(store, heads, kind, params or None, progress=progress, device=device, cached=cached), True


def open_index(
    store_path: Path | str,
    mapper: Path | str | None = None,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool = True,
    device: str = "cpu",
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
        path.with_suffix(".ivfdata").unlink(missing_ok=True)
        rescore_copy_path(path).unlink(missing_ok=True)
        slots_path(path).unlink(missing_ok=True)
        norms_path(path).unlink(missing_ok=True)
