"""The fine-tune testbed: captions name shared attributes only (no query's prompt is a training caption, no caption
names one image), no two training images are views of one drawing, its reported and validation queries come from
disjoint held-out combinations, and the LDS's shared transform treats unlearning and a feature space alike."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from attribution_core.demo.shapes import DRAWINGS, all_combos, draw, held_out_combos, training_combos
from attribution_core.demo.shapes_testbed import ShapesTestbed
from attribution_core.judges.counterfactual.config import LdsConfig


def test_no_reported_query_prompt_is_a_training_caption_and_no_caption_names_one_image():
    captions = Counter(c.caption for c in training_combos() for _ in range(DRAWINGS))
    assert len(training_combos()) * DRAWINGS >= 256
    assert min(captions.values()) >= 2  # every caption is shared by several drawings
    testbed = ShapesTestbed()
    config = testbed.resolve(LdsConfig(testbed="finetune"))
    for validation in (False, True):
        queries = testbed.lds_queries(config, validation)
        assert not {q.prompt for q in queries} & set(captions)
    reported = {q.cluster for q in testbed.lds_queries(config, False)}
    held = {q.cluster for q in testbed.lds_queries(config, True)}
    assert len(reported) >= 16 and not reported & held
    assert len(testbed.lds_queries(config, False)) >= 48
    # every attribute value of a held-out combination is still seen in training, in other combinations
    for combo in held_out_combos(False):
        for attr in ("shape", "colour", "background"):
            assert any(getattr(t, attr) == getattr(combo, attr) for t in training_combos())


def test_no_two_training_images_are_views_of_one_drawing():
    drawings = [
        np.asarray(draw(c, f"train{k}"), dtype=np.int16) for c in training_combos()[:16] for k in range(DRAWINGS)
    ]
    for i in range(len(drawings)):
        for j in range(i + 1, len(drawings)):
            assert np.abs(drawings[i] - drawings[j]).mean() > 2  # different size, place, rotation or shade
    # and a drawing is reproducible from its key
    combo = all_combos()[0]
    assert np.array_equal(np.asarray(draw(combo, "train0")), np.asarray(draw(combo, "train0")))


def test_the_shared_transform_goes_through_one_code_path_for_every_method(monkeypatch):
    from attribution_core.judges.counterfactual import lds_tables
    from attribution_core.judges.counterfactual.lds_frozen import Choices
    from attribution_core.judges.counterfactual.lds_run import LdsData
    from attribution_core.judges.counterfactual.subsets import draw_subsets

    member = draw_subsets(10, 6, 0.5, 0)
    rng = np.random.default_rng(0)
    scores = {m: {"q": rng.standard_normal(10)} for m in ("unlearning", "demo_pixel")}
    data = LdsData(member, {"q": rng.standard_normal(6)}, {"q": 0.0}, scores, ["q"], [], {"q": "c"}, {"q": "gen"})
    seen = []
    real = lds_tables.shared_transform

    def spy(s, t):
        seen.append(t)
        return real(s, t)

    monkeypatch.setattr(lds_tables, "shared_transform", spy)
    lds_tables.effects(data, ["q"], "shared", Choices({"unlearning": 0.5, "demo_pixel": 2.0}, 1.0))
    assert sorted(seen) == [0.5, 2.0]  # both methods, each at its validated temperature, through one function
    seen.clear()
    lds_tables.effects(data, ["q"], "raw", None)
    assert seen == []  # the primary table reads the raw scores


def test_the_students_labels_hold_out_whole_combinations_and_never_touch_the_lds_queries():
    from attribution_core.demo.shapes_distilled import SEEDS_PER_COMBINATION, CombinationPlan

    plan = CombinationPlan()
    n = len(training_combos()) * SEEDS_PER_COMBINATION
    split = {i: plan.split(i) for i in range(n)}
    prompts = {s: {plan.prompt(i) for i in range(n) if split[i] == s} for s in ("train", "validation")}
    assert len(prompts["validation"]) >= 8 and not prompts["train"] & prompts["validation"]  # by combination
    testbed = ShapesTestbed()
    config = testbed.resolve(LdsConfig(testbed="finetune"))
    lds_prompts = {q.prompt for v in (False, True) for q in testbed.lds_queries(config, v)}
    assert not (prompts["train"] | prompts["validation"]) & lds_prompts  # the judge's queries are never labelled


def test_the_testbed_names_the_command_when_its_student_is_not_trained(demo_bundle):
    import pytest

    from attribution_core.core.errors import AttributionError
    from attribution_core.demo import demo_model_dir
    from attribution_core.diffusion.load import load_model

    testbed = ShapesTestbed()
    with pytest.raises(AttributionError, match=r"benchmarks/shapes_distill\.py"):
        testbed.attributor("shapes_distilled", load_model(demo_model_dir()), None, "cpu")


def test_leave_k_out_queries_are_not_the_lds_queries_and_come_from_16_clusters():
    testbed = ShapesTestbed()
    config = testbed.resolve(LdsConfig(testbed="finetune"))
    lds = {q.seed for v in (False, True) for q in testbed.lds_queries(config, v) if q.track == "gen"}
    seen: set[int] = set()
    for validation in (False, True):
        pairs = testbed.parse_queries(testbed.default_queries(validation))
        assert len({c for c, _ in pairs}) >= 16
        seeds = {s for _, s in pairs}
        assert len(seeds) == len(pairs) and not seeds & lds and not seeds & seen  # a seed of its own, none shared
        seen |= seeds


def test_every_generated_query_has_a_seed_of_its_own():
    # the fine-tuned model follows its prompts only weakly: one seed for every combination made one image of them all
    testbed = ShapesTestbed()
    config = testbed.resolve(LdsConfig(testbed="finetune"))
    gen = [q for v in (False, True) for q in testbed.lds_queries(config, v) if q.track == "gen"]
    assert len(gen) == 48 + 16
    assert len({q.seed for q in gen}) == len(gen)
    assert len({q.name for q in gen}) == len(gen)


def test_the_fine_tunes_new_options_leave_existing_cache_keys_alone_and_change_them_when_set():
    from dataclasses import replace

    from attribution_core.diffusion.finetune import FinetuneConfig

    default = FinetuneConfig()
    assert "word_lr_scale" not in default.key() and "train_text" not in default.key()  # models cached before them
    assert replace(default, word_lr_scale=10.0).key() != default.key()
    assert replace(default, train_text=True).key() != default.key()
    testbed = ShapesTestbed()
    for steps, warmup in ((150, 15), (600, 60)):  # a tenth of the steps: 15 at the CPU configuration's 150
        config = testbed.resolve(LdsConfig(testbed="finetune", steps=steps))
        assert testbed.retrainer(config, None, Path("unused")).config.warmup == warmup
