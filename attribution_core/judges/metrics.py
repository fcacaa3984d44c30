"""The judges' one metrics module: the AbC protocol's metrics per prompt type (Recall@K, mAP over the plain measures
of ``attribute.metrics``), the per-space result and its table / CSV / rank-dump writers, the linear datamodeling
score (docs/method.md §8) and paired bootstrap intervals of the difference between two methods (§7, §8)."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from ..attribute.metrics import (  # noqa: F401  (re-exported: the judges' measures in one place)
    average_precision,
    average_precision_at,
    exemplar_influence,
    exemplar_ranks,
    ranks_in_scores,
    recall_at,
)
from ..core.errors import AttributionError

if TYPE_CHECKING:
    from ..data.testcase import TestCase

DEFAULT_KS = (5, 10, 100)


def metrics_by_type(
    prompt_types: Sequence[str],
    types: Sequence[str],
    ranks: Sequence[np.ndarray],
    ks: Sequence[int] = DEFAULT_KS,
    influence: Sequence[float] | None = None,
) -> dict[str, float]:
    """``<type>-recall@K`` and ``<type>-mAP`` (and ``<type>-influence``) averaged over the synthesized images of each
    prompt type, in the order of ``prompt_types`` (types without images are left out).

    Args:
        types: each synthesized image's prompt type.
        ranks: each synthesized image's sorted 1-based exemplar ranks.
        influence: each synthesized image's calibrated influence on its own exemplars, when measured.
    """
    metrics: dict[str, float] = {}
    for ptype in prompt_types:
        sel = [i for i, t in enumerate(types) if t == ptype]
        if not sel:
            continue
        for k in ks:
            metrics[f"{ptype}-recall@{k}"] = float(np.mean([recall_at(ranks[i], k) for i in sel]))
        metrics[f"{ptype}-mAP"] = float(np.mean([average_precision(ranks[i]) for i in sel]))
        if influence is not None:
            metrics[f"{ptype}-influence"] = float(np.mean([influence[i] for i in sel]))
    return metrics


@dataclass
class SpaceResult:
    """Metrics of one feature space on one test case."""

    space: str
    metrics: dict[str, float]  # "<type>-recall@K" and "<type>-mAP"
    ranks: list[dict] = field(default_factory=list)  # per synthesized image: model, type, path, ranks


def format_table(tc: TestCase, results: Sequence[SpaceResult]) -> str:
    """A Markdown table: one row per space, columns ``<type>-recall@K`` and ``<type>-mAP``."""
    cols = list(dict.fromkeys(c for r in results for c in r.metrics))
    lines = [f"| space | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
    for r in results:
        lines.append(f"| {r.space} | " + " | ".join(f"{r.metrics.get(c, float('nan')):.4f}" for c in cols) + " |")
    return "\n".join(lines)


def write_csv(path: Path | str, rows: Sequence[tuple[TestCase, SpaceResult]]) -> None:
    """One CSV row per (test case, space)."""
    cols = list(dict.fromkeys(c for _, r in rows for c in r.metrics))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test_case", "space", *cols])
        for tc, r in rows:
            w.writerow([tc.name, r.space, *(f"{r.metrics[c]:.6f}" if c in r.metrics else "" for c in cols)])


def write_ranks(path: Path | str, rows: Sequence[tuple[TestCase, SpaceResult]]) -> None:
    """Every synthesized image's exemplar ranks, one JSON object per line (anyone can recompute the metrics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for _, r in rows:
            for row in r.ranks:
                f.write(json.dumps(row) + "\n")


def predicted_effects(member: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``g_j = -sum_{i in S_j} scores_i`` for every subset ``j`` (``member``: [M, N] booleans). An image a method
    did not score (−inf: outside unlearning's candidates) contributes nothing."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isfinite(scores), scores, 0.0)
    if member.shape[1] != len(scores):
        raise AttributionError(f"{len(scores)} scores for a training set of {member.shape[1]} images")
    return -(member.astype(np.float64) @ scores)


def lds(member: np.ndarray, scores: np.ndarray, losses: np.ndarray) -> float:
    """The LDS of one query: Spearman correlation of predicted effects and measured losses over the subsets."""
    g = predicted_effects(member, scores)
    if np.ptp(g) == 0 or np.ptp(losses) == 0:
        return 0.0  # a constant prediction (or measurement) ranks nothing
    return float(stats.spearmanr(g, losses).statistic)


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
