"""Building FAISS indexes: the store's features through the real head, then flat | ivf | hnsw."""

from __future__ import annotations

import math

import faiss
import numpy as np
from tqdm.auto import tqdm

from ..errors import AttributionError
from ..heads import Heads
from ..paths import display_path
from ..store import FeatureStore
from .compressed import COMPRESSED_KINDS, build_compressed
from .search import INDEX_KINDS


def default_params(kind: str, n: int) -> dict:
    """Sensible build/search parameters for ``n`` vectors."""
    if kind == "ivf":
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39 if n >= 39 else 1))
        return {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 32))}
    if kind == "hnsw":
        return {"M": 32, "efConstruction": 80, "efSearch": 128}
    return {}


def mapped_features(store: FeatureStore, heads: Heads, progress: bool = True) -> np.ndarray:
    """The store's features through the real head, unit-norm float32 [N, d] (chunked)."""
    n, chunk = len(store), 65536
    out = np.empty((n, heads.dim), dtype=np.float32)
    for i in tqdm(range(0, n, chunk), desc="map features", unit="chunk", disable=not progress or n <= chunk):
        out[i : i + chunk] = heads.real_head.map_numpy(store.feats[i : i + chunk])
        if not np.isfinite(out[i : i + chunk]).all():
            bad = i + int(np.flatnonzero(~np.isfinite(out[i : i + chunk]).all(axis=1))[0])
            raise AttributionError(
                f"{display_path(store.path)}: row {bad} ({store.paths[bad]}) maps to NaN/inf under the heads "
                f"{heads.source}; the features or the heads are broken, nothing was indexed"
            )
    return out


def build_faiss(xb: np.ndarray, kind: str, params: dict, progress: bool = True) -> faiss.Index:
    """A FAISS inner-product index of ``kind`` over unit-norm ``xb`` [nb, d] (compressed kinds record their
    codes' layout and per-dimension decoding error in ``params``)."""
    nb, d = xb.shape
    if kind in COMPRESSED_KINDS:
        index, layout = build_compressed(xb, kind)
        params.update(layout)
        return index
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
