"""Measures of an attribution shared by the judges and by the methods' own training (docs/method.md §2, §9): recall@K
and AP of the true exemplars' ranks, FastGDA's AP(L) against a teacher's ranking, and the ranking kernels of the
AbC protocol (exemplar ranks by counting, never sorting the corpus; the calibrated mass on the exemplars). Plain
numpy/torch functions over arrays; ``judges.metrics`` builds the judges' tables on them.

An exemplar that ties exactly with a candidate is placed ahead of it (the original's argsort leaves such ties in
arbitrary order; with float scores they occur only for duplicate images).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .calibration import Calibrator


def recall_at(ranks: np.ndarray, k: int) -> float:
    """|exemplars in the top k| / |exemplars|."""
    return float(np.count_nonzero(ranks <= k) / len(ranks))


def average_precision(ranks: np.ndarray) -> float:
    """AP = (1/|E|) Σ_j j / r_j over the sorted 1-based exemplar ranks r_1 < r_2 < …"""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(np.mean(np.arange(1, len(r) + 1) / r))


def average_precision_at(teacher_rows: np.ndarray, student_scores: np.ndarray, top: int, tie_draws: int = 32) -> float:
    """FastGDA's AP(L): the teacher's top-``top`` rows are the positives; AP of the student's ranking of the whole
    training set (``student_scores`` [N]). Tied scores (a caption-only rule gives every image of one caption the
    same score) are ranked in ``tie_draws`` seeded random orders and the APs averaged: the expected AP, not the
    one that the data's order happens to give."""
    positives = np.zeros(len(student_scores), dtype=bool)
    positives[np.asarray(teacher_rows[:top])] = True
    scores = np.asarray(student_scores, dtype=np.float64)
    if len(np.unique(scores)) == len(scores):
        orders = [np.argsort(-scores, kind="stable")]
    else:
        rng = np.random.default_rng(0)
        orders = [np.lexsort((rng.random(len(scores)), -scores)) for _ in range(tie_draws)]
    aps = []
    for order in orders:
        ranks = np.flatnonzero(positives[order]) + 1
        aps.append(float((np.arange(1, len(ranks) + 1) / ranks).mean()) if len(ranks) else 0.0)
    return float(np.mean(aps))


def exemplar_ranks(
    xq: np.ndarray,
    xb: np.ndarray,
    ex_scores: Sequence[np.ndarray],
    batch_size: int = 256,
    chunk: int = 131072,
    progress: bool = False,
) -> list[np.ndarray]:
    """1-based ranks of each query's exemplars among corpus ∪ its exemplars, sorted ascending.

    Args:
        xq: [nq, d] unit-norm query features (synth head).
        xb: [N, d] unit-norm corpus features (real head); may be a memory map.
        ex_scores: nq arrays; the i-th holds the scores [e_i] of query i's exemplars.
    """
    nq = xq.shape[0]
    e_max = max((len(s) for s in ex_scores), default=0)
    padded = np.full((nq, e_max), np.inf, dtype=np.float32)  # +inf pads are never exceeded: count 0
    for i, s in enumerate(ex_scores):
        padded[i, : len(s)] = s
    counts = np.zeros((nq, e_max), dtype=np.int64)
    q_all = torch.from_numpy(np.array(xq, dtype=np.float32))
    starts = range(0, xb.shape[0], chunk)
    for c0 in tqdm(starts, desc="rank", unit="chunk", disable=not progress or len(starts) < 2):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            scores = q_all[b0 : b0 + batch_size] @ block.T  # [B, C]
            thresholds = torch.from_numpy(padded[b0 : b0 + batch_size])
            counts[b0 : b0 + batch_size] += _count_above(scores, thresholds).numpy()
    ranks = []
    for i, s in enumerate(ex_scores):
        own = (s[None, :] > s[:, None]).sum(axis=1)  # other exemplars scoring above each one
        ranks.append(np.sort(1 + counts[i, : len(s)] + own))
    return ranks


def _count_above(scores: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """[B, C] scores, [B, E] thresholds -> [B, E] counts of scores strictly above each threshold.

    One pass finds the scores above each row's lowest threshold (usually few: only candidates that outrank
    some exemplar); only those are compared with every threshold.
    """
    lowest = thresholds.min(dim=1, keepdim=True).values
    rows, cols = torch.nonzero(scores > lowest, as_tuple=True)
    if rows.numel() <= scores.numel() // 16:
        above = (scores[rows, cols][:, None] > thresholds[rows]).long()  # [M, E]
        return torch.zeros(thresholds.shape, dtype=torch.long).index_add_(0, rows, above)
    return torch.stack([(scores > thresholds[:, j : j + 1]).sum(dim=1) for j in range(thresholds.shape[1])], dim=1)


def exemplar_influence(
    xq: np.ndarray,
    xb: np.ndarray,
    ex_scores: Sequence[np.ndarray],
    calibrator: Calibrator,
    batch_size: int = 256,
    chunk: int = 131072,
) -> np.ndarray:
    """Calibrated influence mass each query puts on its own exemplars, over corpus ∪ its exemplars, exactly.

    Two batched passes over the corpus: the best score per query, then the normaliser Σ_j t_j.

    Returns:
        [nq] masses in [0, 1].
    """
    nq = xq.shape[0]
    q_all = torch.from_numpy(np.array(xq, dtype=np.float32))
    best = np.array([float(s.max()) for s in ex_scores], dtype=np.float64)
    for c0 in range(0, xb.shape[0], chunk):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            m = (q_all[b0 : b0 + batch_size] @ block.T).max(dim=1).values.double().numpy()
            best[b0 : b0 + batch_size] = np.maximum(best[b0 : b0 + batch_size], m)
    z = np.zeros(nq, dtype=np.float64)
    mx = torch.from_numpy(best)[:, None]
    for c0 in range(0, xb.shape[0], chunk):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            s = (q_all[b0 : b0 + batch_size] @ block.T).double()
            t = torch.clamp(torch.exp(calibrator.inv_tau * (s - mx[b0 : b0 + batch_size])) + calibrator.b, min=0)
            z[b0 : b0 + batch_size] += t.sum(dim=1).numpy()
    mass = np.empty(nq, dtype=np.float64)
    for i, s in enumerate(ex_scores):
        t = np.maximum(np.exp(calibrator.inv_tau * (s.astype(np.float64) - best[i])) + calibrator.b, 0.0)
        mass[i] = t.sum() / (z[i] + t.sum())
    return mass


def ranks_in_scores(scores: np.ndarray, n_rows: int) -> np.ndarray:
    """Sorted 1-based ranks of the exemplars (``scores[n_rows:]``) among every candidate of one query's scores [n]:
    1 + the number of candidates scoring strictly above each (the kernel above, on a score vector)."""
    scores = np.asarray(scores)
    ex = scores[n_rows:]
    return np.sort(1 + (scores[None, :] > ex[:, None]).sum(axis=1))
