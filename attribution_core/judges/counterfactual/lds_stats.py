"""The LDS's rules, one for every method (docs/counterfactual.md): predicted effects from a method's raw scores or
from one shared transform of them, a cross-validated linear datamodel, the noise ceiling the training seeds allow,
the query-specific loss (the common mode of a track removed), and intervals that resample both sources of chance,
the query clusters and the subset models, with a multiple-comparison correction.

Everything works on predicted effects ``G[method][query]`` [M] (one per subset model) and measured losses
``F[query]`` [M], so a score method and the datamodel go through the same code. Written with numpy alone: the
bootstrap over clusters *and* models, vectorised over methods and queries, is what no statistics library here
offers in one call (scipy's ``bootstrap`` resamples one axis of independent observations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..metrics import predicted_effects

#: Temperatures the shared transform chooses from on the validation queries (of standardised scores).
TEMPERATURES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 1e9)
#: Ridge penalties the datamodel chooses from on the validation queries (relative to the number of fitting models).
RIDGES = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
#: Random two-fold splits of the subset models the datamodel's out-of-fold predictions are averaged over.
DATAMODEL_REPEATS = 16


def shared_transform(scores: np.ndarray, temperature: float) -> np.ndarray:
    """One transform for every method: a softmax of the standardised scores at ``temperature`` (a very large
    temperature is the standardised score's rank order, nearly linear: the raw score up to scale)."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, np.nanmin(np.where(np.isfinite(s), s, np.nan)))
    sd = s.std()
    z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    if temperature >= 1e8:
        return z
    e = np.exp((z - z.max()) / temperature)
    return e / e.sum()


def spearman_rows(g: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Spearman correlation along the last axis of ``g`` [..., M] with ``f`` [..., M] (broadcast); a row that is
    constant ranks nothing and scores 0."""
    rg = stats.rankdata(g, axis=-1)
    rf = stats.rankdata(f, axis=-1)
    rg = rg - rg.mean(axis=-1, keepdims=True)
    rf = rf - rf.mean(axis=-1, keepdims=True)
    num = (rg * rf).sum(axis=-1)
    den = np.sqrt((rg**2).sum(axis=-1) * (rf**2).sum(axis=-1))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def effects_from_scores(member: np.ndarray, scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each query's predicted effects [M] of a method's per-query scores (``g_j = -sum_{i in S_j} tau_i``)."""
    return {q: predicted_effects(member, s) for q, s in scores.items()}


def choose_temperature(
    member: np.ndarray, losses: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray], queries: Sequence[str]
) -> float:
    """The shared transform's temperature that gives ``scores`` the highest mean LDS on ``queries`` (validation)."""
    f = np.stack([losses[q] for q in queries])
    best, best_t = -np.inf, TEMPERATURES[-1]
    for t in TEMPERATURES:
        g = np.stack([predicted_effects(member, shared_transform(scores[q], t)) for q in queries])
        mean = float(spearman_rows(g, f).mean())
        if mean > best + 1e-12:
            best, best_t = mean, t
    return best_t


def datamodel_effects(
    member: np.ndarray, losses: np.ndarray, ridge: float, repeats: int = DATAMODEL_REPEATS, seed: int = 0
) -> np.ndarray:
    """The cross-validated linear datamodel's predicted losses [M] for one query: a ridge regression of the loss on
    subset membership fitted on a random half of the subset models predicts the other half, and the halves swap;
    each prediction is centred on its fitting half (``(x - x̄) · w``, no intercept), so the two halves' different
    mean losses never enter the ranking, and the out-of-fold predictions are averaged over ``repeats`` random
    splits. Not an upper bound: 256 weights learnt from half of the models is a weak learner at this M; the noise
    ceiling (``noise_ceiling``) is the bound."""
    m = len(losses)
    out = np.zeros(m)
    rng = np.random.default_rng([4_099, seed])
    x_all = member.astype(np.float64)
    for _ in range(repeats):
        half = np.zeros(m, dtype=bool)
        half[rng.permutation(m)[: m // 2]] = True
        for test in (half, ~half):
            x, y = x_all[~test], losses[~test]
            mean = x.mean(0)
            xc, yc = x - mean, y - y.mean()
            lam = ridge * len(y)
            # dual form: w = X^T (X X^T + lam I)^-1 y (fewer models than images)
            w = xc.T @ np.linalg.solve(xc @ xc.T + lam * np.eye(len(y)), yc)
            out[test] += (x_all[test] - mean) @ w
    return out / repeats  # as a method's g = -sum tau: higher means a higher loss predicted


def choose_ridge(member: np.ndarray, losses: Mapping[str, np.ndarray], queries: Sequence[str]) -> float:
    """The datamodel's ridge penalty with the highest mean cross-validated LDS on ``queries`` (validation)."""
    f = np.stack([losses[q] for q in queries])
    means = [
        float(spearman_rows(np.stack([datamodel_effects(member, losses[q], r, repeats=4) for q in queries]), f).mean())
        for r in RIDGES
    ]
    return RIDGES[int(np.argmax(means))]


def noise_ceiling(seed_losses: np.ndarray) -> float:
    """The highest LDS any prediction can reach against the seed-averaged loss of one query, given how well the
    training seeds agree (``seed_losses`` [S, M]): the Spearman–Brown reliability of the mean of S seeds from their
    mean pairwise Spearman r, ``S·r / (1 + (S−1)·r)``, and its square root. NaN with one seed (nothing to tell)."""
    s = np.asarray(seed_losses, dtype=np.float64)
    if s.ndim != 2 or len(s) < 2:
        return float("nan")
    pairs = [spearman_rows(s[i], s[j]) for i in range(len(s)) for j in range(i + 1, len(s))]
    r = float(np.mean(pairs))
    reliability = len(s) * r / (1 + (len(s) - 1) * r) if r > -1 / (len(s) - 1) else 0.0
    return float(np.sqrt(max(reliability, 0.0)))


def specific_losses(
    losses: Mapping[str, np.ndarray], queries: Sequence[str], clusters: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each query's query-specific loss [M]: its loss minus the mean loss of the other clusters' queries of the same
    list (one track), under each subset model. What every query of a track shares (a subset model that is worse at
    the whole track) is removed; what is left is what an attribution of *this* query should predict."""
    f = np.stack([losses[q] for q in queries])
    cl = np.asarray(clusters)
    out = {}
    for i, q in enumerate(queries):
        others = cl != cl[i]
        out[q] = f[i] - (f[others].mean(axis=0) if others.any() else 0.0)
    return out


@dataclass(frozen=True)
class Bootstrap:
    """Per-method mean LDS under each resample [B, methods] (paired: every method sees the same resample)."""

    methods: list[str]
    point: np.ndarray  # [methods] mean LDS on the data as measured
    per_query: np.ndarray  # [methods, Q]
    draws: np.ndarray  # [B, methods]


def bootstrap_lds(
    effects: Mapping[str, Mapping[str, np.ndarray]],
    losses: Mapping[str, np.ndarray],
    queries: Sequence[str],
    clusters: Sequence[str],
    resamples: int = 2000,
    seed: int = 0,
    models: bool = True,
) -> Bootstrap:
    """Mean LDS of every method, resampled: the query clusters with replacement (a cluster's queries together) and,
    with ``models``, the subset models with replacement (the LDS recomputed on the drawn models).

    Args:
        effects: method -> query -> predicted effects [M].
        clusters: each query's cluster (its attribute combination, its photo).
        models: False resamples the clusters alone (conditioning on the one draw of subset models).
    """
    methods = list(effects)
    g = np.stack([np.stack([effects[m][q] for q in queries]) for m in methods])  # [methods, Q, M]
    f = np.stack([losses[q] for q in queries])  # [Q, M]
    per_query = spearman_rows(g, f[None])
    names = sorted(set(clusters))
    members = [np.flatnonzero(np.asarray(clusters) == c) for c in names]
    rng = np.random.default_rng([31_337, seed])
    m_models = g.shape[-1]
    draws = np.empty((resamples, len(methods)))
    for b in range(resamples):
        picked = np.concatenate([members[i] for i in rng.integers(len(names), size=len(names))])
        if models:
            idx = rng.integers(m_models, size=m_models)
            lds_b = spearman_rows(g[:, picked][:, :, idx], f[picked][:, idx][None])
        else:
            lds_b = per_query[:, picked]
        draws[b] = lds_b.mean(axis=1)
    return Bootstrap(methods, per_query.mean(axis=1), per_query, draws)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def compare(boot: Bootstrap, pairs: Sequence[tuple[str, str]], family: int | None = None) -> list[dict]:
    """Each pair's mean difference with a Bonferroni-adjusted percentile interval (level 1 − 0.05/family) and a
    two-sided bootstrap p-value, ``(1 + draws on the far side of 0) / (1 + B)`` (never below 1/(B+1)); ``tie``
    when the adjusted interval includes 0. ``holm`` adjusts the p-values over a whole family (every track)."""
    family = family or len(pairs)
    index = {m: i for i, m in enumerate(boot.methods)}
    rows = []
    n = len(boot.draws)
    for a, b in pairs:
        if a not in index or b not in index:
            continue
        d = boot.draws[:, index[a]] - boot.draws[:, index[b]]
        point = float(boot.point[index[a]] - boot.point[index[b]])
        low, high = interval(d, 1 - 0.05 / family)
        p = float(min(1.0, 2 * (1 + min((d <= 0).sum(), (d >= 0).sum())) / (1 + n)))
        verdict = "tie" if low <= 0 <= high else (f"{a} higher" if low > 0 else f"{b} higher")
        rows.append({"a": a, "b": b, "mean": point, "low": low, "high": high, "p": p, "verdict": verdict})
    return holm(rows, family)


def holm(rows: list[dict], family: int | None = None) -> list[dict]:
    """Holm's step-down adjustment of the rows' ``p`` over a family of ``family`` tests (default: the rows), kept
    monotone; written to ``p_holm``. Returns the rows."""
    family = family or len(rows)
    order = np.argsort([r["p"] for r in rows], kind="stable")
    running = 0.0
    for rank, i in enumerate(order):  # the k-th smallest p times (family - k)
        running = max(running, min(1.0, rows[i]["p"] * (family - rank)))
        rows[i]["p_holm"] = running
    return rows
