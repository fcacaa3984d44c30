"""Exact search over compressed codes (docs/method.md §3): scan 8-bit or float16 scalar-quantised vectors (FAISS
``IndexScalarQuantizer``: a quarter or half of float32's bytes), then rescore exactly, from the float32 store,
every candidate whose error bound could put it in the top-K or above the calibrator's mass threshold.

The bound: a stored vector decodes to x̃ = x + e with |e_i| ≤ E_i, where E_i is the largest error of dimension i
over the whole store, measured when the index is built. For a query q, |q·x − q·x̃| ≤ Σ_i |q_i| E_i + ε = δ(q),
ε covering float32 rounding of the two dot products (d · 2⁻²² is far above it for unit vectors). Then, with T the
K-th best approximate score and s_max the exact best score:

- a true top-K image has approximate score ≥ T − 2δ (the K best approximate ones are all ≥ T − δ exactly, so the
  K-th best exact score is too, and each true top-K image is within δ of its own approximation);
- an image with mass has exact score > threshold(s_max), so approximate score > threshold(s_max) − δ.

So scanning until the approximate list reaches below min(T − 2δ, threshold(s_max) − δ) and rescoring that list
gives the same top-K, scores and influences as the float32 scan. FAISS has the scan; the bound and the growing
rescoring loop around it are what this module adds.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from ..calibration import Calibrator

#: Compressed exact kinds and their FAISS scalar quantiser.
COMPRESSED_KINDS = {"sq8": "QT_8bit", "fp16": "QT_fp16"}
ROUNDING = 1e-4  # ε: float32 rounding of the approximate and exact dot products (unit vectors, d ≤ 4096)


def build_compressed(xb: np.ndarray, kind: str) -> tuple[faiss.Index, list[float]]:
    """The scalar-quantised index of ``xb`` [nb, d] and the largest decoding error of each dimension."""
    d = xb.shape[1]
    qtype = getattr(faiss.ScalarQuantizer, COMPRESSED_KINDS[kind])
    index = faiss.IndexScalarQuantizer(d, qtype, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(xb))  # the per-dimension ranges cover every vector: no clipping
    err = np.zeros(d, dtype=np.float64)
    for i in range(0, len(xb), 65536):
        chunk = np.ascontiguousarray(xb[i : i + 65536])
        index.add(chunk)
        decoded = index.sa_decode(index.sa_encode(chunk))
        err = np.maximum(err, np.abs(decoded.astype(np.float64) - chunk).max(axis=0))
    return index, err.tolist()


def error_bound(q: np.ndarray, err: np.ndarray) -> float:
    """δ(q): how far any approximate score can be from the exact one."""
    return float(np.abs(q).astype(np.float64) @ err) + ROUNDING


def compressed_search(
    index: faiss.Index,
    q: np.ndarray,
    k: int,
    calibrator: Calibrator,
    err: np.ndarray,
    rescore: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Exact top-``k`` of unit query ``q`` [d] and the exact scores of every image with mass.

    Args:
        rescore: rows [m] (sorted) -> their exact float32 vectors [m, d].

    Returns:
        (D [k] exact scores, I [k] rows, mass: exact scores above the threshold, max score, rows rescored).
    """
    n = index.ntotal
    delta = error_bound(q, err)
    kk = min(n, max(4 * k, 256))
    while True:
        approx, rows = index.search(q[None], kk)
        approx, rows = approx[0], rows[0]
        valid = rows >= 0
        approx, rows = approx[valid], rows[valid]
        order = np.argsort(rows)
        exact = np.empty(len(rows), dtype=np.float32)
        exact[order] = rescore(rows[order]) @ q
        s_max = float(exact.max())
        need = min(float(approx[min(k, len(approx)) - 1]) - 2 * delta, calibrator.threshold(s_max) - delta)
        if kk >= n or len(rows) < kk or float(approx[-1]) < need:
            break
        kk = min(n, kk * 4)
    top = np.lexsort((rows, -exact))[:k]  # ties: the lower row first, as the flat scan lists them
    thr = calibrator.threshold(s_max)
    return exact[top], rows[top], exact[exact > thr], s_max, len(rows)
