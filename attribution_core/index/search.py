"""A loaded FAISS index over head-mapped, L2-normalised store features: top-K search with exact calibrated
influence over the whole corpus (docs/method.md §3).

Array names follow faiss: ``xq`` queries [nq, d], ``xb`` database [nb, d], ``D`` scores, ``I`` row ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ..calibration import Calibrator, influence_normaliser, influence_of
from ..errors import AttributionError
from ..mapped import chunked_scores, map_tail, mapped_scores
from .compressed import COMPRESSED_KINDS, compressed_search
from .ondisk import RERANK, rescored_search

#: sq8/fp16: exact, over compressed codes (compressed.py); ivfpq: IVF-PQ on disk, rescored (ondisk.py).
INDEX_KINDS = ("flat", "sq8", "fp16", "ivf", "hnsw", "ivfpq")
RESCORED_KINDS = ("sq8", "fp16", "ivfpq")  # kinds that need the float32 store to rescore candidates
#: Query-time knobs: changing one never rebuilds an index (every other parameter is a build parameter).
SEARCH_PARAMS = ("nprobe", "efSearch", "rerank")


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built from; any mismatch on load means rebuild."""

    kind: str
    store_checksum: str
    backbone: str
    head: str  # real-head fingerprint
    dim: int
    count: int
    params: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    """Top-K of one query with exact calibrated influence over the whole corpus."""

    I: np.ndarray  # [k] row ids into the store, best first
    D: np.ndarray  # [k] cosine scores
    influence: np.ndarray  # [k] calibrated share of each listed image
    remaining_influence: float  # mass of everything not listed; influence.sum() + remaining == 1
    mass_count: int  # how many corpus images carry any mass


class AttributionIndex:
    """A loaded index. ``search`` gives the top-K and exact calibrated influence for one query."""

    def __init__(
        self,
        index: faiss.Index,
        meta: IndexMeta,
        path: Path | None = None,
        device: str = "cpu",
        rescore: Callable[[np.ndarray], np.ndarray] | None = None,
        score_rows: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ):
        """Wrap a FAISS index. ``device``: ``cpu``, ``cuda`` or ``auto`` (CUDA when torch sees a GPU).
        ``rescore``: rows -> exact float32 vectors (the compressed kinds rescore their candidates with it);
        ``score_rows``: (rows, q) -> exact scores, when there is a faster way than ``rescore(rows) @ q``."""
        self.index = index
        self.meta = meta
        self.path = path
        self.rescore = rescore
        self.score_rows = score_rows or (lambda rows, q: chunked_scores(self.rescore, rows, q))
        self.rescored = 0  # rows rescored exactly by the last compressed search (benchmarks report it)
        if meta.kind in RESCORED_KINDS and rescore is None:
            raise AttributionError(f"a {meta.kind} index needs the float32 store to rescore its candidates")
        self._xb: np.ndarray | None = None
        self._xb_gpu = None
        if device == "cuda" and not _cuda_available():
            raise AttributionError("--device cuda: no CUDA GPU is visible to torch on this machine; use --device cpu")
        use_gpu = device == "cuda" or (device == "auto" and _cuda_available())
        if meta.kind == "flat":
            # zero-copy view of the vectors: one BLAS pass gives every score exactly
            self._xb = _flat_vectors(index, path)
            if use_gpu:
                import torch

                self._xb_gpu = torch.from_numpy(self._xb).to("cuda")
        elif meta.kind == "ivf" and use_gpu and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            self.index = faiss.index_cpu_to_all_gpus(index)  # GPU FAISS build present and a GPU visible
        # the compressed kinds' per-dimension layout as arrays once, not converted from JSON lists per query
        self._scan_params = dict(meta.params)
        if meta.kind in COMPRESSED_KINDS:
            self._scan_params.update(
                {k: np.asarray(v, dtype=np.float64) for k, v in meta.params.items() if isinstance(v, list)}
            )
        self.rerank = RERANK  # unless the index's params say otherwise (set_params below)
        self.set_params(**{k: v for k, v in meta.params.items() if k in SEARCH_PARAMS})

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def set_params(self, nprobe: int | None = None, efSearch: int | None = None, rerank: int | None = None) -> None:
        """Search-time accuracy/speed knobs of the ANN kinds (no rebuild): ``nprobe`` inverted lists visited (ivf,
        ivfpq), ``efSearch`` (hnsw), ``rerank`` candidates rescored exactly per result wanted (ivfpq)."""
        for name, value in (("nprobe", nprobe), ("efSearch", efSearch), ("rerank", rerank)):
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise AttributionError(f"{name} must be a positive integer, not {value!r}")
        if nprobe is not None and self.kind in ("ivf", "ivfpq"):
            ivf = faiss.extract_index_ivf(self.index)
            ivf.nprobe = min(int(nprobe), int(ivf.nlist))
        if efSearch is not None and self.kind == "hnsw":
            self.index.hnsw.efSearch = int(efSearch)
        if rerank is not None:
            self.rerank = int(rerank)

    def all_scores(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of one query [d] against every vector -> [nb]."""
        if self._xb_gpu is not None:
            import torch

            return (self._xb_gpu @ torch.from_numpy(xq).to(self._xb_gpu.device)).cpu().numpy()
        if self._xb is not None:
            return mapped_scores(self._xb, xq[None])[0]
        if self.kind in RESCORED_KINDS:
            return self.score_rows(np.arange(self.ntotal), xq)  # from the rows' norms under a linear head
        if self.kind == "hnsw":
            storage = faiss.downcast_index(self.index.storage)
            xb = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)
            return xb @ xq
        ivf = faiss.extract_index_ivf(self.index)
        keep = ivf.nprobe
        ivf.nprobe = ivf.nlist
        try:
            _, D, I = self.index.range_search(xq[None], -math.inf)
        finally:
            ivf.nprobe = keep
        scores = np.full(self.ntotal, -np.inf, dtype=np.float32)
        scores[I] = D
        return scores

    def all_scores_many(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of several queries [nq, d] against every vector -> [nq, nb]: one matrix-matrix product
        for flat indexes (one pass over the vectors for the whole batch), else a pass per query."""
        if self._xb_gpu is not None:
            import torch

            return (torch.from_numpy(xq).to(self._xb_gpu.device) @ self._xb_gpu.T).cpu().numpy()
        if self._xb is not None:
            return mapped_scores(self._xb, xq)  # one pass over the (mapped, misaligned) vectors, no private copy
        return np.stack([self.all_scores(q) for q in xq])

    def search(self, xq: np.ndarray, k: int, calibrator: Calibrator) -> SearchResult:
        """Top-``k`` of one unit-norm query [d] and each one's calibrated influence over the whole corpus.

        Flat: one exact pass, partial selection, no sort of the corpus. ANN kinds: the top-K is grown until its
        last score is below the calibrator's threshold, so the influence is exact over every image the index
        finds (exact outright when b >= 0, which needs every score).
        """
        return self.search_many(np.asarray(xq).reshape(1, -1), [k], calibrator)[0]

    def search_many(self, xq: np.ndarray, ks: list[int], calibrator: Calibrator) -> list[SearchResult]:
        """:meth:`search` for a batch of queries [nq, d], each with its own k; exact kinds score the whole batch in
        one matrix-matrix product."""
        xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(len(ks), -1)
        n = self.ntotal
        ks = [max(1, min(int(k), n)) for k in ks]
        if self.kind == "flat" or calibrator.b >= 0:
            return [self._exact(scores, k, calibrator) for scores, k in zip(self.all_scores_many(xq), ks, strict=True)]
        out = []
        for q, k in zip(xq, ks, strict=True):
            if self.kind in COMPRESSED_KINDS:
                found = compressed_search(self.index, self.kind, q, k, calibrator, self._scan_params, self.score_rows)
                D, I, mass, max_score, self.rescored = found
            elif self.kind == "ivfpq":
                found = rescored_search(self.index, q, k, calibrator.threshold, self.rescore, self.rerank)
                D, I, mass, max_score = found
            else:
                D, I, mass, max_score = self._grown_search(q, k, calibrator)
            out.append(_result(D, I, mass, max_score, calibrator, n))
        return out

    def _exact(self, scores: np.ndarray, k: int, calibrator: Calibrator) -> SearchResult:
        top = _top_k(scores, k)
        max_score = float(scores[top[0]])
        mass = scores if calibrator.b >= 0 else scores[scores > calibrator.threshold(max_score)]
        return _result(scores[top], top, mass, max_score, calibrator, self.ntotal)

    def _grown_search(self, xq: np.ndarray, k: int, calibrator: Calibrator):
        n = self.ntotal
        kk = max(k, 64)
        while True:
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, kk)
            D, I = self.index.search(xq[None], kk)
            D, I = D[0], I[0]
            valid = I >= 0
            D, I = D[valid], I[valid]
            max_score = float(D[0])
            thr = calibrator.threshold(max_score)
            if D[-1] <= thr or kk >= n or valid.sum() < kk:
                break
            kk = min(n, kk * 4)
        return D[:k], I[:k], D[D > thr], max_score


def _result(
    D: np.ndarray, I: np.ndarray, mass: np.ndarray, max_score: float, calibrator: Calibrator, n: int
) -> SearchResult:
    z = influence_normaliser(mass, max_score, calibrator, n)
    infl = influence_of(D, max_score, calibrator, z)
    return SearchResult(
        I.astype(np.int64),
        D.astype(np.float32),
        infl,
        float(max(0.0, 1.0 - infl.sum())),
        int(np.count_nonzero(mass > calibrator.threshold(max_score))),
    )


def _flat_vectors(index: faiss.Index, path: Path | None) -> np.ndarray:
    """A flat index's vectors [nb, d] without a copy: numpy's memory map of the index file's tail when it holds the
    same vectors as the index (faster to fault in cold than FAISS's own mapping: see attribution_core/mapped.py),
    else FAISS's memory."""
    xb = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
    tail = map_tail(path, xb.shape) if path is not None and index.ntotal > 0 else None
    if tail is not None and np.array_equal(tail[0], xb[0]) and np.array_equal(tail[-1], xb[-1]):
        return tail
    return xb


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first, without sorting the whole array. Ties go to the lower
    index, so every index kind lists equal scores in the same order."""
    if k >= scores.shape[0]:
        return np.lexsort((np.arange(len(scores)), -scores))
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    above = np.flatnonzero(scores > kth)
    chosen = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -scores[chosen]))]
