"""The linear datamodeling score (issue: a judge with statistical power): the harness tells a right attribution
from a random one on a problem where the truth is known, subsets and retrains are reproducible and cached, and
every method reaches the harness through its whole-set scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attribution_core.attribute.interface import Attributor, TrainingRecord
from attribution_core.attribute.rows import method_scores
from attribution_core.core.errors import AttributionError
from attribution_core.diffusion import ModelConfig, TrainConfig
from attribution_core.diffusion.data import TrainingSet
from attribution_core.judges.counterfactual.lds import lds, predicted_effects
from attribution_core.judges.counterfactual.lds_stats import bootstrap_lds, compare, effects_from_scores
from attribution_core.judges.counterfactual.rankings import method_ranking
from attribution_core.judges.counterfactual.subsets import draw_subsets, save_subsets, subset_models

from .helpers import tiny_training_set


def _linear_problem(n: int = 120, m: int = 64, queries: int = 12, noise: float = 0.05, seed: int = 0):
    """Subset models whose query loss is exactly additive in the images they hold (plus a little noise): each image
    i lowers query q's loss by effect[q, i] when present."""
    rng = np.random.default_rng(seed)
    member = draw_subsets(n, m, 0.5, seed=3)
    effect = rng.exponential(1.0, size=(queries, n)) * (rng.random((queries, n)) < 0.2)
    losses = {f"q{q}": 10.0 - member.astype(float) @ effect[q] + noise * rng.standard_normal(m) for q in range(queries)}
    return member, effect, losses


def test_lds_of_the_true_effects_is_near_one_and_of_random_scores_near_zero() -> None:
    member, effect, losses = _linear_problem()
    names = list(losses)
    rng = np.random.default_rng(1)
    scores = {
        "true effect": {q: effect[i] for i, q in enumerate(names)},
        "random": {q: rng.permutation(effect.shape[1]).astype(float) for q in names},
        "backwards": {q: -effect[i] for i, q in enumerate(names)},
    }
    effects = {m: effects_from_scores(member, v) for m, v in scores.items()}
    boot = bootstrap_lds(effects, losses, names, names, resamples=300)
    mean = dict(zip(boot.methods, boot.point, strict=True))
    assert mean["true effect"] > 0.95
    assert abs(mean["random"]) < 0.12
    # the sign convention: scoring the helpful images lowest predicts the losses backwards
    assert mean["backwards"] < -0.95
    (d,) = compare(boot, [("true effect", "random")])
    assert d["verdict"] == "true effect higher" and d["low"] > 0.5


def test_a_higher_score_predicts_a_lower_loss_when_the_image_is_in_the_subset() -> None:
    member = np.array([[True, False], [False, True]])
    g = predicted_effects(member, np.array([2.0, 0.0]))  # image 0 helps the query
    assert g[0] < g[1]  # the subset holding it is predicted the lower loss
    assert lds(member, np.array([2.0, 0.0]), np.array([1.0, 3.0])) == pytest.approx(1.0)
    assert lds(member, np.array([2.0, 0.0]), np.array([3.0, 1.0])) == pytest.approx(-1.0)
    assert lds(member, np.array([1.0, 1.0]), np.array([3.0, 1.0])) == 0.0  # a constant prediction ranks nothing


def test_differences_between_identical_methods_are_a_tie() -> None:
    member, effect, losses = _linear_problem(queries=8, noise=2.0)
    names = list(losses)
    same = effects_from_scores(member, {q: effect[i] for i, q in enumerate(names)})
    boot = bootstrap_lds({"a": same, "b": dict(same)}, losses, names, names, resamples=200)
    (d,) = compare(boot, [("a", "b")])
    assert d["mean"] == 0 and d["low"] == d["high"] == 0 and d["verdict"] == "tie"


def test_subsets_are_reproducible_from_their_seed_and_saved_as_paths(tmp_path) -> None:
    a, b = draw_subsets(50, 6, 0.5, seed=7), draw_subsets(50, 6, 0.5, seed=7)
    assert np.array_equal(a, b)
    assert (a.sum(axis=1) == 25).all()
    assert len({row.tobytes() for row in a}) == 6  # six different subsets
    assert not np.array_equal(a, draw_subsets(50, 6, 0.5, seed=8))
    # subset j is drawn from seed + j alone: a longer run extends, never redraws, the earlier subsets
    assert np.array_equal(draw_subsets(50, 9, 0.5, seed=7)[:6], a)
    data = TrainingSet(np.zeros((50, 1)), [""] * 50, [f"img/{i:02d}.jpg" for i in range(50)], tmp_path)
    save_subsets(a, data, tmp_path / "subsets.json")
    saved = json.loads((tmp_path / "subsets.json").read_text())
    assert saved[0] == [f"img/{i:02d}.jpg" for i in np.flatnonzero(a[0])]
    with pytest.raises(AttributionError, match="alpha"):
        draw_subsets(50, 6, 1.0, seed=7)


MODEL = ModelConfig(
    resolution=8, block_out_channels=(16, 32), attention_levels=(False, True), text_dim=32, text_layers=1
)
TRAIN = TrainConfig(steps=20, batch_size=8, warmup=2, seed=0, checkpoint_every=1000, device="cpu")


def test_a_subset_retrain_is_reloaded_from_the_cache_and_a_changed_subset_retrains(tmp_path) -> None:
    data = tiny_training_set(n=8, resolution=8)
    member = draw_subsets(len(data), 2, 0.5, seed=0)
    first = {j: m.fingerprint() for j, m in subset_models(data, member, tmp_path, MODEL, TRAIN, progress=False)}
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and first[0] != first[1]
    again = {j: m.fingerprint() for j, m in subset_models(data, member, tmp_path, MODEL, TRAIN, progress=False)}
    assert again == first and sorted(p.name for p in tmp_path.iterdir()) == folders  # loaded, not retrained
    changed = draw_subsets(len(data), 2, 0.5, seed=5)
    assert not np.array_equal(changed, member)
    list(subset_models(data, changed, tmp_path, MODEL, TRAIN, progress=False))
    assert len(list(tmp_path.iterdir())) == 4  # a different subset is a different model
    removed = json.loads((tmp_path / folders[0] / "removed.json").read_text())
    assert len(removed) == 4  # half of the 8 images left out


class _RankOnly(Attributor):
    """A method that ranks its top k but cannot score the whole training set."""

    method = "rank_only"
    name = "rank_only_space"

    @classmethod
    def load(cls, spec, **_):
        return cls()

    def __len__(self) -> int:
        return 8

    def training_record(self, row: int) -> TrainingRecord:
        return TrainingRecord(Path(f"{row}.jpg"))


def test_a_method_without_whole_set_scores_is_a_one_line_error_naming_it() -> None:
    data = tiny_training_set(n=8, resolution=8)
    with pytest.raises(AttributionError, match="rank_only") as err:
        method_scores(_RankOnly(), Image.new("RGB", (8, 8)), "a photo", data)
    assert "\n" not in str(err.value)


def test_any_registered_method_scores_the_training_set_through_its_files(tmp_path) -> None:
    """The harness reaches a plug-in method through its whole-set scores, matched to the training set by file."""
    from attribution_core.attribute.spaces import SpaceSpec
    from tests.plugin_thumbnail import ThumbnailAttributor

    data = tiny_training_set(n=8, resolution=8)
    for path, image in zip(data.paths, data.images, strict=True):
        out = tmp_path / path
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((image.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)).save(out)
    # the plug-in's folder holds the training set in another order, plus an image outside it
    folder = tmp_path / "all"
    folder.mkdir()
    for i, path in enumerate(reversed(data.paths)):
        (folder / f"{i}.jpg").symlink_to(tmp_path / path)
    Image.new("RGB", (8, 8), "red").save(folder / "zz_outside.jpg")
    attributor = ThumbnailAttributor.load(
        SpaceSpec(name="thumbs", label="thumbs", method="thumbnail", options={"folder": str(folder)})
    )
    data = TrainingSet(data.images, data.captions, [f"all/{len(data) - 1 - i}.jpg" for i in range(len(data))], tmp_path)
    query = Image.open(folder / "3.jpg").convert("RGB")  # training row len - 1 - 3 = 4
    scores = method_scores(attributor, query, "a photo", data)
    assert scores.shape == (8,) and int(np.argmax(scores)) == 4
    assert method_ranking(attributor, query, "a photo", data)[0] == 4


def test_attribute_lds_validates_first_then_reports_and_resumes_without_retraining(demo_bundle, tmp_path) -> None:
    """``attribute lds`` on a tiny configuration: the reported track refuses to start (one line) before a
    validation exists; the validation track freezes its choices; the reported track then writes every kind of table
    with the baselines, the datamodel and the config hash; run again, it trains and measures nothing; a freeze
    under earlier rules of the harness, or of another configuration, is refused."""
    import subprocess
    import sys

    from attribution_core.core.paths import project_root

    args = [
        sys.executable, "-m", "attribution_core", "-q", "lds", "--out", str(tmp_path),
        "--photos", "coins", "clock", "--views-per-photo", "3", "--steps", "30", "--batch-size", "8",
        "--subsets", "4", "--seeds", "1", "2", "--validation-seeds", "7", "--loss-timesteps", "5",
        "--loss-draws", "1", "--bootstrap", "200", "--methods", "demo_pixel", "caption-only", "random",
    ]  # fmt: skip
    refused = subprocess.run(args, capture_output=True, text=True, cwd=project_root(), timeout=600)
    assert refused.returncode != 0 and "--track validation first" in refused.stderr
    assert "Traceback" not in refused.stderr
    validation = subprocess.run([*args, "--track", "validation"], capture_output=True, text=True, cwd=project_root(),
                                timeout=600)  # fmt: skip
    assert validation.returncode == 0, validation.stderr[-2000:]
    frozen = json.loads((tmp_path / "frozen.json").read_text())
    assert set(frozen["choices"]["temperatures"]) == {"demo_pixel", "caption-only", "random"}
    assert (tmp_path / "validation" / "table.md").is_file()
    assert not (tmp_path / "queries").exists()  # the validation run never made a reported query
    first = subprocess.run(args, capture_output=True, text=True, cwd=project_root(), timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    for rule in ("raw whole-set score", "shared transform", "query-specific loss"):
        assert rule in first.stdout
    for row in ("| datamodel (CV) |", "| caption-only |", "| random |", "| demo_pixel |"):
        assert row in first.stdout
    assert frozen["config_hash"] in first.stdout
    for name in ("table.md", "table.csv", "per_query.csv", "lds.png", "subsets.json", "scores.json", "losses.jsonl"):
        assert (tmp_path / name).is_file(), name
    subsets = json.loads((tmp_path / "subsets.json").read_text())
    assert len(subsets) == 4 and all(len(s) == 3 for s in subsets)  # half of 6 images each
    losses = (tmp_path / "losses.jsonl").read_text()
    again = subprocess.run(args, capture_output=True, text=True, cwd=project_root(), timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "losses.jsonl").read_text() == losses  # nothing measured twice
    # a loss is reused only for the same query (its digest): a row whose digest differs (a query made again
    # differently) is measured again, to the same value
    rows = [json.loads(line) for line in losses.splitlines()]
    assert all(len(r["digest"]) == 16 for r in rows)
    query = json.loads((tmp_path / "queries.json").read_text())[0]["name"]  # a reported query
    stale = [{**r, "digest": "0" * 16} if r["query"] == query else r for r in rows]
    (tmp_path / "losses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    remeasured = subprocess.run(args, capture_output=True, text=True, cwd=project_root(), timeout=600)
    assert remeasured.returncode == 0, remeasured.stderr[-2000:]
    fresh = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()[len(rows) :]]
    before = {(r["key"], r["query"]): r for r in rows}
    assert query in {r["query"] for r in fresh}
    for r in fresh:
        assert r["digest"] == before[(r["key"], r["query"])]["digest"]
        assert r["loss"] == pytest.approx(before[(r["key"], r["query"])]["loss"], rel=1e-9)
    changed = subprocess.run([*args[:-3], "demo_pixel", "random"], capture_output=True, text=True,
                             cwd=project_root(), timeout=600)  # fmt: skip
    assert changed.returncode != 0 and "another configuration" in changed.stderr
    (tmp_path / "frozen.json").write_text(json.dumps({**frozen, "protocol": 1}))
    earlier = subprocess.run(args, capture_output=True, text=True, cwd=project_root(), timeout=600)
    assert earlier.returncode != 0 and "earlier rules" in earlier.stderr and "Traceback" not in earlier.stderr


def test_the_default_base_model_is_recorded_as_spaces_a_trial_configuration_is_not(tmp_path, monkeypatch) -> None:
    """The harness's base model becomes ``counterfactual_unlearning`` (labelled and distilled by the usual commands),
    and ``counterfactual_distilled`` once a student for it exists; a tiny trial configuration records nothing."""
    from attribution_core.demo.counterfactual import base_spaces, student_dir
    from attribution_core.demo.testbed import PhotoTestbed
    from attribution_core.judges.counterfactual.base_model import is_default_base, record_base
    from attribution_core.judges.counterfactual.config import CounterfactualConfig, LdsConfig

    photos = PhotoTestbed()
    assert is_default_base(LdsConfig(), photos) and is_default_base(CounterfactualConfig(device="cuda"), photos)
    assert is_default_base(LdsConfig(photos=photos.subjects), photos), "every photo, named, is the default set"
    assert not is_default_base(LdsConfig(steps=30), photos) and not is_default_base(
        LdsConfig(photos=("coins",)), photos
    )
    monkeypatch.setenv("ATTRIBUTION_HOME", str(tmp_path))
    assert base_spaces() == []
    cache = tmp_path / "feats" / "counterfactual"
    record_base(cache, cache / "abc", "f00d", ["corpus/coins/view_000.jpg"], ["a photo of coins"], tmp_path / "demo")
    (unlearning,) = base_spaces()
    assert unlearning.name == "counterfactual_unlearning" and unlearning.options["model"] == str(cache / "abc")
    assert (
        cache / "base_captions.jsonl"
    ).read_text() == '{"path": "corpus/coins/view_000.jpg", "caption": "a photo of coins"}\n'
    student_dir("f00d").mkdir(parents=True)
    (student_dir("f00d") / "student.json").write_text(json.dumps({"backbone": "efficientnet_lite0"}))
    distilled = base_spaces()[1]
    assert distilled.name == "counterfactual_distilled" and distilled.method == "distilled"
    assert distilled.options == {"student": str(student_dir("f00d")), "model": str(cache / "abc")}


def test_a_losses_file_cut_short_is_read_without_its_last_line_and_appended_to_cleanly(tmp_path, caplog) -> None:
    """A run killed mid-write (or a copy of the file taken mid-write, as a commit of a running run) leaves a line cut
    short: it is skipped with a warning (measured again), and the next rows start on a line of their own."""
    from attribution_core.judges.counterfactual.lds_run import _append_jsonl, _read_jsonl

    path = tmp_path / "losses.jsonl"
    path.write_text('{"key": "a", "loss": 1.0}\n{"key": "b", "lo')
    with caplog.at_level("WARNING"):
        assert _read_jsonl(path) == [{"key": "a", "loss": 1.0}]
    assert any("cut short" in m for m in caplog.messages)
    _append_jsonl(path, [{"key": "c", "loss": 3.0}])
    assert _read_jsonl(path) == [{"key": "a", "loss": 1.0}, {"key": "c", "loss": 3.0}]
