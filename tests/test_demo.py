"""The embedded default: a real, deterministic demo bundle with AbC-format ground truth."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np

from attribution_core.core.paths import project_root
from attribution_core.data.store import FeatureStore
from attribution_core.demo import QUERY_TYPES, build_demo, demo_dir, demo_json
from attribution_core.features.attributor import FeatureAttributor
from attribution_core.registry import get_space


def test_bundle_layout_and_ground_truth(demo_bundle) -> None:
    corpus = sorted((demo_dir() / "corpus").rglob("*.jpg"))
    assert len(corpus) >= 1000
    assert corpus[0].relative_to(demo_dir()).as_posix().startswith("corpus/brick/view_")
    test_case = json.loads(demo_json().read_text())
    assert len(test_case) >= 20
    for entry in test_case:
        assert set(entry) == {"exemplar", "synth", "class_id", "category"}
        assert set(entry["synth"]) == set(QUERY_TYPES) and 1 <= len(entry["exemplar"]) <= 4
        for path in [*entry["exemplar"], *(p for paths in entry["synth"].values() for p in paths)]:
            assert (project_root() / path).is_file(), path
    exemplar_photos = {e["category"] for e in test_case}
    corpus_photos = {p.parent.name for p in corpus}
    assert not exemplar_photos & corpus_photos, "exemplars come from photos the corpus never saw"


def test_store_is_corpus_and_exemplars(demo_bundle) -> None:
    store = FeatureStore.open(get_space("demo_efficientnet_lite0").store)
    kinds = {p.split("/")[0] for p in store.paths}
    assert kinds == {"corpus", "exemplar"} and store.dim == 1280


def test_feature_space_matters(demo_bundle) -> None:
    """Object queries find their own exemplars in the top 10 far more often with a real backbone than with pixels."""
    test_case = json.loads(demo_json().read_text())
    hits = {}
    for name in ("demo_efficientnet_lite0", "demo_pixel"):
        attributor = FeatureAttributor.load(get_space(name), device="cpu", progress=False)
        found = []
        for entry in test_case:
            queries = [project_root() / p for p in entry["synth"]["object"]]
            for r in attributor.attribute(queries, 10):
                found.append(any(f"/exemplar/{entry['class_id']}/" in a.path for a in r.results))
        hits[name] = float(np.mean(found))
    assert hits["demo_efficientnet_lite0"] >= 0.7
    assert hits["demo_efficientnet_lite0"] > hits["demo_pixel"] + 0.2, hits


def test_second_build_does_no_work(demo_bundle, caplog) -> None:
    """What the session's fixture built (the feature spaces) is confirmed, not rebuilt."""
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="attribution_core"):
        build_demo(progress=False, diffusion_test_case=False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("attribution_core")]
    assert messages == ["demo bundle is up to date"] and time.perf_counter() - t0 < 5


def test_tuned_space_beats_the_untuned_backbone_on_held_out_exemplars(demo_bundle) -> None:
    """Issue 5's bar: on the held-out split (exemplars never seen in training), the tuned heads beat the same
    backbone without heads on Recall@10 and mAP for both query types, and the fitted calibrator puts more mass on
    the true exemplars than the uncalibrated default."""
    from dataclasses import replace

    from attribution_core.attribute.calibration import Calibrator
    from attribution_core.demo import demo_split_json
    from attribution_core.judges.abc import read_test_case, run_evaluation

    heldout = read_test_case(demo_split_json("heldout"))
    train = read_test_case(demo_split_json("train"))
    assert not {p for m in heldout.models for p in m.exemplar} & {p for m in train.models for p in m.exemplar}
    tuned_spec = get_space("demo_efficientnet_lite0_tuned")
    spaces = [get_space("demo_efficientnet_lite0"), tuned_spec, replace(tuned_spec, calibrator=Calibrator())]
    (_, plain), (_, tuned), (_, uncalibrated) = run_evaluation(
        [heldout], spaces, project_root(), progress=False, influence=True
    )
    for ptype in ("object", "style"):
        for metric in ("recall@10", "mAP"):
            key = f"{ptype}-{metric}"
            assert tuned.metrics[key] > plain.metrics[key], (key, tuned.metrics, plain.metrics)
        assert tuned.metrics[f"{ptype}-influence"] > uncalibrated.metrics[f"{ptype}-influence"] + 0.3


def test_the_diffusion_test_case_is_written_in_the_abc_format_and_evaluated(demo_bundle, tmp_path, monkeypatch) -> None:
    """One model of the diffusion test case, built as its first need builds all ten (customise the demo model
    on its exemplars, generate with the new token), in a separate home: the AbC format plus each image's prompt and
    its customised model; the PNGs carry their prompt; unlearning evaluates it (every exemplar ranked among the
    corpus and the exemplars, better than chance on average)."""
    from attribution_core.data.testcase import first_per_type, read_test_case
    from attribution_core.demo import diffusion_testcase, unlearning_space
    from attribution_core.diffusion.generation import read_generation
    from attribution_core.judges.abc import run_evaluation
    from attribution_core.registry import get_space

    distilled = get_space("demo_distilled")  # its store is the real bundle's
    home = tmp_path / "home"
    (home / "dataset" / "json").mkdir(parents=True)
    (home / "dataset" / "demo").mkdir()
    for name in ("captions.jsonl", "corpus", "exemplar"):  # read from the real bundle; outputs go to the new home
        (home / "dataset" / "demo" / name).symlink_to(demo_dir() / name)
    entries = json.loads(demo_json().read_text())
    first = next(e for e in entries if e["class_id"].endswith(f"_q{diffusion_testcase.QUADRANTS[0]}"))
    (home / "dataset" / "json" / demo_json().name).write_text(json.dumps([first]))
    monkeypatch.setenv("ATTRIBUTION_HOME", str(home))
    monkeypatch.setattr(diffusion_testcase, "SEEDS", (0,))
    path = diffusion_testcase.build_diffusion_test_case(progress=False)

    assert path == home / "dataset" / "json" / "test_demo_diffusion.json"
    [entry] = json.loads(path.read_text())
    assert entry["exemplar"] == first["exemplar"] and entry["class_id"] == first["class_id"]
    assert set(entry["synth"]) == set(diffusion_testcase.PROMPTS)
    token = diffusion_testcase.token_of(first["class_id"])
    for images in entry["synth"].values():
        for image in images:
            prompt = entry["prompts"][image]
            assert token in prompt and read_generation(home / image).prompt == prompt
    assert (home / entry["customized"] / "customization.json").is_file()

    spec = unlearning_space()
    quick = {"steps": 2, "draws": 16, "batches": 1, "score_timesteps": 2, "fisher_epochs": 1}
    spec = dataclasses.replace(spec, options={**spec.options, "config": quick})
    test_case = first_per_type(read_test_case(path), 1)
    [(_, result)] = run_evaluation([test_case], [spec], home, device="cpu", progress=False)
    n_candidates = len((demo_dir() / "captions.jsonl").read_text().splitlines()) + len(first["exemplar"])
    ranks = [r for row in result.ranks for r in row["ranks"]]
    assert len(result.ranks) == len(diffusion_testcase.PROMPTS) and len(ranks) == 2 * len(first["exemplar"])
    assert all(1 <= r <= n_candidates for r in ranks)
    assert np.mean(ranks) < n_candidates / 2  # chance would put the exemplars' mean rank near the middle
    assert set(result.metrics) >= {f"{t}-mAP" for t in diffusion_testcase.PROMPTS}
    # the distilled space reads each image's prompt and embeds the exemplars with the customisation prompt; with
    # scores_top its records keep what `attribute calibrate` fits on
    [(_, result)] = run_evaluation([test_case], [distilled], home, device="cpu", progress=False, scores_top=50)
    assert len(result.ranks) == len(diffusion_testcase.PROMPTS)
    for row in result.ranks:
        assert len(row["exemplar_scores"]) == len(first["exemplar"]) and len(row["corpus_top"]) == 50
        assert row["corpus_top"] == sorted(row["corpus_top"], reverse=True)
        assert all(1 <= r <= n_candidates for r in row["ranks"])
