"""The linear datamodeling score (docs/method.md §8): how well a method's scores, summed over a training subset,
predict the query's loss under a model trained on that subset, as a rank correlation over the subset models.

Sign convention: a higher score means the image helps the query, so a subset holding more of the query's score
should give the query a *lower* loss; the predicted effect of training on subset ``S_j`` is therefore
``g_j = -sum_{i in S_j} tau_i`` and ``LDS = Spearman(g, f)`` with ``f_j`` the measured loss. A method whose scores
predict the losses perfectly (in rank) scores 1, one that knows nothing scores about 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...core.errors import AttributionError
from ..metrics import lds, paired_differences, predicted_effects  # noqa: F401  (predicted_effects: re-exported)


@dataclass(frozen=True)
class LdsTable:
    """Per-query LDS of every method, its mean ± s.e., and bootstrap intervals of paired differences."""

    per_query: dict[str, dict[str, float]]  # method -> query -> LDS
    summary: list[dict]  # method, mean, se, queries
    differences: list[dict]  # a, b, mean, low, high, excludes_zero, a_wins (queries where a > b)


def lds_table(
    member: np.ndarray,
    losses: Mapping[str, np.ndarray],
    scores: Mapping[str, Mapping[str, np.ndarray]],
    queries: Sequence[str],
    resamples: int = 10_000,
    seed: int = 0,
) -> LdsTable:
    """The LDS of every method on ``queries``, summarised (mean ± standard error over queries) and compared
    pairwise: a 95% percentile bootstrap interval of each pair's mean difference, resampling queries (paired)."""
    if len(queries) < 2:
        raise AttributionError("the LDS table needs at least 2 queries")
    per_query = {m: {q: lds(member, s[q], losses[q]) for q in queries} for m, s in scores.items()}
    summary = []
    for m, values in per_query.items():
        v = np.array([values[q] for q in queries])
        summary.append(
            {"method": m, "mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(len(v))), "queries": len(v)}
        )
    differences = paired_differences(per_query, queries, resamples, seed)
    return LdsTable(per_query, summary, differences)
