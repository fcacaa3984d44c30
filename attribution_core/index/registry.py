"""Index kinds as registered parts (timm style): one class per kind declares its build and query-time parameters,
the devices it runs on and the files beside it, and implements build, load-and-verify and candidate search.

A loaded kind is what :class:`~attribution_core.index.search.AttributionIndex` searches with; the calibrated search
itself (top-K, mass, influence) is kind-neutral and lives there. Adding a kind is one module that subclasses
:class:`IndexKind` and calls :func:`register_index_kind` (the built-in kinds are in ``index/kinds/``; a plug-in's
kind is registered the same way, from a module named in ``$ATTRIBUTION_PLUGINS``).

Array names follow faiss: ``xq`` queries [nq, d], ``xb`` database [nb, d], ``D`` scores, ``I`` row ids.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import faiss
import numpy as np

from ..core.errors import AttributionError
from ..core.fileio import atomic_path
from ..core.plugins import load_plugins
from ..core.progress import Tracker
from ..data.mapped import chunked_scores, gather_rows
from .head_mapped import mapped_features
from .param import Param

if TYPE_CHECKING:
    import torch

    from ..attribute.calibration import Calibrator
    from ..data.store import FeatureStore
    from ..heads import Heads

SPOT_CHECK_ROWS = 16
SPOT_CHECK_FAILED = "its vectors are not the store's rows under these heads (copied from elsewhere?)"

#: rows -> their exact float32 vectors [m, d] in the attribution space
Rescore = Callable[[np.ndarray], np.ndarray]
#: (rows [m] sorted, q [d]) -> their exact float32 scores [m]
ScoreRows = Callable[[np.ndarray, np.ndarray], np.ndarray]


class StaleIndexError(Exception):
    """A saved index that cannot be used as it is (the reason is logged and the index rebuilt)."""


class IndexKind(ABC):
    """A loaded index of one kind. Subclasses set ``name``, ``summary``, ``params`` and ``devices`` and implement
    :meth:`from_vectors` (or :meth:`build`); most override :meth:`candidates` or :meth:`all_scores_many`.

    Args (of the constructor, for an index already in memory):
        index: the FAISS index.
        params: its build and query-time parameters, as recorded (with any layout the build added).
        path: the ``.faiss`` file it was read from (None in memory).
        device: the resolved device it searches on (one of ``devices``).
        rescore: rows -> exact vectors, for kinds whose codes are approximate.
        score_rows: (rows, q) -> exact scores, when there is a faster way than ``rescore(rows) @ q``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for `attribute index --help`
    params: ClassVar[tuple[Param, ...]] = ()
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: the whole store is scored in one cheap pass: the calibrated search takes every score, never candidates
    exhaustive: ClassVar[bool] = False
    #: its codes are approximate: candidates are rescored exactly from the store (or a copy beside the index)
    rescored: ClassVar[bool] = False

    def __init__(
        self,
        index: faiss.Index,
        params: dict,
        path: Path | None = None,
        device: torch.device | None = None,
        rescore: Rescore | None = None,
        score_rows: ScoreRows | None = None,
    ):
        if self.rescored and rescore is None:
            raise AttributionError(f"a {self.name} index needs the float32 store to rescore its candidates")
        self.index = index
        self.params = dict(params)
        self.path = path
        self.device = device
        self.rescore = rescore
        self.score_rows = score_rows or (lambda rows, q: chunked_scores(self.rescore, rows, q))
        self.rescored_rows = 0  # rows rescored exactly by the last search (benchmarks report it)
        self.set_params(**{p.name: params[p.name] for p in self.query_params() if p.name in params})

    # --- what the kind declares ---------------------------------------------------------------------------

    @classmethod
    def build_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if not p.query_time)

    @classmethod
    def query_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if p.query_time)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` checked against the declared parameters; an unknown name is a one-line error."""
        known = {p.name: p for p in cls.params}
        for name in values:
            if name not in known:
                hint = f"; it takes {', '.join(known)}" if known else "; it takes none"
                raise AttributionError(f"{cls.name} index: unknown parameter {name!r}{hint}")
        return {name: known[name].parse(value, cls.name) for name, value in values.items()}

    @classmethod
    def default_params(cls, n: int, d: int) -> dict:
        """Build and query-time parameters for ``n`` vectors of dimension ``d`` (declared defaults)."""
        return {p.name: p.default for p in cls.params if p.default is not None}

    @classmethod
    def sidecars(cls, path: Path) -> tuple[Path, ...]:
        """Files written beside ``path`` (deleted with it when the cache is pruned)."""
        return ()

    # --- build ----------------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls, store: FeatureStore, heads: Heads, path: Path, params: dict, progress: bool | Tracker = True
    ) -> dict:
        """Write the index over ``store`` mapped by ``heads.real_head`` at ``path`` (and its sidecars); returns the
        parameters to record (``params`` with whatever layout the build measured)."""
        params = dict(params)
        index = cls.from_vectors(mapped_features(store, heads, progress), params, progress)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
        return params

    @classmethod
    @abstractmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        """A FAISS index over unit-norm ``xb`` [nb, d] (may add what it measured to ``params``); ``progress``: a
        terminal bar, or a :class:`~attribution_core.core.progress.Tracker` with a callback and a cancel flag."""

    # --- load and verify ------------------------------------------------------------------------------------

    @classmethod
    def read(cls, path: Path) -> faiss.Index:
        return faiss.read_index(str(path))

    @classmethod
    def stale_reason(cls, params: dict) -> str | None:
        """Why a saved record cannot serve this kind's code (an older layout), or None."""
        return None

    @classmethod
    def open(
        cls, index: faiss.Index, path: Path, store: FeatureStore, heads: Heads, params: dict, device: torch.device
    ) -> IndexKind:
        """The loaded index, verified against the store mapped by the heads now.

        Raises:
            StaleIndexError: it does not hold the store's rows under these heads (or a sidecar is missing or damaged).
        """
        if not cls.spot_check(index, store, heads, params):
            raise StaleIndexError(SPOT_CHECK_FAILED)
        return cls.attach(index, path, store, heads, params, device)

    @classmethod
    def attach(
        cls, index: faiss.Index, path: Path, store: FeatureStore, heads: Heads, params: dict, device: torch.device
    ) -> IndexKind:
        """The loaded index over ``store`` (rescoring from it where the kind needs to)."""
        return cls(index, params, path, device, rescorer(store, heads) if cls.rescored else None)

    @classmethod
    def spot_check(cls, index: faiss.Index, store: FeatureStore, heads: Heads, params: dict) -> bool:
        """Whether a few of the index's stored vectors equal the store's rows mapped by the real head now."""
        rows = spot_rows(index.ntotal)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.make_direct_map()
        try:
            stored = np.stack([index.reconstruct(int(i)) for i in rows])
        except RuntimeError:
            return False
        expected = heads.real_head.map_numpy(gather_rows(store.feats, rows))
        stored, tolerance = cls.decoded(stored, params)
        return bool((np.abs(stored - expected) <= tolerance).all())

    @classmethod
    def decoded(cls, stored: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray | float]:
        """Vectors as the codes represent them, from what FAISS reconstructs, and how far they may be off."""
        return stored, 1e-4

    # --- search ---------------------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def set_params(self, **values: Any) -> None:
        """Query-time knobs (declared with ``query_time``); no rebuild."""
        for name, value in self.parse_params(values).items():
            self.params[name] = value
            self.apply_param(name, value)

    def apply_param(self, name: str, value: Any) -> None:  # noqa: B027
        """Apply one checked query-time parameter to the FAISS index."""

    def all_scores_many(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of queries [nq, d] against every vector -> [nq, nb]."""
        return np.stack([self.all_scores(q) for q in xq])

    def all_scores(self, q: np.ndarray) -> np.ndarray:
        """Exact scores of one query [d] against every vector -> [nb] (default: rescored from the store)."""
        return self.score_rows(np.arange(self.ntotal), q)

    def candidates(
        self, q: np.ndarray, k: int, calibrator: Calibrator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Top-``k`` of unit query ``q`` [d] and the scores of every image with mass.

        The default grows FAISS's top-K until its last score is at or below the calibrator's threshold, so the
        influence is exact over every image the index finds.

        Returns:
            (D [k] scores, I [k] rows, mass: scores above the threshold, max score).
        """
        n = self.ntotal
        kk = max(k, 64)
        while True:
            self.widen(kk)
            D, I = self.index.search(q[None], kk)
            D, I = D[0], I[0]
            valid = I >= 0
            D, I = D[valid], I[valid]
            max_score = float(D[0])
            thr = calibrator.threshold(max_score)
            if D[-1] <= thr or kk >= n or valid.sum() < kk:
                break
            kk = min(n, kk * 4)
        return D[:k], I[:k], D[D > thr], max_score

    def widen(self, kk: int) -> None:  # noqa: B027
        """Make a search for ``kk`` results able to return them (e.g. HNSW's efSearch >= kk)."""


# --- the registry ------------------------------------------------------------------------------------------

_KINDS: dict[str, type[IndexKind]] = {}  # the built-ins register themselves when index/kinds/ is imported


def register_index_kind(cls: type[IndexKind]) -> type[IndexKind]:
    """Register an index kind under ``cls.name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set the class attribute 'name' to register")
    _KINDS[cls.name] = cls
    return cls


def list_index_kinds() -> list[str]:
    """Every registered index kind, built-ins first."""
    load_plugins()
    return list(_KINDS)


def get_index_kind(name: str) -> type[IndexKind]:
    """The kind registered as ``name``, or a one-line error listing the kinds."""
    load_plugins()
    try:
        return _KINDS[name]
    except KeyError:
        raise AttributionError(f"unknown index kind {name!r}; choose one of {', '.join(_KINDS)}") from None


def query_param_names() -> tuple[str, ...]:
    """Names of every registered kind's query-time parameters (changing one never rebuilds an index)."""
    return tuple(dict.fromkeys(p.name for cls in map(get_index_kind, list_index_kinds()) for p in cls.query_params()))


def default_params(kind: str, n: int, d: int = 0) -> dict:
    """The kind's build and query-time parameters for ``n`` vectors of dimension ``d``."""
    return get_index_kind(kind).default_params(n, d)


def build_faiss(xb: np.ndarray, kind: str, params: dict, progress: bool = True) -> faiss.Index:
    """A FAISS inner-product index of ``kind`` over unit-norm ``xb`` [nb, d], in memory (compressed kinds record
    their codes' layout and per-dimension decoding error in ``params``)."""
    return get_index_kind(kind).from_vectors(xb, params, progress)


def split_params(kind: type[IndexKind], values: dict[str, Any]) -> tuple[dict, dict]:
    """(build, query-time) parameters of ``values``, checked against ``kind``."""
    values = kind.parse_params(values)
    query = {p.name for p in kind.query_params()}
    return {k: v for k, v in values.items() if k not in query}, {k: v for k, v in values.items() if k in query}


# --- helpers the kinds share ---------------------------------------------------------------------------------


def spot_rows(n: int) -> np.ndarray:
    """The rows a spot check compares: up to SPOT_CHECK_ROWS, evenly spaced from first to last."""
    return np.unique(np.linspace(0, n - 1, min(SPOT_CHECK_ROWS, n)).astype(np.int64))


def rescorer(store: FeatureStore, heads: Heads) -> Rescore:
    """Rows -> their exact float32 vectors in the attribution space, from the memory-mapped store (the rows' pages
    are read together: see attribution_core/data/mapped.py)."""

    def rescore(rows: np.ndarray) -> np.ndarray:
        return heads.real_head.map_numpy(gather_rows(store.feats, rows))

    return rescore


def nlist_for(n: int, per_sqrt: float) -> int:
    """Inverted lists for ``n`` vectors: ``per_sqrt``·√n, at most n/39 (FAISS wants ≥ 39 training points a list)."""
    return max(1, min(int(per_sqrt * math.sqrt(n)), n // 39 if n >= 39 else 1))
