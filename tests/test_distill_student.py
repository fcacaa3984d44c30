"""The distilled method's student (issue: distilled attribution, item 3): trained on rankings alone, it learns a
teacher's order on a problem where the order is known, and AP(L) is FastGDA's metric."""

from __future__ import annotations

import numpy as np
import pytest

from attribution_core.attribute.metrics import average_precision_at
from attribution_core.distill.student import (
    RankingLabel,
    StudentConfig,
    embed,
    joint_features,
    train_student,
)


def test_average_precision_counts_the_teachers_top_l_in_the_students_ranking() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2])
    assert average_precision_at(np.array([0, 2, 3]), scores, 3) == pytest.approx(1.0)
    # the teacher's top 2 are rows 1 and 0: the student ranks row 0 first (AP term 1/1) and row 1 fifth (2/5)
    assert average_precision_at(np.array([1, 0]), scores, 2) == pytest.approx((1 + 2 / 5) / 2)


def test_tied_scores_get_the_expected_ap_not_the_one_the_data_order_gives() -> None:
    """A caption-only rule gives every image of one caption the same score: the teacher's top image listed first
    among 40 tied rows must not score AP 1 (the data's order) but about the mean of 1/rank over random orders."""
    tied = np.ones(40)
    expected = np.mean(1 / np.arange(1, 41))  # one positive at a uniformly random rank
    assert average_precision_at(np.array([0]), tied, 1, tie_draws=2000) == pytest.approx(expected, abs=0.02)
    # ties only inside the top group: the positive is surely among the first 4 of 40
    grouped = np.r_[np.full(4, 2.0), np.ones(36)]
    assert average_precision_at(np.array([3]), grouped, 1, tie_draws=2000) == pytest.approx(
        np.mean(1 / np.arange(1, 5)), abs=0.03
    )


def test_a_student_learns_a_teachers_ranking_that_its_features_can_express() -> None:
    """The teacher ranks training images by a hidden similarity of the same features the student sees (a cosine
    after a projection the student must find); after training, the student's ranking of the *whole* training set
    recovers the teacher's top 10 on held-out queries far better than the raw features do."""
    rng = np.random.default_rng(0)
    n, d, t = 400, 16, 8
    image, text = rng.standard_normal((n, d)), rng.standard_normal((n, t))
    train = joint_features(image, text)
    project = rng.standard_normal((d + t, 6))

    def teacher(x: np.ndarray) -> np.ndarray:
        y = x @ project
        return y / np.linalg.norm(y, axis=-1, keepdims=True)

    def label(features: np.ndarray) -> np.ndarray:
        return np.argsort(-(teacher(train) @ teacher(features)))[:40]  # the teacher's top 40 candidates, in order

    queries = joint_features(rng.standard_normal((120, d)), rng.standard_normal((120, t)))
    labels = [RankingLabel(q, label(q)) for q in queries[:100]]
    config = StudentConfig(hidden=64, embedding=32, epochs=40, batch_size=512, lr=3e-3)
    student = train_student(labels, train, config, progress=False)
    e_train, e_query = embed(student, train), embed(student, queries[100:])
    learnt = np.mean(
        [average_precision_at(label(q), e_train @ e, 10) for q, e in zip(queries[100:], e_query, strict=True)]
    )
    raw = np.mean([average_precision_at(label(q), train @ q, 10) for q in queries[100:]])
    assert learnt > 2 * raw and learnt > 0.3, (learnt, raw)
    # the control: the same training on labels shuffled across queries learns nothing that transfers
    shuffled = [RankingLabel(q, labels[(i + 37) % len(labels)].rows) for i, q in enumerate(queries[:100])]
    control = train_student(shuffled, train, config, progress=False)
    c_train, c_query = embed(control, train), embed(control, queries[100:])
    chance = np.mean(
        [average_precision_at(label(q), c_train @ e, 10) for q, e in zip(queries[100:], c_query, strict=True)]
    )
    assert chance < learnt / 3, (chance, learnt)
