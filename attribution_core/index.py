"""FAISS inner-product indexes over head-mapped, L2-normalised store features; search and exact influence.

An index is saved beside its store (``STORE/index/<kind>-<head>.faiss`` + ``.json``). The JSON records the
store checksum, backbone and real-head fingerprint it was built from; when any differs the index is rebuilt,
never trusted. Indexes are only ever read from a store folder the user made, never from an upload.

Array names follow faiss: ``xq`` queries [nq, d], ``xb`` database [nb, d], ``D`` scores, ``I`` row ids.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from .calibration import Calibrator, influence_normaliser, influence_of
from .errors import AttributionError
from .fileio import atomic_path, atomic_write_json
from .heads import Heads, identity_heads, load_heads
from .store import FeatureStore

INDEX_KINDS = ("flat", "ivf", "hnsw")
INDEX_FORMAT = "attribution-index/1"


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


def default_params(kind: str, n: int) -> dict:
    """Sensible build/search parameters for ``n`` vectors."""
    if kind == "ivf":
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39 if n >= 39 else 1))
        return {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 32))}
    if kind == "hnsw":
        return {"M": 32, "efConstruction": 80, "efSearch": 128}
    return {}


class AttributionIndex:
    """A loaded index. ``search`` gives the top-K and exact calibrated influence for one query."""

    def __init__(self, index: faiss.Index, meta: IndexMeta, path: Path | None = None, device: str = "cpu"):
        """Wrap a FAISS index. ``device``: ``cpu``, ``cuda`` or ``auto`` (CUDA when torch sees a GPU)."""
        self.index = index
        self.meta = meta
        self.path = path
        self._xb: np.ndarray | None = None
        self._xb_gpu = None
        if device == "cuda" and not _cuda_available():
            raise AttributionError("--device cuda: no CUDA GPU is visible to torch on this machine; use --device cpu")
        use_gpu = device == "cuda" or (device == "auto" and _cuda_available())
        if meta.kind == "flat":
            # zero-copy view of the vectors: one BLAS pass gives every score exactly
            self._xb = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
            if use_gpu:
                import torch

                self._xb_gpu = torch.from_numpy(self._xb).to("cuda")
        elif meta.kind == "ivf" and use_gpu and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            self.index = faiss.index_cpu_to_all_gpus(index)  # GPU FAISS build present and a GPU visible
        self.set_params(**{k: v for k, v in meta.params.items() if k in ("nprobe", "efSearch")})

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def set_params(self, nprobe: int | None = None, efSearch: int | None = None) -> None:
        """Search-time accuracy/speed knobs of the ANN kinds."""
        if nprobe is not None and self.kind == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = int(nprobe)
        if efSearch is not None and self.kind == "hnsw":
            self.index.hnsw.efSearch = int(efSearch)

    def all_scores(self, xq: np.ndarray) -> np.ndarray:
        """Exact scores of one query [d] against every vector -> [nb]."""
        if self._xb_gpu is not None:
            import torch

            return (self._xb_gpu @ torch.from_numpy(xq).to(self._xb_gpu.device)).cpu().numpy()
        if self._xb is not None:
            return self._xb @ xq
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

    def search(self, xq: np.ndarray, k: int, calibrator: Calibrator) -> SearchResult:
        """Top-``k`` of one unit-norm query [d] and each one's calibrated influence over the whole corpus.

        Flat: one exact pass, partial selection, no sort of the corpus. ANN kinds: the top-K is grown until its
        last score is below the calibrator's threshold, so the influence is exact over every image the index
        finds (exact outright when b >= 0, which needs every score).
        """
        xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(-1)
        n = self.ntotal
        k = max(1, min(int(k), n))
        if self.kind == "flat" or calibrator.b >= 0:
            scores = self.all_scores(xq)
            top = _top_k(scores, k)
            max_score = float(scores[top[0]])
            mass = scores if calibrator.b >= 0 else scores[scores > calibrator.threshold(max_score)]
            D, I = scores[top], top
        else:
            D, I, mass, max_score = self._grown_search(xq, k, calibrator)
        z = influence_normaliser(mass, max_score, calibrator, n)
        infl = influence_of(D, max_score, calibrator, z)
        return SearchResult(
            I.astype(np.int64),
            D.astype(np.float32),
            infl,
            float(max(0.0, 1.0 - infl.sum())),
            int(np.count_nonzero(mass > calibrator.threshold(max_score))),
        )

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


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first, without sorting the whole array."""
    if k >= scores.shape[0]:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def index_paths(store: FeatureStore, kind: str, heads: Heads) -> tuple[Path, Path]:
    stem = store.path / "index" / f"{kind}-{heads.fingerprint()}"
    return stem.with_suffix(".faiss"), stem.with_suffix(".json")


def mapped_features(store: FeatureStore, heads: Heads, progress: bool = True) -> np.ndarray:
    """The store's features through the real head, unit-norm float32 [N, d] (chunked)."""
    n, chunk = len(store), 65536
    out = np.empty((n, heads.dim), dtype=np.float32)
    for i in tqdm(range(0, n, chunk), desc="map features", unit="chunk", disable=not progress or n <= chunk):
        out[i : i + chunk] = heads.real_head.map_numpy(store.feats[i : i + chunk])
    return out


def build_faiss(xb: np.ndarray, kind: str, params: dict, progress: bool = True) -> faiss.Index:
    """A FAISS inner-product index of ``kind`` over unit-norm ``xb`` [nb, d]."""
    nb, d = xb.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        n_train = 64 * int(params["nlist"])  # faiss wants >= 39 per centroid; more only slows training
        sample = xb if nb <= n_train else xb[np.sort(rng.choice(nb, n_train, replace=False))]
        index.cp.seed = 0
        index.cp.niter = 20
        index.train(np.ascontiguousarray(sample))
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params["efConstruction"])
    else:
        raise AttributionError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    step = 100_000
    for i in tqdm(range(0, nb, step), desc=f"index {kind}", unit="chunk", disable=not progress or nb <= step):
        index.add(np.ascontiguousarray(xb[i : i + step]))
    return index


def build_index(
    store: FeatureStore,
    heads: Heads,
    kind: str = "flat",
    params: dict | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> AttributionIndex:
    """Build and save an index over ``store`` mapped by ``heads.real_head``."""
    if kind not in INDEX_KINDS:
        raise AttributionError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    store.check_backbone(store.backbone, heads.in_dim)
    params = {**default_params(kind, len(store)), **(params or {})}
    index = build_faiss(mapped_features(store, heads, progress), kind, params, progress)
    meta = IndexMeta(kind, store.checksum, store.backbone, heads.fingerprint(), heads.dim, len(store), params)
    faiss_path, meta_path = index_paths(store, kind, heads)
    with atomic_path(faiss_path) as tmp:
        faiss.write_index(index, str(tmp))
    atomic_write_json(meta_path, {"format": INDEX_FORMAT, **asdict(meta)})
    return AttributionIndex(index, meta, faiss_path, device)


def load_index(
    store: FeatureStore,
    heads: Heads,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> tuple[AttributionIndex, bool]:
    """Load the saved index for (store, heads, kind), or build it when absent or stale.

    Returns:
        (index, built): ``built`` is True when it was (re)built now.
    """
    faiss_path, meta_path = index_paths(store, kind, heads)
    if not rebuild and faiss_path.is_file() and meta_path.is_file():
        try:
            raw = json.loads(meta_path.read_text())
            meta = IndexMeta(**{k: raw[k] for k in IndexMeta.__dataclass_fields__})
        except (ValueError, KeyError, TypeError):
            meta = None
        fresh = (
            meta is not None
            and raw.get("format") == INDEX_FORMAT
            and meta.kind == kind
            and meta.store_checksum == store.checksum
            and meta.backbone == store.backbone
            and meta.head == heads.fingerprint()
            and meta.count == len(store)
            and meta.dim == heads.dim
        )
        if fresh:
            index = faiss.read_index(str(faiss_path))
            if index.ntotal == meta.count and index.d == meta.dim:
                return AttributionIndex(index, meta, faiss_path, device), False
    return build_index(store, heads, kind, progress=progress, device=device), True


def open_index(
    store_path: Path | str,
    mapper: Path | str | None = None,
    kind: str = "flat",
    rebuild: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> tuple[AttributionIndex, bool]:
    """``attribute index``: the index of a store folder under a head checkpoint (identity when None)."""
    store = FeatureStore.open(store_path)
    heads = load_heads(mapper, store.dim) if mapper else identity_heads(store.dim)
    return load_index(store, heads, kind, rebuild=rebuild, progress=progress, device=device)
