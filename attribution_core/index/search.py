"""A loaded index over head-mapped, L2-normalised store features: top-K search with exact calibrated influence over
the whole corpus (docs/method.md §3), the same for every index kind (index/kind.py).

Array names follow faiss: ``xq`` queries [nq, d], ``xb`` database [nb, d], ``D`` scores, ``I`` row ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ..attribute.calibration import Calibrator, influence_normaliser, influence_of
from .registry import IndexKind, Rescore, ScoreRows, get_index_kind


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
    """A loaded index of any kind. ``search`` gives the top-K and exact calibrated influence for one query."""

    def __init__(self, loaded: IndexKind, meta: IndexMeta):
        self.loaded = loaded
        self.meta = meta

    @classmethod
    def in_memory(
        cls,
        index: faiss.Index,
        meta: IndexMeta,
        rescore: Rescore | None = None,
        score_rows: ScoreRows | None = None,
    ) -> AttributionIndex:
        """An index built in memory (``build_faiss``), searched on the CPU; ``rescore``/``score_rows`` for kinds
        that rescore their candidates."""
        return cls(get_index_kind(meta.kind)(index, meta.params, None, None, rescore, score_rows), meta)

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def index(self) -> faiss.Index:
        return self.loaded.index

    @property
    def path(self) -> Path | None:
        return self.loaded.path

    @property
    def ntotal(self) -> int:
        return self.loaded.ntotal

    @property
    def rescored(self) -> int:
        """Rows rescored exactly by the last search of a compressed kind (benchmarks report it)."""
        return self.loaded.rescored_rows

    def set_params(self, **values) -> None:
        """Query-time knobs the kind declares (``nprobe``, ``efSearch``, ``rerank``, …); no rebuild."""
        self.loaded.set_params(**values)

    def all_scores(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of one query [d] against every vector -> [nb]."""
        return self.loaded.all_scores(np.ascontiguousarray(xq, dtype=np.float32))

    def all_scores_many(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of several queries [nq, d] against every vector -> [nq, nb] (one pass for the batch on
        exhaustive kinds)."""
        return self.loaded.all_scores_many(np.ascontiguousarray(xq, dtype=np.float32))

    def search(self, xq: np.ndarray, k: int, calibrator: Calibrator) -> SearchResult:
        """Top-``k`` of one unit-norm query [d] and each one's calibrated influence over the whole corpus.

        Exhaustive kinds (flat): one exact pass, partial selection, no sort of the corpus. Other kinds: the kind's
        candidates, exact over every image with mass (exact outright when b >= 0, which needs every score).
        """
        return self.search_many(np.asarray(xq).reshape(1, -1), [k], calibrator)[0]

    def search_many(self, xq: np.ndarray, ks: list[int], calibrator: Calibrator) -> list[SearchResult]:
        """:meth:`search` for a batch of queries [nq, d], each with its own k; exhaustive kinds score the whole
        batch in one matrix-matrix product."""
        xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(len(ks), -1)
        n = self.ntotal
        ks = [max(1, min(int(k), n)) for k in ks]
        if self.loaded.exhaustive or calibrator.b >= 0:
            return [exact_result(s, k, calibrator) for s, k in zip(self.all_scores_many(xq), ks, strict=True)]
        out = []
        for q, k in zip(xq, ks, strict=True):
            D, I, mass, max_score = self.loaded.candidates(q, k, calibrator)
            out.append(_result(D, I, mass, max_score, calibrator, n))
        return out


def exact_result(scores: np.ndarray, k: int, calibrator: Calibrator) -> SearchResult:
    """Top-``k`` and calibrated influence from every score [nb] of one query."""
    top = _top_k(scores, k)
    max_score = float(scores[top[0]])
    mass = scores if calibrator.b >= 0 else scores[scores > calibrator.threshold(max_score)]
    return _result(scores[top], top, mass, max_score, calibrator, len(scores))


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


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first, without sorting the whole array. Ties go to the lower
    index, so every index kind lists equal scores in the same order."""
    if k >= scores.shape[0]:
        return np.lexsort((np.arange(len(scores)), -scores))
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    above = np.flatnonzero(scores > kth)
    chosen = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -scores[chosen]))]
