"""The feature method's calibration scores: per validation query, its exemplars' scores and the highest corpus scores
in the tuned space (the calibrator loss's input, docs/method.md §3)."""

from __future__ import annotations

import numpy as np
import torch

from ...heads import Heads
from .heads import FeatureSplit


@torch.inference_mode()
def calibration_scores(heads: Heads, split: FeatureSplit, corpus: np.ndarray, top: int = 1000):
    """Per query: its exemplars' scores first, then the highest corpus scores (the loss's "selected scores").

    Returns:
        (selected [nq, L] float32, count_gt [nq]): every row has the same length L = max exemplars + top.
    """
    xb = heads.real_head.map_numpy(corpus)
    xq = heads.synth_head(torch.from_numpy(split.queries)).numpy()
    ex = heads.real_head.map_numpy(split.exemplars)
    counts = np.array([int((split.exemplar_model == m).sum()) for m in split.query_model])
    width = int(counts.max()) + min(top, xb.shape[0] - int(counts.max()))
    rows = []
    for q, m, c in zip(xq, split.query_model, counts, strict=True):
        s = xb @ q
        n_corpus = width - c
        best = np.argpartition(-s, n_corpus - 1)[:n_corpus] if n_corpus < s.shape[0] else np.arange(s.shape[0])
        rows.append(np.concatenate([ex[split.exemplar_model == m] @ q, np.sort(s[best])[::-1]]))
    return np.stack(rows).astype(np.float32), counts
