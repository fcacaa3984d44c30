"""The LDS's rules on problems whose answer is known: the harness can tell a true attribution from noise, the
cross-validated datamodel recovers an additive truth (whatever its ridge), the noise ceiling reads the seeds'
agreement, the query-specific loss removes what a track's queries share, and the intervals widen when queries share
a cluster effect."""

from __future__ import annotations

import numpy as np

from attribution_core.judges.counterfactual.lds_stats import (
    bootstrap_lds,
    choose_temperature,
    compare,
    datamodel_effects,
    effects_from_scores,
    interval,
    noise_ceiling,
    shared_transform,
    spearman_rows,
    specific_losses,
)
from attribution_core.judges.counterfactual.subsets import draw_subsets


def _additive_problem(n=120, m=64, queries=12, noise=0.0, seed=0):
    """Losses exactly additive in the training images present (plus optional noise): loss = c - sum_i effect_i."""
    rng = np.random.default_rng(seed)
    member = draw_subsets(n, m, 0.5, 0)
    effects, losses = {}, {}
    for q in range(queries):
        e = rng.exponential(1.0, n) * (rng.random(n) < 0.2)
        effects[f"q{q}"] = e
        losses[f"q{q}"] = 10.0 - member.astype(float) @ e + noise * rng.standard_normal(m)
    return member, effects, losses


def test_true_effects_score_one_random_zero_and_the_datamodel_recovers_the_truth():
    member, truth, losses = _additive_problem(n=24)
    queries = list(losses)
    rng = np.random.default_rng(1)
    random = {q: rng.standard_normal(len(truth[q])) for q in queries}
    methods = {
        "truth": effects_from_scores(member, truth),
        "random": effects_from_scores(member, random),
        "datamodel": {q: datamodel_effects(member, losses[q], ridge=0.001) for q in queries},
    }
    boot = bootstrap_lds(methods, losses, queries, queries, resamples=200)
    lds = dict(zip(boot.methods, boot.point, strict=True))
    assert lds["truth"] > 0.999
    assert abs(lds["random"]) < 0.1
    assert lds["datamodel"] > 0.95  # fitted on 32 models of 24 images, scored on the 32 it never saw
    low, high = interval(boot.draws[:, boot.methods.index("random")])
    assert low < 0 < high


def test_the_cluster_and_model_bootstrap_widens_the_interval_when_queries_share_a_cluster_effect():
    """Four clusters of eight near-identical queries: 32 queries carry the information of 4. Resampling queries one
    by one (each its own cluster) gives a narrow interval; resampling clusters (and models) a wide one."""
    rng = np.random.default_rng(3)
    n, m = 100, 40
    member = draw_subsets(n, m, 0.5, 0)
    effects, losses, clusters = {}, {}, []
    for c in range(4):
        truth = rng.exponential(1.0, n)
        strength = [0.05, 0.6, 0.2, 0.9][c]  # clusters differ a lot in how well the method does
        for k in range(8):
            q = f"c{c}-{k}"
            losses[q] = -member.astype(float) @ truth + 0.01 * rng.standard_normal(m)
            noisy = strength * truth + (1 - strength) * rng.exponential(1.0, n) * 3
            effects[q] = noisy
            clusters.append(f"c{c}")
    queries = list(losses)
    method = {"method": effects_from_scores(member, effects)}
    by_query = bootstrap_lds(method, losses, queries, queries, resamples=400, models=False)
    by_cluster = bootstrap_lds(method, losses, queries, clusters, resamples=400)
    width_query = np.subtract(*interval(by_query.draws[:, 0])[::-1])
    width_cluster = np.subtract(*interval(by_cluster.draws[:, 0])[::-1])
    assert width_cluster > 1.8 * width_query


def test_comparisons_call_a_difference_inside_its_adjusted_interval_a_tie():
    member, truth, losses = _additive_problem(queries=16, noise=0.5)
    queries = list(losses)
    rng = np.random.default_rng(2)
    near = {q: truth[q] + 0.01 * rng.standard_normal(len(truth[q])) for q in queries}
    noise = {q: rng.standard_normal(len(truth[q])) for q in queries}
    methods = {m: effects_from_scores(member, s) for m, s in (("truth", truth), ("near", near), ("noise", noise))}
    boot = bootstrap_lds(methods, losses, queries, queries, resamples=300)
    rows = {(r["a"], r["b"]): r for r in compare(boot, [("truth", "noise"), ("truth", "near")])}
    assert rows[("truth", "noise")]["verdict"] == "truth higher"
    assert rows[("truth", "near")]["verdict"] == "tie"
    assert all(r["p_holm"] >= r["p"] for r in rows.values())


def test_the_shared_transform_is_one_rule_and_its_temperature_is_chosen_on_the_queries_given():
    member, truth, losses = _additive_problem(queries=6)
    queries = list(losses)
    t = choose_temperature(member, losses, truth, queries)
    a = shared_transform(truth[queries[0]], t)
    # the transform reads only the scores' order and spread: a shifted, scaled copy gets the same tau
    b = shared_transform(3 * truth[queries[0]] + 7, t)
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert spearman_rows(np.arange(5.0), np.arange(5.0)) == 1.0


def test_the_datamodel_ranks_by_its_fit_not_by_the_two_halves_mean_losses():
    """A strong ridge shrinks every prediction towards its fitting half's mean loss; were that mean added back, the
    two halves' means (which differ by chance) would decide the ranking and the LDS would fall with the ridge. The
    centred predictions keep the fit's order at any ridge."""
    member, _, losses = _additive_problem(n=200, m=64, queries=8, noise=2.0, seed=5)
    queries = list(losses)
    f = np.stack([losses[q] for q in queries])
    by_ridge = {
        r: float(spearman_rows(np.stack([datamodel_effects(member, losses[q], r) for q in queries]), f).mean())
        for r in (0.001, 100.0, 10_000.0)
    }
    assert by_ridge[0.001] > 0.2
    assert min(by_ridge.values()) > 0.5 * max(by_ridge.values())


def test_the_noise_ceiling_reads_how_well_the_training_seeds_agree():
    rng = np.random.default_rng(7)
    signal = rng.standard_normal(64)
    same = np.stack([signal + 0.01 * rng.standard_normal(64) for _ in range(3)])
    unrelated = rng.standard_normal((3, 64))
    assert noise_ceiling(same) > 0.99
    assert noise_ceiling(unrelated) < 0.5
    assert np.isnan(noise_ceiling(same[:1]))  # one seed tells nothing


def test_the_query_specific_loss_removes_what_a_tracks_queries_share():
    """Every query's loss carries a common mode (a model that is worse at the whole track): a query-agnostic score
    that predicts it scores well on the measured loss and near 0 on the query-specific loss, while the true
    per-query effect keeps its LDS."""
    member, truth, losses = _additive_problem(n=100, m=64, queries=12, seed=9)
    rng = np.random.default_rng(9)
    common = rng.exponential(1.0, 100) * 3
    shared = {q: losses[q] - member.astype(float) @ common for q in losses}
    queries = list(shared)
    specific = specific_losses(shared, queries, queries)
    agnostic = effects_from_scores(member, {q: common for q in queries})
    true = effects_from_scores(member, truth)

    def mean_lds(effects, target):
        return float(
            spearman_rows(np.stack([effects[q] for q in queries]), np.stack([target[q] for q in queries])).mean()
        )

    assert mean_lds(agnostic, shared) > 0.5
    assert abs(mean_lds(agnostic, specific)) < 0.15
    assert mean_lds(true, specific) > 0.5
