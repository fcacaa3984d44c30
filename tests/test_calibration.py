"""Calibrated influence: the fast exact path equals a straightforward full-sort, full-sum implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attribution_core.attribute.calibration import (
    Calibrator,
    calibration_loss,
    influence_normaliser,
    influence_of,
    load_calibrator,
    save_calibrator,
)
from attribution_core.core.errors import CheckpointError
from attribution_core.data.store import write_store
from attribution_core.heads import identity_heads
from attribution_core.index import AttributionIndex, IndexMeta, build_faiss, default_params

from .helpers import random_unit


def reference_influence(scores: np.ndarray, inv_tau: float, bias: float) -> tuple[np.ndarray, np.ndarray]:
    """The original demo's way: sort everything, calibrate over every score (float64)."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order].astype(np.float64)
    b = 0.001 * bias
    t = np.maximum(np.exp(inv_tau * s - np.max(inv_tau * s)) + b, 0.0)
    return order, t / t.sum()


CALIBRATORS = [(16.1587, -38.5), (40.0, -200.0), (5.0, -900.0), (10.0, 0.0), (3.0, 25.0), (60.0, -1.0)]


@pytest.mark.parametrize("inv_tau,bias", CALIBRATORS)
def test_exact_influence_matches_full_sort_and_sum(inv_tau: float, bias: float) -> None:
    rng = np.random.default_rng(1)
    for trial in range(5):
        n = int(rng.integers(50, 20000))
        scores = np.clip(rng.normal(0.3, 0.15, n), -1, 1).astype(np.float32)
        cal = Calibrator(inv_tau, bias)
        order, ref = reference_influence(scores, inv_tau, bias)
        mx = float(scores.max())
        mass = scores if cal.b >= 0 else scores[scores > cal.threshold(mx)]
        z = influence_normaliser(mass, mx, cal, n)
        k = min(100, n)
        got = influence_of(scores[order[:k]], mx, cal, z)
        np.testing.assert_allclose(got, ref[:k], atol=1e-6, err_msg=f"trial {trial}")
        assert abs((1 - got.sum()) - (1 - ref[:k].sum())) < 1e-6


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("inv_tau,bias", [(16.1587, -38.5), (10.0, 0.0)])
def test_index_search_gives_reference_top_k_and_influence(tmp_path, kind: str, inv_tau: float, bias: float) -> None:
    d, n = 32, 3000
    xb = random_unit(n, d, seed=2)
    heads = identity_heads(d)
    store = write_store(tmp_path / "s", xb, [f"img_{i}.jpg" for i in range(n)], "test")
    params = default_params(kind, n)
    if kind == "ivf":
        params["nprobe"] = params["nlist"]  # exhaustive probe: the ANN becomes exact, so equality must hold
    if kind == "hnsw":
        params["efSearch"] = 2000
    index = AttributionIndex.in_memory(
        build_faiss(xb, kind, params, progress=False),
        IndexMeta(kind, store.checksum, "test", heads.fingerprint(), d, n, params),
    )
    cal = Calibrator(inv_tau, bias)
    for qi in range(5):
        xq = xb[qi * 7] * 0.8 + random_unit(1, d, seed=100 + qi)[0] * 0.6
        xq /= np.linalg.norm(xq)
        order, ref = reference_influence(xb @ xq, inv_tau, bias)
        res = index.search(xq, 50, cal)
        np.testing.assert_array_equal(res.I, order[:50])
        np.testing.assert_allclose(res.influence, ref[:50], atol=1e-6)
        assert res.influence.sum() + res.remaining_influence == pytest.approx(1.0, abs=1e-9)


def test_mass_window_of_released_clip_calibrator() -> None:
    cal = Calibrator(16.1587, -38.5)
    assert cal.b == pytest.approx(-0.0385)
    assert cal.mass_window == pytest.approx(0.2015, abs=1e-3)  # "within ~0.20 cosine of the best match"
    assert cal.describe() == "inv temp 16.1587; bias -0.0385"


def test_calibrator_round_trip_in_released_format(tmp_path) -> None:
    save_calibrator(Calibrator(16.1587, -38.5), tmp_path / "c.pth")
    raw = torch.load(tmp_path / "c.pth", weights_only=True)
    assert set(raw) == {"inv_tau", "bias"} and raw["inv_tau"].ndim == 0
    cal = load_calibrator(tmp_path / "c.pth")
    assert (cal.inv_tau, cal.bias) == (pytest.approx(16.1587), pytest.approx(-38.5))


def test_calibrator_that_gives_no_mass_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"bias"):
        Calibrator(10.0, -1000.0)
    torch.save({"inv_tau": torch.tensor(10.0), "bias": torch.tensor(-5000.0)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth"):
        load_calibrator(tmp_path / "bad.pth")


def test_calibration_loss_matches_the_formula() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.8, 0.1], [0.2, 0.7, 0.6, 0.3]])
    count = torch.tensor([1, 2])
    inv_tau, bias = torch.tensor(12.0), torch.tensor(-30.0)
    got = calibration_loss(scores, count, inv_tau, bias)
    per = []
    for row, c in zip(scores.tolist(), count.tolist(), strict=True):
        s = np.array(row) - max(row)
        t = np.log1p(np.exp(100 * (np.exp(12.0 * s) - 0.03))) / 100
        per.append(math.log(t.sum()) - np.log(t[:c]).mean())
    assert got.item() == pytest.approx(float(np.mean(per)), rel=1e-5)
