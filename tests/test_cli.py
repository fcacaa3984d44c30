"""The `attribute` command as a user runs it: JSON/CSV output, released-format files, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import skimage.data as data
import torch
from PIL import Image

from attribution_core.attribute.calibration import Calibrator, save_calibrator
from attribution_core.backbones import create_backbone
from attribution_core.core.paths import project_root
from attribution_core.demo import EXAMPLE_QUERIES, demo_dir

from .helpers import released_heads


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", *args],
        capture_output=True,
        text=True,
        cwd=project_root(),
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_query_json_on_the_demo(demo_bundle) -> None:
    queries = [str(demo_dir() / q) for q in EXAMPLE_QUERIES[:2]]
    out = run("query", *queries, "--space", "demo_efficientnet_lite0", "--top-k", "7", "--json")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    for line, query in zip(lines, queries, strict=True):
        obj = json.loads(line)
        assert obj["query"] == query and obj["space"] == "demo_efficientnet_lite0"
        assert [r["rank"] for r in obj["results"]] == list(range(1, 8))
        scores = [r["score"] for r in obj["results"]]
        assert scores == sorted(scores, reverse=True)
        total = sum(r["influence"] for r in obj["results"]) + obj["remaining_influence"]
        assert total == pytest.approx(1.0, abs=1e-9)
    first = json.loads(lines[0])
    model = EXAMPLE_QUERIES[0].split("/")[1]
    assert f"exemplar/{model}/" in first["results"][0]["path"], "the query's own exemplar ranks first"


def test_query_csv_and_module_entry_point(demo_bundle) -> None:
    query = str(demo_dir() / EXAMPLE_QUERIES[2])
    out = run("query", query, "--space", "demo_pixel", "-k", "3", "--csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 3 and rows[0]["rank"] == "1" and rows[0]["space"] == "demo_pixel"
    console = subprocess.run(
        ["attribute", "-q", "query", query, "--space", "demo_pixel", "-k", "3", "--csv"],
        capture_output=True,
        text=True,
        cwd=project_root(),
    )
    assert console.stdout == out.stdout


def test_spaces_lists_readiness_with_download_commands(demo_bundle) -> None:
    out = run("spaces", "--json")
    spaces = {s["name"]: s for s in json.loads(out.stdout)}
    assert spaces["demo_efficientnet_lite0"]["ready"] and spaces["demo_pixel"]["ready"]
    if not spaces["clip"]["ready"]:
        assert "weights/mapper/clip_tuned.pth" in spaces["clip"]["missing"]
        assert "bash weights/download_weights.sh" in spaces["clip"]["make_ready"]
        assert "bash feats/download_laion_feats.sh" in spaces["clip"]["make_ready"]


def test_released_format_files_work_unchanged(tmp_path) -> None:
    """A corpus in the authors' formats: {feats, paths} .pth, released mapper and calibrator checkpoints."""
    backbone = create_backbone("efficientnet_lite0", device="cpu")
    photos = {"chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(), "astro": data.astronaut()}
    feats = backbone.embed_images([Image.fromarray(p) for p in photos.values()])
    torch.save({"feats": torch.from_numpy(feats), "paths": [f"{n}.png" for n in photos]}, tmp_path / "laion.pth")
    torch.save(
        released_heads(1280, seed=1) | {"real_mapper": {"weight": torch.eye(1280), "bias": torch.zeros(1280)}},
        tmp_path / "mapper.pth",
    )
    state = torch.load(tmp_path / "mapper.pth", weights_only=True)
    state["synth_mapper"] = {"weight": torch.eye(1280), "bias": torch.zeros(1280)}
    torch.save(state, tmp_path / "mapper.pth")
    save_calibrator(Calibrator(16.1587, -38.5), tmp_path / "calib.pth")
    Image.fromarray(data.chelsea()).rotate(8).save(tmp_path / "query.png")
    out = run(
        "query",
        str(tmp_path / "query.png"),
        "--backbone",
        "efficientnet_lite0",
        "--feats",
        str(tmp_path / "laion.pth"),
        "--mapper",
        str(tmp_path / "mapper.pth"),
        "--calibrator",
        str(tmp_path / "calib.pth"),
        "--top-k",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["results"][0]["path"].endswith("chelsea.jpg")
    assert (tmp_path / "laion.store" / "meta.json").is_file()


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda p: None, "missing.png: file not found"),
        (lambda p: p.write_text("plain text"), "missing.png: not an image file"),
        (lambda p: p.write_bytes(_half_jpeg()), "missing.png: cannot decode image: image file is truncated"),
        (lambda p: Image.new("1", (17_000, 17_000)).save(p, format="PNG"), "decompression bomb"),
    ],
)
def test_bad_query_is_one_line_error(tmp_path, demo_bundle, make, expect) -> None:
    path = tmp_path / "missing.png"
    make(path)
    out = run("query", str(path), "--space", "demo_pixel")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr and expect in out.stderr, out.stderr


def _half_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_bad_checkpoints_and_stores_are_one_line_errors(tmp_path, demo_bundle) -> None:
    query = str(demo_dir() / EXAMPLE_QUERIES[0])
    torch.save(released_heads(512), tmp_path / "clip_tuned.pth")
    out = run("query", query, "--space", "demo_efficientnet_lite0", "--mapper", str(tmp_path / "clip_tuned.pth"))
    assert out.returncode == 2 and "clip_tuned.pth" in out.stderr and "1280-d" in out.stderr
    assert "Traceback" not in out.stderr
    out = run(
        "query", query, "--space", "demo_efficientnet_lite0", "--feats", str(project_root() / "feats/demo/pixel/train")
    )
    assert out.returncode == 2 and "768-d features from backbone 'pixel'" in out.stderr
    out = run("query", query, "--space", "no_such_space")
    assert out.returncode == 2 and "unknown space 'no_such_space'" in out.stderr


def test_extract_and_index_from_the_command_line(tmp_path, photo_dir) -> None:
    (photo_dir / "notes.txt").write_text("x")
    out = run("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out", str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    assert "5 images" in out.stdout and "skipped 1 files" in out.stdout
    out = run("index", str(tmp_path / "store"), "--kind", "hnsw")
    assert out.returncode == 0 and "hnsw index over 5 images (built)" in out.stdout
    out = run("index", str(tmp_path / "store"), "--kind", "hnsw")
    assert "(up to date)" in out.stdout
    out = run(
        "query",
        str(photo_dir / "rocket.jpg"),
        "--backbone",
        "pixel",
        "--feats",
        str(tmp_path / "store"),
        "--json",
        "-k",
        "1",
    )
    assert json.loads(out.stdout)["results"][0]["path"].endswith("rocket.jpg")


def test_a_plugin_index_kind_through_index_and_query(tmp_path, photo_dir) -> None:
    """An index kind registered by a plug-in module is built by ``attribute index --kind`` with its own build flag,
    queried by ``attribute query --index`` with its own query-time flag, and rebuilt when a build flag changes; a
    flag the kind does not take is a one-line error."""
    env = {"ATTRIBUTION_PLUGINS": "tests.plugin_index_kind"}
    store = str(tmp_path / "store")
    assert run("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out", store).returncode == 0
    out = run("index", store, "--kind", "ivfsq8", "--nlist", "1", env=env)
    assert out.returncode == 0 and "ivfsq8 index over 5 images (built)" in out.stdout, out.stderr
    assert "ivfsq8" in run("index", "--help", env=env).stdout
    query = ["query", str(photo_dir / "rocket.jpg"), "--backbone", "pixel", "--feats", store, "--json", "-k", "2"]
    out = run(*query, "--index", "ivfsq8", "--nprobe", "1", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    flat = json.loads(run(*query).stdout)
    assert [r["path"] for r in result["results"]] == [r["path"] for r in flat["results"]]
    assert result["results"][0]["path"].endswith("rocket.jpg")
    assert [r["score"] for r in result["results"]] == [r["score"] for r in flat["results"]]  # rescored exactly
    out = run(*query, "--index", "ivfsq8", "--rerank", "3", env=env)
    assert out.returncode == 2 and "--rerank goes with --index ivfpq (this query uses --index ivfsq8)" in out.stderr
    out = run(*query, "--index", "nosuch", env=env)
    assert out.returncode == 2 and "unknown index kind 'nosuch'" in out.stderr


@pytest.mark.parametrize("command", [["attribute"], [sys.executable, "-m", "attribution_core"]])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(command) -> None:
    """Ctrl-C in the first second (while torch and FAISS are being imported, before the command's own handler
    exists) exits 130 with one line, not a 100-line traceback from inside torch."""
    import shutil
    import signal
    import time

    if command[0] == "attribute" and shutil.which("attribute") is None:
        pytest.skip("the attribute console script is not installed on PATH")
    proc = subprocess.Popen(
        [*command, "query", "x.png"],
        cwd=project_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal starts it: a run in a background job would inherit an ignored SIGINT and never see Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(0.15)  # well inside the imports (about half a second here), however fast the machine
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "interrupted" in err
