"""Exact scores of store rows under a linear head, without mapping each row (docs/method.md §3).

A linear head maps a raw feature x to ``y = W x + b`` and the attribution space holds ``y / ‖y‖``; a query q
scores it ``q · y / ‖y‖ = (x · Wᵀq + b · q) / ‖y‖``. With ``‖y‖`` of every store row written beside a compressed
index when it is built (n float32: 4 MB per million rows), rescoring a candidate is one d-length dot product
instead of the head's d×d product: ~830 candidates of a 1M × 512 tuned space took 15.5 ms through the head
(docs/benchmarks.md). For scattered candidates the sum is taken in float64, so a score differs from the float32
flat scan's by float32 rounding only (the norm's), which the bound in compressed.py already allows for. A long
contiguous run of rows (the whole store, when most of it lies within the bound) is summed in float32 in one pass
over the mapped rows, as the flat scan sums its own: a float64 copy of 1M × 1280 rows took ~7 s, this pass < 1 s.

Nothing in numpy, torch or FAISS rescores through a factored linear map, hence this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..core.fileio import atomic_path
from ..data.mapped import gather_rows, map_npy, mapped_scores
from ..heads import Head
from ..heads.linear import LinearHead

CHUNK = 65536


def norms_path(faiss_path: Path) -> Path:
    return faiss_path.with_suffix(".norms.npy")


def factored(head: Head) -> bool:
    """Whether candidates under ``head`` can be scored from the store and the rows' norms."""
    return isinstance(head, LinearHead)


@torch.inference_mode()
def head_norms(feats: np.ndarray, head: LinearHead) -> np.ndarray:
    """‖W x + b‖ of every row of ``feats`` [N, d] (memory-mapped is fine), float32 [N], in chunks."""
    out = np.empty(len(feats), dtype=np.float32)
    identity = head.is_identity()
    for i in range(0, len(feats), CHUNK):
        x = torch.from_numpy(np.array(feats[i : i + CHUNK], dtype=np.float32)).to(head.device)
        out[i : i + CHUNK] = torch.linalg.vector_norm(x if identity else head.mapper(x), dim=1).cpu().numpy()
    return out


def write_norms(faiss_path: Path, feats: np.ndarray, head: LinearHead) -> None:
    with atomic_path(norms_path(faiss_path), ".npy") as tmp:
        np.save(tmp, head_norms(feats, head))


def read_norms(faiss_path: Path, n: int) -> np.ndarray | None:
    """The norms beside an index, memory-mapped; None when missing or of another shape."""
    return map_npy(norms_path(faiss_path), (n,), np.float32)


def norms_stale(norms: np.ndarray | None, feats: np.ndarray, head: LinearHead, rows: np.ndarray) -> str | None:
    """Why the norms cannot be used (missing, or ``rows`` recomputed now differ), or None."""
    if norms is None:
        return "its row norms are missing or of another shape"
    expected = head_norms(gather_rows(feats, rows), head)
    if not np.allclose(np.asarray(norms[rows]), expected, rtol=1e-5, atol=0):
        return "its row norms do not match the store's rows under these heads"
    return None


def linear_scorer(
    feats: np.ndarray, head: LinearHead, norms: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(rows, q) -> exact scores`` of rows (sorted) of raw ``feats`` [N, d] (the store's, memory-mapped) under
    ``head``, against unit query ``q`` [d]; ``norms``: :func:`head_norms` of ``feats``."""
    weight = head.mapper.weight.detach().cpu().double().numpy()
    bias = head.mapper.bias.detach().cpu().double().numpy()

    def score(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        v = weight.T @ q.astype(np.float64)
        c = float(bias @ q.astype(np.float64))
        if len(rows) > CHUNK and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
            # a contiguous run (everything, in file order, when most of the store is near the query): one float32
            # pass over the mapped rows, no gathered copy and no float64 copy of them (1M x 1280: ~7 s -> <1 s)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            dots = mapped_scores(feats[lo:hi], v.astype(np.float32)[None])[0]
            return ((dots + c) / np.maximum(norms[lo:hi], 1e-12)).astype(np.float32)
        out = np.empty(len(rows), dtype=np.float32)
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i : i + CHUNK]
            out[i : i + CHUNK] = (gather_rows(feats, chunk) @ v + c) / np.maximum(norms[chunk], 1e-12)
        return out

    return score
