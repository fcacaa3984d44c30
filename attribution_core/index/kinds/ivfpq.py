"""``ivfpq``: IVF-PQ for stores larger than RAM, built shard by shard onto on-disk inverted lists, candidates
rescored exactly (from the store or a float16 copy beside the index; index/ondisk.py; docs/method.md §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ...core.errors import AttributionError
from ...core.paths import display_path
from ...core.progress import Tracker
from ...data.mapped import gather_rows
from ..ondisk import (
    MIN_DEFAULT_ROWS,
    RERANK,
    RESCORE_SOURCES,
    SHARD_ROWS,
    RescoreCopy,
    build_ondisk,
    default_ivfpq_params,
    read_ondisk,
    read_rescore_copy,
    rescore_copy_path,
    rescored_search,
    slots_path,
)
from ..registry import IndexKind, Param, StaleIndexError, register_index_kind, rescorer, spot_rows
from .ann import NPROBE


@register_index_kind
class IVFPQIndex(IndexKind):
    """FAISS IVF-PQ with ``OnDiskInvertedLists``: PQ codes find candidates, exact scores rank them."""

    name = "ivfpq"
    summary = "ivfpq (approximate, on disk, built in shards, rescored from the store)"
    params = (
        Param("factory", str, "ivfpq: a FAISS factory string (default IVF<4·sqrt(N)>,PQ<d/8>)"),
        Param("shard_rows", int, "ivfpq: store rows per build shard", default=SHARD_ROWS),
        Param(
            "rescore",
            str,
            "ivfpq: rescore candidates from the float32 store (default) or from a float16 copy of the mapped vectors "
            "written beside the index (half the bytes to keep in the page cache; scores within 2^-11)",
            default="store",
            choices=RESCORE_SOURCES,
        ),
        NPROBE,
        Param(
            "rerank",
            int,
            f"ivfpq: candidates rescored exactly from the store per result listed (default {RERANK})",
            default=RERANK,
            query_time=True,
        ),
    )
    rescored = True

    @classmethod
    def default_params(cls, n: int, d: int) -> dict:
        return default_ivfpq_params(n, d)

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        raise AttributionError("an ivfpq index is built from a store on disk (attribute index --kind ivfpq)")

    @classmethod
    def build(cls, store, heads, path: Path, params: dict, progress: bool | Tracker = True) -> dict:
        """Shard by shard from the memory-mapped store, never all in RAM; refused for a store too small to train
        the factory's quantisers (FAISS wants 39 training vectors per centroid)."""
        factory = params.get("factory")
        if factory is None:
            raise AttributionError(
                f"{display_path(store.path)}: {len(store):,} rows are too few for an ivfpq index (it is made for "
                f"stores larger than memory; its default quantisers train on {MIN_DEFAULT_ROWS:,} rows or more): use "
                "--kind flat (exact, and fast at this size) or sq8, or give a --factory"
            )
        needed = training_rows_needed(factory, heads.dim)
        if len(store) < needed:
            raise AttributionError(
                f"{display_path(store.path)}: {len(store):,} rows cannot train {factory} (it has {needed:,} "
                "centroids in a quantiser); use --kind flat or sq8, or a --factory with fewer lists or PQ bits"
            )
        build_ondisk(store, rescorer(store, heads), path, params, progress)
        return params

    @classmethod
    def read(cls, path: Path) -> faiss.Index:
        return read_ondisk(path)

    @classmethod
    def sidecars(cls, path: Path) -> tuple[Path, ...]:
        return (path.with_suffix(".ivfdata"), rescore_copy_path(path), slots_path(path))

    @classmethod
    def spot_check(cls, index, store, heads, params) -> bool:
        """PQ codes are lossy without a bound and on-disk lists have no direct map: only the record is checked
        (and the float16 copy, when there is one, in :meth:`open`)."""
        return True

    @classmethod
    def open(cls, index, path, store, heads, params, device):
        copy = None
        if params.get("rescore") == "float16":  # read once: checked here, then used by the loaded index
            copy = read_rescore_copy(path, len(store), heads.dim)
            reason = _rescore_copy_stale(copy, store, heads)
            if reason:
                raise StaleIndexError(reason)
        return cls.loaded(index, path, store, heads, params, device, copy)

    @classmethod
    def attach(cls, index, path, store, heads, params, device):
        copy = read_rescore_copy(path, len(store), heads.dim) if params.get("rescore") == "float16" else None
        if params.get("rescore") == "float16" and copy is None:
            raise AttributionError(f"{display_path(rescore_copy_path(path))}: missing or damaged; rebuild the index")
        return cls.loaded(index, path, store, heads, params, device, copy)

    @classmethod
    def loaded(cls, index, path, store, heads, params, device, copy: RescoreCopy | None) -> IVFPQIndex:
        """Candidates rescored from the float16 ``copy`` when there is one, else from the store through the head."""
        return cls(index, params, path, device, copy.rows if copy is not None else rescorer(store, heads))

    def apply_param(self, name: str, value: Any) -> None:
        if name == "nprobe":
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = min(int(value), int(ivf.nlist))

    def candidates(self, q, k, calibrator):
        return rescored_search(
            self.index, q, k, calibrator.threshold, self.rescore, int(self.params.get("rerank", RERANK))
        )


def training_rows_needed(factory: str, d: int) -> int:
    """The fewest rows FAISS can train ``factory`` on: one per coarse list and per PQ centroid."""
    try:
        index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise AttributionError(f"--factory {factory!r} is not a FAISS factory string FAISS accepts ({exc})") from None
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ksub = int(ivf.pq.ksub) if hasattr(ivf, "pq") else 1
    return max(int(ivf.nlist), ksub)


def _rescore_copy_stale(copy: RescoreCopy | None, store, heads) -> str | None:
    """Why an IVF-PQ index's float16 rescoring copy cannot be used (missing, other shape, or a spot check of 16
    rows against the store mapped by the head now), or None."""
    if copy is None:
        return "its float16 rescoring copy is missing or of another shape"
    rows = spot_rows(len(store))
    expected = heads.real_head.map_numpy(gather_rows(store.feats, rows))
    if not (np.abs(copy.rows(rows) - expected) <= 2**-10).all():
        return "its float16 rescoring copy does not hold the store's rows under these heads"
    return None
