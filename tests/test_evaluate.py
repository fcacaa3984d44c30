"""AbC evaluation: metrics on hand-made rankings, counting == argsort, the released JSONs, the demo end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attribution_core.attribute.interface import Attributor, TrainingRecord
from attribution_core.core.errors import AttributionError
from attribution_core.core.paths import project_root
from attribution_core.judges.abc import (
    average_precision,
    check_test_case_files,
    describe_test_case,
    evaluate_space,
    exemplar_ranks,
    read_test_case,
    recall_at,
)

from .helpers import random_unit

RELEASED = Path(__file__).resolve().parents[2] / "shared" / "abc" / "json"


def original_ranks(xb: np.ndarray, ex: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The original eval.py: concatenate corpus and exemplars, argsort every score, find the exemplars."""
    all_feat = torch.from_numpy(np.concatenate([xb, ex]))
    predictions = torch.argsort(-(all_feat @ torch.from_numpy(q)))
    return (np.where(predictions.numpy() >= xb.shape[0])[0] + 1).astype(np.int64)


def test_metrics_on_hand_made_rankings() -> None:
    ranks = np.array([1, 3, 6])
    assert recall_at(ranks, 5) == pytest.approx(2 / 3)
    assert recall_at(ranks, 1) == pytest.approx(1 / 3) and recall_at(ranks, 100) == 1.0
    assert average_precision(ranks) == pytest.approx((1 / 1 + 2 / 3 + 3 / 6) / 3)
    assert average_precision(np.array([1, 2, 3])) == 1.0
    assert average_precision(np.array([10])) == pytest.approx(0.1)


@pytest.mark.parametrize("related", [False, True])  # exemplars unrelated (full counting) or near the query (sparse)
def test_counting_equals_full_argsort_on_random_data(related: bool) -> None:
    rng = np.random.default_rng(0)
    xb = random_unit(20000, 32, seed=1)
    queries, ex_scores, expected = [], [], []
    for i in range(60):
        ex = random_unit(int(rng.integers(1, 14)), 32, seed=100 + i)
        if related:
            ex = ex * 0.3 + random_unit(1, 32, seed=900 + i)
            ex /= np.linalg.norm(ex, axis=1, keepdims=True)
        q = ex[0] + 0.7 * random_unit(1, 32, seed=500 + i)[0]
        q /= np.linalg.norm(q)
        queries.append(q)
        ex_scores.append(ex @ q)
        expected.append(original_ranks(xb, ex, q))
    got = exemplar_ranks(np.stack(queries), xb, ex_scores, batch_size=7, chunk=3000)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


class VectorMethod(Attributor):
    """A method whose training images are fixed vectors and whose files are named vectors: the protocol's input
    made by hand (the judge never sees a method's kind)."""

    method = "vectors"

    def __init__(self, xb: np.ndarray, feats: dict[str, np.ndarray], root: Path):
        self.name, self.xb, self.feats, self.root = "vectors", xb, feats, root

    @classmethod
    def load(cls, spec, **_):  # pragma: no cover - built directly
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.xb)

    def training_record(self, row: int) -> TrainingRecord:
        return TrainingRecord(self.root / "corpus" / f"{row}.png")

    def candidate_scores(self, queries, candidates, progress=False, cancel=None) -> np.ndarray:
        xq = np.stack([self.feats[q.path.name] for q in queries])
        ex = [self.feats[s.path.name] for s in candidates.extra]
        xc = np.concatenate([self.xb[candidates.rows], np.stack(ex)]) if ex else self.xb[candidates.rows]
        return xq @ xc.T


def test_synth_identical_to_an_exemplar_ranks_it_first(tmp_path) -> None:
    d = 16
    xb = random_unit(500, d, seed=2)
    ex = random_unit(3, d, seed=3)
    feats = {"e0": ex[0], "e1": ex[1], "e2": ex[2], "s0": ex[1].copy()}
    for name in feats:
        (tmp_path / name).write_bytes(b"")
    tc_file = tmp_path / "test_tiny.json"
    tc_file.write_text(json.dumps([{"exemplar": ["e0", "e1", "e2"], "synth": {"object": ["s0"]}, "class_id": "m"}]))
    result = evaluate_space(VectorMethod(xb, feats, tmp_path), read_test_case(tc_file), tmp_path, progress=False)
    assert result.ranks[0]["ranks"][0] == 1
    assert result.metrics["object-recall@5"] >= 1 / 3


def test_the_protocol_ranks_as_the_original_argsort_and_leaves_out_the_test_cases_exemplars(tmp_path) -> None:
    """Ranks from any method's candidate scores equal the original eval.py's argsort over corpus ∪ exemplars; a
    training image that is one of the test case's exemplars (the same file) is not counted twice."""
    xb = random_unit(300, 8, seed=5)
    ex = random_unit(2, 8, seed=6)
    q = ex[0] + 0.9 * random_unit(1, 8, seed=7)[0]
    q /= np.linalg.norm(q)
    feats = {"a.png": ex[0], "b.png": ex[1], "q.png": q}
    (tmp_path / "corpus").mkdir()
    for name in feats:
        (tmp_path / name).write_bytes(b"")
    method = VectorMethod(np.concatenate([xb, ex[:1]]), feats, tmp_path)
    method.training_record = lambda row: TrainingRecord(tmp_path / ("a.png" if row == 300 else f"corpus/{row}.png"))
    tc_file = tmp_path / "tc.json"
    tc_file.write_text(json.dumps([{"exemplar": ["a.png", "b.png"], "synth": {"o": ["q.png"]}, "class_id": "m"}]))
    result = evaluate_space(method, read_test_case(tc_file), tmp_path, progress=False)
    np.testing.assert_array_equal(result.ranks[0]["ranks"], original_ranks(xb, ex, q))


@pytest.mark.skipif(not RELEASED.is_dir(), reason="the released AbC JSON files are not beside the checkout")
def test_released_json_files_parse_and_describe() -> None:
    art = describe_test_case(read_test_case(RELEASED / "test_artchive.json"))
    assert art["models"] == 255 and art["prompt_types"] == {"gpt": 10200, "object": 10200}
    bam = describe_test_case(read_test_case(RELEASED / "test_bamfg.json"))
    assert bam["models"] == 250 and set(bam["prompt_types"]) == {"gpt", "object"}
    obs = describe_test_case(read_test_case(RELEASED / "test_observed_imagenet.json"))
    assert obs["models"] == 593 and set(obs["prompt_types"]) == {"gpt", "media"}
    assert obs["exemplars"]["min"] == obs["exemplars"]["max"] == 1
    out = subprocess.run(
        [sys.executable, "-m", "attribution_core", "evaluate", "--describe", str(RELEASED / "test_bamfg.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["models"] == 250


def test_missing_images_are_reported_together(tmp_path) -> None:

    tc_file = tmp_path / "test_missing.json"
    tc_file.write_text(json.dumps([{"exemplar": ["a.jpg", "b.jpg"], "synth": {"object": ["c.png"]}}]))
    with pytest.raises(AttributionError, match=r"3 of 3 images are missing .*download_dataset.sh exemplar"):
        check_test_case_files(read_test_case(tc_file), tmp_path)
    tc_file.write_text("{not json")
    with pytest.raises(AttributionError, match="not a JSON file"):
        read_test_case(tc_file)


def test_demo_evaluation_end_to_end(demo_bundle, tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "attribution_core",
            "-q",
            "evaluate",
            "dataset/json/test_demo.json",
            "--space",
            "demo_efficientnet_lite0",
            "--space",
            "demo_pixel",
            "--out",
            str(tmp_path / "m.csv"),
            "--dump-ranks",
            str(tmp_path / "ranks.jsonl"),
        ],
        capture_output=True,
        text=True,
        cwd=project_root(),
        env={**os.environ},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "| space | object-recall@5 | object-recall@10 | object-recall@100 | object-mAP | style-recall@5" in out.stdout
    )
    rows = {r["space"]: r for r in csv.DictReader((tmp_path / "m.csv").open())}
    assert set(rows) == {"demo_efficientnet_lite0", "demo_pixel"}
    assert float(rows["demo_efficientnet_lite0"]["object-recall@10"]) > float(rows["demo_pixel"]["object-recall@10"])
    # anyone can recompute the metrics from the dumped ranks
    dumped = [json.loads(line) for line in (tmp_path / "ranks.jsonl").read_text().splitlines()]
    mine = [r for r in dumped if r["space"] == "demo_efficientnet_lite0" and r["type"] == "object"]
    assert len(mine) == 80
    recomputed = np.mean([recall_at(np.array(r["ranks"]), 10) for r in mine])
    assert float(rows["demo_efficientnet_lite0"]["object-recall@10"]) == pytest.approx(recomputed, abs=1e-6)
    ap = np.mean([average_precision(np.array(r["ranks"])) for r in mine])
    assert float(rows["demo_efficientnet_lite0"]["object-mAP"]) == pytest.approx(ap, abs=1e-6)


def test_max_per_type_evaluates_every_space_on_the_same_images(demo_bundle, tmp_path) -> None:
    """`--max-per-type N` bounds a slow method's time; feature spaces answer the same N images, so rows compare."""
    ranks = tmp_path / "ranks.jsonl"
    args = ["evaluate", "dataset/json/test_demo.json", "--space", "demo_pixel", "--max-per-type", "2"]
    out = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", *args, "--dump-ranks", str(ranks)],
        capture_output=True,
        text=True,
        cwd=project_root(),
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    dumped = [json.loads(line) for line in ranks.read_text().splitlines()]
    per_model_type: dict[tuple[str, str], int] = {}
    for r in dumped:
        per_model_type[(r["model"], r["type"])] = per_model_type.get((r["model"], r["type"]), 0) + 1
    assert set(per_model_type.values()) == {2}
    assert f"({len({m for m, _ in per_model_type})} models, {len(dumped)} synthesized images)" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "attribution_core", *args[:-1], "0"], capture_output=True, text=True, cwd=project_root()
    )
    assert bad.returncode != 0 and "--max-per-type must be at least 1" in bad.stderr
    assert "Traceback" not in bad.stderr
