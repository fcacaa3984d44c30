"""Calibrated influence fitted on ground truth (issue: distilled attribution, item 4): a calibrator fitted on half of
a test case's customised models puts more of each held-out image's mass on its true exemplars than a flat rule, and
``attribute calibrate`` writes one a space can name."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from attribution_core.attribute.calibration import Calibrator, load_calibrator, save_calibrator, soft_influence
from attribution_core.core.paths import project_root
from attribution_core.judges.ground_truth import (
    GroundTruthQuery,
    exemplar_mass,
    fit_on_ground_truth,
    ground_truth_queries,
    selected_scores,
    split_by_model,
)


def _queries(models: int = 6, per_model: int = 4, corpus: int = 400, seed: int = 0) -> list[GroundTruthQuery]:
    """Each image's exemplars score a little above its corpus's best, as a good method's do."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(models):
        for i in range(per_model):
            rest = rng.normal(0.0, 0.1, corpus)
            ex = rest.max() + rng.uniform(0.02, 0.1, 2)
            out.append(GroundTruthQuery(f"model_{m}", "object", f"m{m}_{i}.png", np.concatenate([ex, rest]), 2))
    return out


def test_models_are_split_in_halves_never_shared() -> None:
    fit, held_out = split_by_model(_queries())
    assert {q.model for q in fit} == {"model_0", "model_2", "model_4"}
    assert {q.model for q in held_out} == {"model_1", "model_3", "model_5"}


def test_selected_scores_put_exemplars_first_then_the_best_corpus_scores() -> None:
    q = _queries(1, 1, corpus=50)[0]
    s, counts = selected_scores([q], top=10)
    assert counts.tolist() == [2] and s.shape == (1, 12)
    assert s[0, :2].tolist() == q.exemplars.tolist()
    assert s[0, 2:].tolist() == sorted(q.scores[2:], reverse=True)[:10]


def test_a_calibrator_fitted_on_half_the_models_puts_the_held_out_mass_on_the_exemplars() -> None:
    queries = _queries()
    flat = Calibrator()  # inv_tau 1 on cosines: nearly uniform over 400 images
    fit = fit_on_ground_truth(queries, lambda s: soft_influence(s, flat), flat, top=1000)
    assert (fit.fit_queries, fit.held_out_queries) == (12, 12)
    assert fit.mass_before < 0.02  # flat: 2 of ~400 images
    assert fit.mass_after > 0.5 > fit.mass_before  # most of the mass is now on the true exemplars
    assert fit.loss_after < fit.loss_before
    # the fit half never saw the held-out models: the same calibrator on the fit half does at least as well
    fit_half, _ = split_by_model(queries)
    assert exemplar_mass(fit_half, lambda s: soft_influence(s, fit.calibrator)) > 0.5


def test_a_test_case_with_one_model_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="two customised models"):
        fit_on_ground_truth(_queries(models=1), lambda s: soft_influence(s, Calibrator()))


def test_records_without_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="scores_top"):
        ground_truth_queries([{"model": "a", "type": "object", "synth": "x.png", "ranks": [1]}])


def test_a_calibrator_written_as_safetensors_reads_back(tmp_path) -> None:
    path = tmp_path / "calibrator.safetensors"
    save_calibrator(Calibrator(12.5, -40.0), path)
    assert set(load_file(str(path))) == {"inv_tau", "bias"}  # tensors only: nothing runs on load
    assert load_calibrator(path) == Calibrator(12.5, -40.0)


def test_attribute_calibrate_fits_a_space_on_a_test_cases_ground_truth(demo_bundle, tmp_path) -> None:
    """On the AbC demo test case (20 models, one image per model and prompt type): 10 models fit, 10 report."""
    run = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "calibrate", "demo_efficientnet_lite0",
         "--test-case", "dataset/json/test_demo.json", "--max-per-type", "1", "--out-dir", str(tmp_path),
         "--device", "cpu"],
        capture_output=True, text=True, cwd=project_root(), timeout=600, env=dict(os.environ),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith("| demo_efficientnet_lite0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "feature" and cells[2] == "20 / 20"  # 20 models × 2 prompt types × 1, split by model
    before, after = (float(x) for x in cells[3].split("→"))
    assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0
    loss_before, loss_after = (float(x) for x in cells[4].split("→"))
    assert loss_after < loss_before
    assert load_calibrator(tmp_path / "demo_efficientnet_lite0.safetensors").inv_tau > 0
    wrong = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "calibrate", "demo_model_pixel", "--test-case",
         str(tmp_path / "nowhere.json")],
        capture_output=True, text=True, cwd=project_root(), timeout=600,
    )  # fmt: skip
    assert wrong.returncode == 2 and "nowhere.json" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
