"""Evaluation benchmark: AbC ranks for 1,000 synthesized images against a 1,000,000 x 512 corpus.

This library counts (rank = 1 + number of candidates scoring above the exemplar), batching queries into matrix
products; the original eval.py concatenates corpus and exemplars and argsorts every score, one query at a time.
Both run here on the same data. The original loop is timed on a subset (--loop-queries) and scaled to all
queries; the metrics of both are compared on that subset (they must be identical).

    python benchmarks/evaluate.py             # 1M corpus, 1,000 queries (about 4 GB of RAM)
    python benchmarks/evaluate.py --n 200000  # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from attribution_core.data.synthetic import clustered_features, perturbed
from attribution_core.judges.abc import average_precision, exemplar_ranks, recall_at


def original_loop(xb: torch.Tensor, q: np.ndarray, ex: np.ndarray) -> np.ndarray:
    """eval.py, per synthesized image: cat, score everything, argsort everything, find the exemplars."""
    n = xb.shape[0]
    all_feat = torch.cat([xb, torch.from_numpy(ex)], dim=0)
    predictions = torch.argsort(-(all_feat @ torch.from_numpy(q)))
    return (torch.nonzero(predictions >= n)[:, 0] + 1).numpy()


def metrics(ranks: list[np.ndarray]) -> dict[str, float]:
    out = {f"recall@{k}": float(np.mean([recall_at(r, k) for r in ranks])) for k in (5, 10, 100)}
    out["mAP"] = float(np.mean([average_precision(r) for r in ranks]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--loop-queries", type=int, default=20)
    args = ap.parse_args()
    n, d, nq = args.n, args.d, args.queries
    rng = np.random.default_rng(0)
    xb = clustered_features(n, d, n_clusters=max(10, n // 1000), seed=0)
    # customised models: 1-13 exemplars, views of one object or style; each query is near its model's exemplars
    n_models = max(1, nq // 10)
    sizes, sources = rng.integers(1, 14, n_models), rng.integers(0, n, n_models)
    exemplars = [
        perturbed(np.repeat(xb[src][None], e, 0), 0.7, seed=10 + m)
        for m, (src, e) in enumerate(zip(sources, sizes, strict=True))
    ]
    owner = rng.integers(0, n_models, nq)
    picks = [exemplars[m][rng.integers(0, len(exemplars[m]))] for m in owner]
    xq = np.stack([perturbed(p[None], 0.7, seed=10_000 + i)[0] for i, p in enumerate(picks)])
    ex_scores = [exemplars[m] @ q for m, q in zip(owner, xq, strict=True)]
    print(
        f"# corpus {n:,} x {d}, {nq} synthesized images, {n_models} models with 1-13 exemplars, "
        f"{torch.get_num_threads()} threads"
    )

    exemplar_ranks(xq[:8], xb[:10000], ex_scores[:8])  # warm-up
    t0 = time.perf_counter()
    ranks = exemplar_ranks(xq, xb, ex_scores)
    t_ours = time.perf_counter() - t0

    xb_t = torch.from_numpy(xb)
    sub = range(args.loop_queries)
    original_loop(xb_t, xq[0], exemplars[owner[0]])  # warm-up
    t0 = time.perf_counter()
    loop_ranks = [original_loop(xb_t, xq[i], exemplars[owner[i]]) for i in sub]
    t_loop = (time.perf_counter() - t0) / len(sub) * nq

    same = all(np.array_equal(ranks[i], loop_ranks[i]) for i in sub)
    ours_m, loop_m = metrics([ranks[i] for i in sub]), metrics(loop_ranks)
    print()
    print("| method | wall time for all queries | per query | speed-up |")
    print("|---|---:|---:|---:|")
    print(
        f"| original per-query argsort loop (timed on {len(sub)}, scaled to {nq}) | {t_loop:.0f} s | "
        f"{t_loop / nq * 1000:.0f} ms | 1x |"
    )
    print(
        f"| counting, batched (this library) | {t_ours:.1f} s | {t_ours / nq * 1000:.1f} ms | {t_loop / t_ours:.0f}x |"
    )
    print(
        f"\nranks identical on the {len(sub)} compared queries: {same}; metrics there, ours vs original: "
        + ", ".join(f"{k} {ours_m[k]:.4f}/{loop_m[k]:.4f}" for k in ours_m)
    )
    print("metrics over all queries (this library): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics(ranks).items()))


if __name__ == "__main__":
    main()
