"""The plug-in point: user-declared spaces and a third-party method reach the CLI, the explorer and evaluation
without any change to their code."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from attribution_core.cli import build_parser, main
from attribution_core.core.errors import AttributionError
from attribution_core.core.paths import project_root
from attribution_core.registry import get_space, list_methods, load_spaces_file

APP = str(project_root() / "streamlit_demo.py")
PLUGIN = "tests.plugin_thumbnail"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution_core", *args],
        capture_output=True,
        text=True,
        cwd=project_root(),
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def user_spaces_file(tmp_path: Path) -> Path:
    """A user's spaces.toml: the demo's pixel features under their own name, paths relative to the file."""
    root = project_root()
    (tmp_path / "spaces.toml").write_text(
        f"""
[[spaces]]
name = "my_pixels"
label = "My pixel space"
backbone = "pixel"
store = "{root / "feats/demo/pixel/train"}"
corpus_store = "{root / "feats/demo/pixel/corpus"}"
calibrator = {{ inv_tau = 20.0, bias = -20.0 }}
description = "pixels over my own store"
"""
    )
    return tmp_path / "spaces.toml"


def test_spaces_file_parses_paths_and_calibrators(tmp_path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"spaces": [{"name": "a", "backbone": "pixel", "store": "feats/x"}]}))
    (spec,) = load_spaces_file(tmp_path / "s.json")
    assert spec.store == (tmp_path / "feats" / "x").resolve() and spec.method == "feature" and spec.label == "a"
    (tmp_path / "bad.toml").write_text('[[spaces]]\nname = "b"\nstor = "typo"\n')
    with pytest.raises(AttributionError, match=r"bad.toml: space 'b' has unknown fields \['stor'\]"):
        load_spaces_file(tmp_path / "bad.toml")


def test_user_space_in_spaces_and_evaluate(demo_bundle, tmp_path) -> None:
    env = {"ATTRIBUTION_SPACES": str(user_spaces_file(tmp_path))}
    listed = {s["name"]: s for s in json.loads(run("spaces", "--json", env=env).stdout)}
    assert listed["my_pixels"]["ready"] and listed["my_pixels"]["label"] == "My pixel space"
    out = run("evaluate", "dataset/json/test_demo.json", "--space", "my_pixels", "-q", env=env)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| my_pixels |"))
    assert len(row.split("|")) > 8  # a metrics row, not an error


def test_a_space_declares_its_index_kind(demo_bundle, tmp_path) -> None:
    """``options = { index = "sq8" }`` in a spaces file: the CLI, explorer and service query that index (the same
    answers as the flat scan); ``--index`` overrides it; an unknown kind is a one-line error naming the space."""
    import numpy as np

    from attribution_core.registry import create_attributor

    text = user_spaces_file(tmp_path).read_text()
    (tmp_path / "spaces.toml").write_text(
        text.replace('description = "pixels over my own store"', 'options = { index = "sq8" }')
        + text.replace("my_pixels", "my_ivf").replace(
            'description = "pixels over my own store"', 'options = { index = "ivf", nlist = 4, nprobe = 4 }'
        )
        + text.replace("my_pixels", "my_typo").replace(
            'description = "pixels over my own store"', 'options = { index = "sq9" }'
        )
    )
    compressed, ivf, typo = load_spaces_file(tmp_path / "spaces.toml")
    query = project_root() / "assets" / "chelsea_q0_object_00.jpg"
    got = create_attributor(compressed, device="cpu", progress=False)
    flat = create_attributor(compressed, device="cpu", progress=False, index_kind="flat")
    assert got.index.kind == "sq8" and flat.index.kind == "flat"
    a, b = got.attribute([query], 20)[0], flat.attribute([query], 20)[0]
    assert [r.path for r in a.results] == [r.path for r in b.results]
    np.testing.assert_allclose([r.influence for r in a.results], [r.influence for r in b.results], rtol=1e-4)
    ivf_index = create_attributor(ivf, device="cpu", progress=False).index  # build and query parameters of the kind
    assert ivf_index.kind == "ivf" and ivf_index.meta.params["nlist"] == 4 and ivf_index.loaded.params["nprobe"] == 4
    with pytest.raises(AttributionError, match="space 'my_typo': index 'sq9' is not an index kind"):
        create_attributor(typo, device="cpu", progress=False)


def test_third_party_method_through_the_cli(demo_bundle) -> None:
    env = {"ATTRIBUTION_PLUGINS": PLUGIN}
    listed = {s["name"]: s for s in json.loads(run("spaces", "--json", env=env).stdout)}
    assert listed["thumbnails"]["method"] == "thumbnail" and listed["thumbnails"]["ready"]
    query = project_root() / "assets" / "chelsea_q0_object_00.jpg"
    out = run("query", str(query), "--space", "thumbnails", "-k", "2", "--json", "-q", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["method"] == "thumbnail" and result["score_kind"] == "neg_thumbnail_distance"
    assert result["results"][0]["path"] == "assets/chelsea_q0_object_00.jpg"  # itself, first, named as shown
    assert result["results"][0]["score"] == 0.0
    assert sum(r["influence"] for r in result["results"]) + result["remaining_influence"] == pytest.approx(1.0)


def test_third_party_judge_registers_and_runs_through_the_cli(demo_bundle, tmp_path) -> None:
    """A judge from a plug-in module is listed by `attribute judge`, takes flags generated from its options, and
    writes the one report shape (table.md, table.csv, config.json with the options' hash)."""
    env = {"ATTRIBUTION_PLUGINS": "tests.plugin_judge"}
    listed = run("judge", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "self-retrieval: how often a training image" in listed.stdout and "abc: " in listed.stdout
    out = run("judge", "self-retrieval", "--spaces", "demo_pixel", "--queries", "3", "--out", str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr
    assert "| demo_pixel | 3 | 1.000 |" in out.stdout and "demo_pixel: finds its own images" in out.stdout
    with (tmp_path / "table.csv").open() as f:
        assert list(csv.DictReader(f)) == [{"space": "demo_pixel", "queries": "3", "self_top1": "1.0"}]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["judge"] == "self-retrieval" and config["options"] == {"spaces": ["demo_pixel"], "queries": 3}
    assert len(config["hash"]) == 16
    bad = run("judge", "self-retrieval", "--queries", "many", env=env)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
    unknown = run("judge", "nosuch", env=env)
    assert unknown.returncode == 2 and "unknown judge 'nosuch'; known judges: abc," in unknown.stderr


def test_spaces_files_are_read_again_only_when_they_change(tmp_path, monkeypatch) -> None:
    import attribution_core.registry as registry

    spaces = tmp_path / "spaces.toml"
    spaces.write_text('[[spaces]]\nname = "mine"\nbackbone = "pixel"\nstore = "store"\n')
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(spaces))
    reads = []
    real = registry.load_spaces_file
    monkeypatch.setattr(registry, "load_spaces_file", lambda path: reads.append(path) or real(path))
    for _ in range(3):
        assert get_space("mine").store == tmp_path / "store"
    assert len(reads) == 1
    spaces.write_text('[[spaces]]\nname = "mine"\nbackbone = "pixel"\nstore = "elsewhere"\n')
    assert get_space("mine").store == tmp_path / "elsewhere" and len(reads) == 2


def test_third_party_method_and_user_space_in_the_explorer(demo_bundle, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATTRIBUTION_PLUGINS", PLUGIN)
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(user_spaces_file(tmp_path)))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert {"Thumbnails (plug-in)", "My pixel space"} <= set(at.sidebar.multiselect[0].options)
    at.sidebar.multiselect[0].set_value(["thumbnails", "my_pixels"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader][1:3] == ["Thumbnails (plug-in)", "My pixel space"]
    assert sum(m.value.startswith("Remaining influence:") for m in at.markdown) == 2
    assert any("thumbnail; score = neg_thumbnail_distance" in c.value for c in at.caption)


def test_methods_registry_lists_the_feature_method() -> None:
    assert "feature" in list_methods()
    assert get_space("demo_pixel").method == "feature"


def test_a_feature_query_never_imports_diffusers() -> None:
    """Cold start: the library, the CLI's parser and the explorer's resources load without diffusers (seconds of
    imports); unlearning is still listed and loads its module when asked for."""
    code = (
        "import sys, attribution_core, app.resources\n"
        "from attribution_core.cli import build_parser\n"
        "build_parser()\n"
        "from attribution_core.registry import list_methods, method_class\n"
        "assert 'unlearning' in list_methods() and 'diffusers' not in sys.modules, 'diffusers imported early'\n"
        "print(method_class('unlearning').__name__, 'diffusers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=project_root(), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["UnlearningAttributor", "True"]


def test_global_options_after_the_subcommand_and_config_flags(capsys) -> None:
    args = build_parser().parse_args(
        [
            "train-head",
            "--train",
            "t",
            "--val",
            "v",
            "--backbone",
            "pixel",
            "--feats",
            "f",
            "--out",
            "o",
            "--identity-penalty",
            "0.5",
            "--head",
            "channel",
            "-q",
        ]
    )
    from attribution_core.cli import config_from_args
    from attribution_core.features.train import HeadTrainingConfig

    config = config_from_args(HeadTrainingConfig, args)
    assert args.quiet and config.identity_penalty == 0.5 and config.head == "channel"
    assert config.max_epochs == HeadTrainingConfig().max_epochs  # one default, in the dataclass
    assert main(["query", "x.png", "--top-k", "0"]) == 2
    assert "--top-k must be at least 1" in capsys.readouterr().err


def test_method_options_are_typed_checked_and_resolved_against_the_spaces_file(tmp_path, capsys) -> None:
    """An unlearning space's options are read through the method's Options dataclass: relative paths resolve against
    the spaces file (not the working directory), and a typo or a wrong type is one line naming the file and entry."""
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "spaces.toml").write_text(
        """
[[spaces]]
name = "my_unlearning"
label = "mine"
method = "unlearning"
[spaces.options]
model = "models/demo"
captions = "data/captions.jsonl"
images = "data"
config = { steps = 3 }
"""
    )
    (spec,) = load_spaces_file(folder / "spaces.toml")
    assert spec.options["model"] == str(folder / "models" / "demo") and spec.options["images"] == str(folder / "data")
    assert spec.options["config"]["steps"] == 3
    (folder / "typo.toml").write_text(
        '[[spaces]]\nname = "t"\nmethod = "unlearning"\n'
        '[spaces.options]\nmodel = "m"\ncaptions = "c"\nimages = "i"\nconfig = { step = 3 }\n'
    )
    with pytest.raises(AttributionError, match=r"typo.toml: space 't' options.config: unknown option 'step'; known: "):
        load_spaces_file(folder / "typo.toml")
    (folder / "type.toml").write_text('[[spaces]]\nname = "t"\n[spaces.options]\nnprobe = "eight"\n')
    with pytest.raises(AttributionError, match=r"type.toml: space 't' options.nprobe: .*must be a positive integer"):
        load_spaces_file(folder / "type.toml")
    (folder / "kind.toml").write_text('[[spaces]]\nname = "t"\n[spaces.options]\nindex = "ivf"\nnlist = 4\nnprob = 2\n')
    with pytest.raises(AttributionError, match=r"kind.toml: space 't' options: unknown option 'nprob'; known: index, "):
        load_spaces_file(folder / "kind.toml")
    (folder / "missing.toml").write_text(
        '[[spaces]]\nname = "t"\nmethod = "unlearning"\n[spaces.options]\nprefix="x"\n'
    )
    with pytest.raises(AttributionError, match=r"missing option 'model', 'captions', 'images'"):
        load_spaces_file(folder / "missing.toml")


def test_query_takes_the_chosen_methods_options_as_flags(demo_bundle) -> None:
    """``attribute query`` lists every method's options as flags; one that belongs to another method than the
    chosen space's is a one-line error, and a bad value is caught before any model loads."""
    query = str(project_root() / "assets" / "chelsea_q0_object_00.jpg")
    out = run("query", query, "--space", "demo_pixel", "--steps", "2")
    assert out.returncode == 2
    assert "--steps is an option of unlearning spaces; space 'demo_pixel' is a feature space" in out.stderr
    assert "--score-timesteps" in run("query", "--help").stdout


def test_method_option_flags_reach_the_loaded_method(demo_bundle) -> None:
    """``attribute query --space demo_unlearning --steps 1 --draws 8`` becomes the unlearning settings of the loaded
    space (over its own ``config``), and loading computes nothing yet."""
    from attribution_core.cli.common import method_options_from_args
    from attribution_core.registry import create_attributor

    args = build_parser().parse_args(["query", "q.png", "--space", "demo_unlearning", "--steps", "1", "--draws", "8"])
    overrides = method_options_from_args(args, "unlearning", "demo_unlearning")
    assert overrides == {"config": {"steps": 1, "draws": 8}}
    attributor = create_attributor("demo_unlearning", overrides, device="cpu")
    assert attributor.config.steps == 1 and attributor.config.draws == 8 and not attributor.prepared
    with pytest.raises(AttributionError, match=r"space 'demo_unlearning': options.config: unknown option 'stepz'"):
        create_attributor("demo_unlearning", {"config": {"stepz": 1}}, device="cpu")
