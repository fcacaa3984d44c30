"""Approximate kinds held in RAM: ``ivf`` (inverted lists of float32 vectors; GPU FAISS when installed) and
``hnsw`` (a graph). Their calibrated search grows FAISS's top-K until it reaches the mass threshold."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ...core.progress import Tracker
from ..registry import IndexKind, Param, nlist_for, register_index_kind
from .flat import add_in_chunks

log = logging.getLogger(__name__)

NPROBE = Param("nprobe", int, "ivf/ivfpq: inverted lists visited per query (query time: no rebuild)", query_time=True)


@register_index_kind
class IVFIndex(IndexKind):
    """FAISS ``IndexIVFFlat``: k-means lists of float32 vectors, ``nprobe`` of them visited per query."""

    name = "ivf"
    summary = "ivf (approximate, in RAM)"
    params = (Param("nlist", int, "ivf: inverted lists (default 2·√N)"), NPROBE)
    devices = ("cpu", "cuda")

    def __init__(self, index: faiss.Index, params: dict, path: Path | None = None, device=None, *rest) -> None:
        if device is not None and device.type == "cuda":
            if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
                index = faiss.index_cpu_to_all_gpus(index)
            else:
                log.info("this FAISS build has no GPU support: the ivf index searches on the CPU")
        super().__init__(index, params, path, device, *rest)

    @classmethod
    def default_params(cls, n: int, d: int) -> dict:
        nlist = nlist_for(n, 2)
        return {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 32))}

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        nb, d = xb.shape
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
        n_train = 64 * int(params["nlist"])  # faiss wants >= 39 per centroid; more only slows training
        rng = np.random.default_rng(0)
        sample = xb if nb <= n_train else xb[np.sort(rng.choice(nb, n_train, replace=False))]
        index.cp.seed = 0
        index.cp.niter = 20
        index.train(np.ascontiguousarray(sample))
        return add_in_chunks(index, xb, cls.name, progress)

    def apply_param(self, name: str, value: Any) -> None:
        if name == "nprobe":
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = min(int(value), int(ivf.nlist))

    def all_scores(self, q: np.ndarray) -> np.ndarray:
        """Every list visited: a range search with no lower bound."""
        ivf = faiss.extract_index_ivf(self.index)
        keep = ivf.nprobe
        ivf.nprobe = ivf.nlist
        try:
            _, D, I = self.index.range_search(q[None], -math.inf)
        finally:
            ivf.nprobe = keep
        scores = np.full(self.ntotal, -np.inf, dtype=np.float32)
        scores[I] = D
        return scores


@register_index_kind
class HNSWIndex(IndexKind):
    """FAISS ``IndexHNSWFlat``: a navigable small-world graph over float32 vectors."""

    name = "hnsw"
    summary = "hnsw (approximate, in RAM)"
    params = (
        Param("M", int, "hnsw: graph neighbours per node", default=32),
        Param("efConstruction", int, "hnsw: candidate list while building", default=80),
        Param("efSearch", int, "hnsw: candidate list per query (query time: no rebuild)", default=128, query_time=True),
    )

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        index = faiss.IndexHNSWFlat(xb.shape[1], int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params["efConstruction"])
        return add_in_chunks(index, xb, cls.name, progress)

    def apply_param(self, name: str, value: Any) -> None:
        if name == "efSearch":
            self.index.hnsw.efSearch = int(value)

    def widen(self, kk: int) -> None:
        self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, kk)

    def all_scores(self, q: np.ndarray) -> np.ndarray:
        storage = faiss.downcast_index(self.index.storage)
        xb = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)
        return xb @ q
