"""Exact search over compressed codes (docs/method.md §3): scan 8-bit or float16 codes (FAISS
``IndexScalarQuantizer``: a quarter or half of float32's bytes), then rescore exactly, from the float32 store,
every candidate whose error bound could put it in the top-K or above the calibrator's mass threshold.

8-bit codes are FAISS's *signed direct* codes (``QT_8bit_direct_signed``), laid out per dimension as
``x_i ≈ scale_i · c_i + offset_i`` with integer ``c_i`` in −128…127: the grid of FAISS's per-dimension 8-bit
quantiser. FAISS scans such codes with an integer product (AVX2 ``madd``), the query being integers too; so the
query is quantised here, ``q̂ = round(α · q ∘ scale)`` with α putting its largest component at 127, and
``q·x̃ = q̂·c / α + q·offset − e·c`` where ``e = q̂/α − q ∘ scale`` is known exactly. That scan was measured at
0.43–0.49× a float32 scan here, against 0.79× for ``QT_8bit``, which decodes every coordinate to float
(docs/benchmarks.md; ``benchmarks/scan_kernels.py``).

The bound: a stored vector decodes to x̃ = x + r with |r_i| ≤ E_i and ‖r‖ ≤ E₂, the largest errors over the whole
store, measured when the index is built. For a unit query q the approximate score is within
δ(q) = min(Σ_i |q_i| E_i, E₂) + [8-bit: min(Σ_i |e_i| cmax_i, ‖e‖ C₂)] + float rounding of the exact one
(cmax_i, C₂: the largest |c_i| and ‖c‖ over the store; :func:`scan_query`). Then, with T the K-th best
approximate score, a_max the best approximate score and s_max the exact best score:

- a true top-K image has approximate score ≥ T − 2δ (the K best approximate ones are all ≥ T − δ exactly, so the
  K-th best exact score is too, and each true top-K image is within δ of its own approximation); so has the best
  one (a_max ≥ T);
- an image with mass has exact score > threshold(s_max) ≥ threshold(a_max − δ) (the threshold grows with s_max,
  and s_max ≥ a_max − δ), so approximate score > threshold(a_max − δ) − δ.

So every image whose approximate score is at least min(T − 2δ, threshold(a_max − δ) − δ) is rescored, and that
gives the same top-K, scores and influences as the float32 scan. FAISS has the scan; the per-dimension layout,
the query's quantisation, the bound and the rescoring around it are what this module adds.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from ..attribute.calibration import Calibrator

#: Compressed exact kinds and their FAISS scalar quantiser.
COMPRESSED_KINDS = {"sq8": "QT_8bit_direct_signed", "fp16": "QT_fp16"}
#: What a compressed index records besides its codes (an index without them predates this layout: rebuilt).
LAYOUT_KEYS = {
    "sq8": ("err", "err_norm", "amax", "code_norm", "scale", "offset"),
    "fp16": ("err", "err_norm", "amax"),
}
CHUNK = 65536
#: Approximate rows fetched by the first scan, per result wanted (at least MIN_CANDIDATES): the scan's time hardly
#: depends on it (1M × 512: the same ±10% from 256 to 8,192), and a second, grown scan costs a whole scan again.
CANDIDATES_PER_RESULT = 32
MIN_CANDIDATES = 4096
U = 2.0**-24  # float32 unit roundoff


def build_compressed(xb: np.ndarray, kind: str) -> tuple[faiss.Index, dict]:
    """The scalar-quantised index of unit ``xb`` [nb, d] and what the bound needs: ``err``/``err_norm``, the largest
    decoding error per dimension and as a norm; ``amax``, the largest stored magnitude per dimension (8-bit: of the
    integer codes); 8-bit only: ``code_norm`` (largest ‖c‖), ``scale`` and ``offset``."""
    d = xb.shape[1]
    qtype = getattr(faiss.ScalarQuantizer, COMPRESSED_KINDS[kind])
    index = faiss.IndexScalarQuantizer(d, qtype, faiss.METRIC_INNER_PRODUCT)
    params: dict = {}
    if kind == "sq8":
        lo = np.min([xb[i : i + CHUNK].min(axis=0) for i in range(0, len(xb), CHUNK)], axis=0).astype(np.float64)
        hi = np.max([xb[i : i + CHUNK].max(axis=0) for i in range(0, len(xb), CHUNK)], axis=0).astype(np.float64)
        scale = np.where(hi > lo, (hi - lo) / 255, 1.0).astype(np.float32)  # 256 levels span each dimension's range
        offset = (lo + 128 * scale.astype(np.float64)).astype(np.float32)
        params.update(scale=scale.tolist(), offset=offset.tolist())
    else:
        index.train(np.ascontiguousarray(xb[:CHUNK]))  # float16 needs no training; FAISS wants the call
    err = np.zeros(d, dtype=np.float64)
    amax = np.zeros(d, dtype=np.float64)
    err_norm = code_norm = 0.0
    for i in range(0, len(xb), CHUNK):
        chunk = np.ascontiguousarray(xb[i : i + CHUNK])
        values = np.clip(np.rint((chunk - offset) / scale), -128, 127).astype(np.float32) if kind == "sq8" else chunk
        index.add(values)
        stored = index.sa_decode(index.sa_encode(values)).astype(np.float64)
        miss = (stored * scale + offset if kind == "sq8" else stored) - chunk
        err = np.maximum(err, np.abs(miss).max(axis=0))
        err_norm = max(err_norm, float(np.linalg.norm(miss, axis=1).max()))
        amax = np.maximum(amax, np.abs(stored).max(axis=0))
        code_norm = max(code_norm, float(np.linalg.norm(stored, axis=1).max()))
    params.update(err=err.tolist(), err_norm=err_norm, amax=amax.tolist())
    if kind == "sq8":
        params["code_norm"] = code_norm
    return index, params


def layout_stale(kind: str, params: dict) -> str | None:
    """Why a saved compressed index's record cannot serve this module (written by an older layout), or None."""
    missing = [key for key in LAYOUT_KEYS.get(kind, ()) if key not in params]
    return f"its {kind} codes are of an older layout (no {', '.join(missing)})" if missing else None


def decoded(kind: str, stored: np.ndarray, params: dict) -> np.ndarray:
    """Vectors [m, d] as the codes represent them, from what FAISS reconstructs (8-bit: the integer codes)."""
    if kind == "sq8":
        return stored * np.asarray(params["scale"], dtype=np.float32) + np.asarray(params["offset"], dtype=np.float32)
    return stored


def scan_query(kind: str, q: np.ndarray, params: dict) -> tuple[np.ndarray, float, float, float]:
    """What FAISS scans with for unit query ``q`` [d], and how to read its scores.

    Returns:
        (q_scan [d] float32, α, shift, δ): approximate score = FAISS score / α + shift, within δ of the exact one.
    """
    q64 = q.astype(np.float64)
    d = len(q)
    gamma = d * U / (1 - d * U)  # a float32 dot product of length d errs by ≤ γ_d Σ|a_i b_i| (Higham §3.1)
    decoding = min(float(np.abs(q64) @ np.asarray(params["err"])), float(np.linalg.norm(q64)) * params["err_norm"])
    exact_rounding = gamma  # the rescored score, a float32 dot product of unit vectors
    if kind != "sq8":
        scan_rounding = gamma * float(np.abs(q64) @ np.asarray(params["amax"]))
        return np.ascontiguousarray(q, dtype=np.float32), 1.0, 0.0, decoding + scan_rounding + exact_rounding + U
    scaled = q64 * np.asarray(params["scale"])
    peak = float(np.abs(scaled).max())
    alpha = 127.0 / peak if peak > 0 else 1.0
    q_int = np.rint(scaled * alpha)  # −127…127: FAISS multiplies integer codes by integer queries
    e = q_int / alpha - scaled
    amax = np.asarray(params["amax"])
    quantised_query = min(float(np.abs(e) @ amax), float(np.linalg.norm(e)) * params["code_norm"])
    scan_rounding = U * float(np.abs(q_int) @ amax) / alpha  # the integer sum is exact; its float conversion not
    shift = float(q64 @ np.asarray(params["offset"], dtype=np.float64))
    delta = decoding + quantised_query + scan_rounding + exact_rounding + U
    return q_int.astype(np.float32), alpha, shift, delta


def compressed_search(
    index: faiss.Index,
    kind: str,
    q: np.ndarray,
    k: int,
    calibrator: Calibrator,
    params: dict,
    score_rows: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Exact top-``k`` of unit query ``q`` [d] and the exact scores of every image with mass.

    Args:
        score_rows: (rows [m] sorted, q) -> their exact float32 scores [m] (from the store: through the head, or
            from the rows' norms under a linear head, linear_scores.py).

    Returns:
        (D [k] exact scores, I [k] rows, mass: exact scores above the threshold, max score, rows rescored).
    """
    n = index.ntotal
    q_scan, alpha, shift, delta = scan_query(kind, q, params)
    kk = min(n, max(CANDIDATES_PER_RESULT * k, MIN_CANDIDATES))
    while True:
        approx, rows = index.search(q_scan[None], kk)
        valid = rows[0] >= 0
        approx, rows = approx[0][valid].astype(np.float64) / alpha + shift, rows[0][valid]
        a_max = float(approx[0])
        need = min(float(approx[min(k, len(approx)) - 1]) - 2 * delta, calibrator.threshold(a_max - delta) - delta)
        if kk >= n or len(rows) < kk or float(approx[-1]) < need:
            candidates = np.sort(rows[approx >= need])
            break
        if kk * 4 > n // 4:  # a large share of the store is within the bound: score it all, in file order
            candidates = np.arange(n)
            break
        kk *= 4
    exact = score_rows(candidates, q)
    top = np.lexsort((candidates, -exact))[:k]  # ties: the lower row first, as the flat scan lists them
    s_max = float(exact[top[0]])
    thr = calibrator.threshold(s_max)
    return exact[top], candidates[top], exact[exact > thr], s_max, len(candidates)
