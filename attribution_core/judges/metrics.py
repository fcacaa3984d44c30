"""Metrics of the AbC protocol (Recall@K, AP), the per-space result, and its table / CSV / rank-dump writers."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .abc.testcase import TestCase

DEFAULT_KS = (5, 10, 100)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """|exemplars in the top k| / |exemplars|."""
    return float(np.count_nonzero(ranks <= k) / len(ranks))


def average_precision(ranks: np.ndarray) -> float:
    """AP = (1/|E|) Σ_j j / r_j over the sorted 1-based exemplar ranks r_1 < r_2 < …"""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(np.mean(np.arange(1, len(r) + 1) / r))


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
