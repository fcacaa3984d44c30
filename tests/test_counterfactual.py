"""Leave-K-out retraining (issue: the gold standard): the mechanics on a tiny configuration, the cache and the
table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from attribution_core.diffusion import ModelConfig, TrainConfig
from attribution_core.diffusion.train import step_batch
from attribution_core.judges.counterfactual import markdown_table, query_loss, removal_key, retrain_without, summarise

from .helpers import tiny_training_set

MODEL = ModelConfig(
    resolution=8, block_out_channels=(16, 32), attention_levels=(False, True), text_dim=32, text_layers=1
)
TRAIN = TrainConfig(steps=150, batch_size=16, warmup=10, seed=0, checkpoint_every=1000, device="cpu")


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    data = tiny_training_set(n=8, resolution=8)
    cache = tmp_path_factory.mktemp("retrains")
    return data, cache


def test_removing_the_query_itself_raises_its_loss_more_than_removing_a_random_image(tiny_setup) -> None:
    data, cache = tiny_setup
    query = 0  # a training image used as the query, with its caption
    base = retrain_without(data, [], cache, MODEL, TRAIN, progress=False)
    other = int(np.random.default_rng(0).integers(1, len(data)))
    without_query = retrain_without(data, [query], cache, MODEL, TRAIN, progress=False)
    without_other = retrain_without(data, [other], cache, MODEL, TRAIN, progress=False)

    def loss(model) -> float:
        return query_loss(model, data.images[query], data.captions[query], timesteps=50, draws=4)

    rise_query = loss(without_query) - loss(base)
    rise_other = loss(without_other) - loss(base)
    assert rise_query > 0
    assert rise_query > rise_other


def test_a_paired_retrain_sees_the_base_batches_with_only_the_removed_images_replaced(tiny_setup) -> None:
    data, _ = tiny_setup
    removed = [2, 5]
    kept = torch.tensor([i for i in range(len(data)) if i not in removed])
    replaced = 0

    def shows(x: torch.Tensor, row: int) -> bool:  # the training image or its flip
        return torch.equal(x, data.images[row]) or torch.equal(x, data.images[row].flip(-1))

    for step in range(40):
        full = step_batch(data, step, TRAIN, 1000)
        paired = step_batch(data, step, TRAIN, 1000, kept)
        # every timestep and noise draw is the base model's
        assert torch.equal(full[2], paired[2]) and torch.equal(full[3], paired[3])
        for slot in range(TRAIN.batch_size):
            if any(shows(full[0][slot], r) for r in removed):
                replaced += 1
                assert not any(shows(paired[0][slot], r) for r in removed)
            else:
                assert torch.equal(full[0][slot], paired[0][slot]) and full[1][slot] == paired[1][slot]
    assert replaced > 0


def test_retrains_are_cached_by_removed_set(tiny_setup) -> None:
    data, cache = tiny_setup
    assert removal_key([1, 2], data, MODEL, TRAIN) == removal_key([2, 1], data, MODEL, TRAIN)
    assert removal_key([1, 2], data, MODEL, TRAIN) != removal_key([1, 3], data, MODEL, TRAIN)
    assert removal_key([1], data, MODEL, TRAIN) != removal_key([1], data, MODEL, TrainConfig(steps=151))
    # device and checkpoint spacing do not change the trained weights, so they do not change the key
    same = dataclasses.replace(TRAIN, device="cuda", checkpoint_every=7)
    assert removal_key([1], data, MODEL, TRAIN) == removal_key([1], data, MODEL, same)
    # paired and unpaired retrains are different models; removing nothing is the base model either way
    assert removal_key([1], data, MODEL, TRAIN) != removal_key([1], data, MODEL, TRAIN, paired=False)
    assert removal_key([], data, MODEL, TRAIN) == removal_key([], data, MODEL, TRAIN, paired=False)
    first = retrain_without(data, [5], cache, MODEL, TRAIN, progress=False)
    folders = sorted(p.name for p in cache.iterdir())
    again = retrain_without(data, [5], cache, MODEL, TRAIN, progress=False)  # loaded, not retrained
    assert sorted(p.name for p in cache.iterdir()) == folders
    assert first.fingerprint() == again.fingerprint()
    removed = (cache / removal_key([5], data, MODEL, TRAIN) / "removed.json").read_text()
    assert data.paths[5] in removed


def test_table_averages_random_draws_per_query_then_reports_mean_and_standard_error() -> None:
    rows = [
        {"method": "unlearning", "query": "a", "k": 4, "draw": 0, "d_loss": 0.001, "d_mse": 0.0, "d_similarity": 0.1},
        {"method": "unlearning", "query": "b", "k": 4, "draw": 0, "d_loss": 0.003, "d_mse": 0.0, "d_similarity": 0.3},
        # random: two draws for query a (mean 0.002), one for b
        {"method": "random", "query": "a", "k": 4, "draw": 0, "d_loss": 0.001, "d_mse": 0.0, "d_similarity": 0.0},
        {"method": "random", "query": "a", "k": 4, "draw": 1, "d_loss": 0.003, "d_mse": 0.0, "d_similarity": 0.0},
        {"method": "random", "query": "b", "k": 4, "draw": 0, "d_loss": 0.002, "d_mse": 0.0, "d_similarity": 0.0},
    ]
    summary = {(s["method"], s["measure"]): s for s in summarise(rows)}
    assert summary[("unlearning", "d_loss")]["mean"] == pytest.approx(0.002)
    assert summary[("unlearning", "d_loss")]["se"] == pytest.approx(0.001)  # std 0.001414 / sqrt 2
    assert summary[("random", "d_loss")]["mean"] == pytest.approx(0.002)
    assert summary[("random", "d_loss")]["se"] == pytest.approx(0.0)
    assert summary[("random", "d_loss")]["queries"] == 2
    table = markdown_table(summarise(rows))
    assert table.splitlines()[0].startswith("| method | ΔL K=4 | ΔG-MSE K=4 | ΔG-sim K=4 |")
    assert "| unlearning | 2.00 ± 1.00 |" in table  # ΔL shown ×10³


def test_the_table_compares_methods_pairwise_per_k_with_intervals() -> None:
    """Each pair's paired ΔL difference per K, random's draws averaged per query first: a method that beats random
    on every query by a clear margin has an interval above 0; identical methods do not."""
    from attribution_core.judges.counterfactual.report import differences_markdown, loss_differences

    rows = []
    for i, q in enumerate("abcdef"):
        base = 0.001 * (i + 1)
        rows.append({"method": "unlearning", "query": q, "k": 2, "draw": 0, "d_loss": base + 0.010})
        rows.append({"method": "same", "query": q, "k": 2, "draw": 0, "d_loss": base})
        for draw in range(2):  # random's two draws average to base
            rows.append({"method": "random", "query": q, "k": 2, "draw": draw, "d_loss": base + (-1) ** draw * 0.002})
    pairs = {(d["a"], d["b"]): d for d in loss_differences(rows, resamples=500)[2]}
    assert pairs[("unlearning", "random")]["mean"] == pytest.approx(0.010)
    assert pairs[("unlearning", "random")]["excludes_zero"] and pairs[("unlearning", "random")]["a_wins"] == 6
    assert not pairs[("same", "random")]["excludes_zero"] and pairs[("same", "random")]["mean"] == pytest.approx(0)
    text = differences_markdown(loss_differences(rows, resamples=500))
    assert "| ΔL difference, K=2 (×10³) |" in text and "| unlearning − random | +10.00 |" in text
