"""Paired comparisons of methods over the same queries (docs/method.md §7, §8): the mean per-query difference of
two methods' values and a bootstrap interval of it, so a table says which differences are real."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def paired_differences(
    per_query: Mapping[str, Mapping[str, float]], queries: Sequence[str], resamples: int = 10_000, seed: int = 0
) -> list[dict]:
    """Every pair of methods (in order): the mean per-query difference, a 95% percentile bootstrap interval of it
    (queries resampled, paired), whether the interval excludes 0, and on how many queries the first is higher."""
    out = []
    for a, b in itertools.combinations(per_query, 2):
        d = np.array([per_query[a][q] - per_query[b][q] for q in queries])
        if np.ptp(d) == 0:
            low = high = float(d[0])
        else:
            ci = stats.bootstrap(
                (d,), np.mean, n_resamples=resamples, method="percentile", random_state=np.random.default_rng(seed)
            ).confidence_interval
            low, high = float(ci.low), float(ci.high)
        out.append(
            {
                "a": a,
                "b": b,
                "mean": float(d.mean()),
                "low": low,
                "high": high,
                "excludes_zero": bool(low > 0 or high < 0),
                "a_wins": int((d > 0).sum()),
                "queries": len(d),
            }
        )
    return out
