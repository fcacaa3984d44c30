"""Round-3 hardening (issue 37): the audit's probes, kept as regression tests. Each one failed before its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def attribute(capsys, monkeypatch):
    """``attribute -q ARGS`` run in this process from ``cwd`` (no second torch import per probe); an exception that
    escapes the command comes back as a traceback on stderr, as a terminal would show it. The probes that need a
    fresh process (plug-ins are imported once per process) run it as a subprocess."""
    import traceback

    from attribution_core.cli import main

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = main(["-q", *args])
            tail = ""
        except SystemExit as exc:
            code, tail = exc.code if isinstance(exc.code, int) else 1, ""
        except BaseException:  # what a user would have seen
            code, tail = 1, traceback.format_exc()
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err + tail)

    return run


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode in (1, 2), (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["the image folder", "its parent", "the working directory"])
def test_extract_never_deletes_a_folder_it_did_not_make(attribute, photo_dir: Path, where: str) -> None:
    """`attribute extract --out DIR` over a folder that holds anything but a feature store used to replace it with
    the store, deleting the user's files (the image folder itself, its parent, ``.``) and exiting 0."""
    parent = photo_dir.parent
    (parent / "notes.txt").write_text("mine")
    out = {"the image folder": str(photo_dir), "its parent": str(parent), "the working directory": "."}[where]
    before = snapshot(parent)
    line = one_line_error(attribute("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out", out,
                                    cwd=parent))  # fmt: skip
    assert "not a feature store" in line and "nothing was written or removed" in line
    assert snapshot(parent) == before


def test_extract_writes_into_an_empty_folder_and_updates_its_own_store(
    attribute, photo_dir: Path, tmp_path: Path
) -> None:
    """The guard refuses only what is not a store: an empty folder and a store of the same kind are written."""
    out = tmp_path / "empty"
    out.mkdir()
    for _ in range(2):
        done = attribute("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out", str(out),
                         cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (out / "meta.json").is_file()


def test_a_file_as_the_output_folder_is_one_line(attribute, photo_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("mine")
    line = one_line_error(attribute("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out",
                                    str(target), cwd=tmp_path))  # fmt: skip
    assert "a.txt" in line and "is a file" in line
    assert target.read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lds", "--methods", "nosuch"], "--methods: unknown method 'nosuch'"),
        (["lds", "--batch-size", "-1"], "--batch-size must be at least 0, not -1"),
        (["counterfactual", "--steps", "-3"], "--steps must be at least 0, not -3"),
        (["counterfactual", "--ks", "2", "-5"], "--ks must be at least 1, not -5"),
        (["evaluate", "dataset/json/test_demo.json", "--ks", "0"], "--ks must be at least 1, not 0"),
        (["judge", "abc", "--max-per-type", "-3"], "--max-per-type must be at least 0, not -3"),
        (["judge", "lds", "--alpha", "1.5"], "--alpha must be between 0.01 and 0.99, not 1.5"),
    ],
)
def test_judge_arguments_out_of_range_are_refused_before_any_work(attribute, args: list[str], expected: str) -> None:
    """`attribute lds --methods nosuch` used to start hours of retraining; `--batch-size 0` gave a traceback; zero or
    negative counts were accepted. Each is now one line, before any model is trained or loaded."""
    from attribution_core.core.paths import project_root

    line = one_line_error(attribute(*args, cwd=project_root()))
    assert expected in line, line


def test_option_ranges_hold_in_spaces_files_too() -> None:
    """The same declared ranges check a spaces file's options (one line naming the space and the field)."""
    from attribution_core.core.config import parse_options
    from attribution_core.core.errors import AttributionError
    from attribution_core.unlearning.config import UnlearningOptions

    raw = {"model": "m", "captions": "c.jsonl", "images": ".", "config": {"steps": 0}}
    with pytest.raises(AttributionError, match=r"space 'x'\.options\.config\.steps must be at least 1, not 0"):
        parse_options(UnlearningOptions, raw, None, "space 'x'.options")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("raise RuntimeError('no licence key')\n", "RuntimeError: no licence key"),
        ("def broken(:\n", "SyntaxError"),
        ("import module_that_is_not_there\n", "ModuleNotFoundError"),
        (
            "from attribution_core.registry import register_method\nregister_method(object)\n",
            "register_method takes an Attributor subclass",
        ),
    ],
)
def test_a_broken_plug_in_is_named_in_one_line_and_the_rest_keeps_working(
    tmp_path: Path, source: str, error: str
) -> None:
    """A plug-in that raises, has a syntax error or registers something malformed used to take every command down
    with a traceback from the loader. Now it is named with its error, skipped, and listed as broken."""
    import os

    from attribution_core.core.paths import project_root

    (tmp_path / "my_plugin.py").write_text(source)
    env = {**os.environ, "ATTRIBUTION_PLUGINS": "my_plugin", "PYTHONPATH": f"{tmp_path}{os.pathsep}{project_root()}"}
    done = subprocess.run([sys.executable, "-m", "attribution_core", "spaces"], capture_output=True, text=True,
                          cwd=project_root(), env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    broken = [line for line in done.stdout.splitlines() if line.startswith("plug-in my_plugin")]
    assert len(broken) == 1 and "broken" in broken[0] and error in broken[0], done.stdout
    assert "demo_efficientnet_lite0" in done.stdout  # the rest of the project is still there
    warned = [line for line in done.stderr.splitlines() if "my_plugin" in line]
    assert len(warned) == 1 and error in warned[0], done.stderr
    done = subprocess.run([sys.executable, "-m", "attribution_core", "-q", "query", "assets/chelsea_q0_object_00.jpg",
                           "--space", "only_my_plugin_has_it"], capture_output=True, text=True, cwd=project_root(),
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    warning, line = done.stderr.strip().splitlines()  # the plug-in named once, then the command's own error
    assert "my_plugin" in warning and error in warning
    assert "unknown space 'only_my_plugin_has_it'" in line and "my_plugin" in line and error in line


@pytest.mark.parametrize("bad", [3, None, "", ["a.jpg"]])
@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_test_case_paths_that_are_not_strings_are_one_line(attribute, tmp_path: Path, bad, command: str) -> None:
    """An AbC test case whose image paths are numbers or null gave `TypeError` tracebacks (`attribute evaluate`;
    `attribute calibrate`: "unsupported operand type(s) for /: 'PosixPath' and 'int'")."""
    import json

    case = tmp_path / "case.json"
    case.write_text(json.dumps([{"exemplar": ["e.jpg", bad], "synth": {"object": ["s.jpg"]}}]))
    args = ["evaluate", str(case)] if command == "evaluate" else ["calibrate", "demo_pixel", "--test-case", str(case)]
    line = one_line_error(attribute(*args, cwd=tmp_path))
    assert "case.json: entry 0, exemplar: image paths are non-empty strings" in line, line


@pytest.mark.parametrize(("field", "value"), [("store", "3"), ("mapper", "[1, 2]"), ("label", "7"), ("demo", '"yes"')])
@pytest.mark.parametrize("command", [["spaces"], ["query", "assets/chelsea_q0_object_00.jpg", "--space", "mine"]])
def test_a_spaces_file_field_of_the_wrong_type_is_one_line(tmp_path: Path, field: str, value: str, command) -> None:
    """A `store` (or another path field) that is an integer or a list gave a `TypeError` traceback."""
    import os

    from attribution_core.core.paths import project_root

    spaces = tmp_path / "spaces.toml"
    spaces.write_text(f'[[spaces]]\nname = "mine"\nbackbone = "pixel"\n{field} = {value}\n')
    env = {**os.environ, "ATTRIBUTION_SPACES": str(spaces)}
    done = subprocess.run([sys.executable, "-m", "attribution_core", "-q", *command], capture_output=True, text=True,
                          cwd=project_root(), env=env, timeout=300)  # fmt: skip
    line = one_line_error(done)
    assert "spaces.toml: space 'mine':" in line and f"{field} must be" in line, line


def _student_copy(tmp_path: Path) -> Path:
    import shutil

    from attribution_core.demo.distilled import distilled_dir

    folder = tmp_path / "student"
    folder.mkdir()
    for name in ("student.json", "student.safetensors"):
        shutil.copy(distilled_dir() / name, folder / name)
    return folder


def _damage(folder: Path, how: str) -> None:
    import json

    import torch
    from safetensors.torch import load_file, save_file

    weights, config = folder / "student.safetensors", folder / "student.json"
    meta = json.loads(config.read_text())
    if how == "empty":
        weights.write_bytes(b"")
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "random bytes":
        weights.write_bytes(bytes(range(256)) * 64)
    elif how == "a torch pickle renamed":
        torch.save({"x": torch.zeros(2)}, weights)
    elif how == "NaN weights":
        tensors = load_file(str(weights))
        tensors["mlp.0.weight"][0, 0] = float("nan")  # one weight the forward pass reads
        save_file(tensors, str(weights))
    elif how == "int8 weights":
        save_file({k: v.to(torch.int8) for k, v in load_file(str(weights)).items()}, str(weights))
    elif how == "another architecture's weights":
        save_file({"mlp.0.weight": torch.zeros(4, 4)}, str(weights))
    elif how in ("no backbone", "no model", "no embedding"):
        if how == "no embedding":
            del meta["student"]["embedding"]
            meta["student"]["embeddings"] = 3
        else:
            del meta[how.split()[1]]
        config.write_text(json.dumps(meta))
    elif how == "1500 layers":
        meta["student"]["layers"] = 1500
        config.write_text(json.dumps(meta))
    elif how == "not JSON":
        config.write_text("{")


DAMAGE = [
    ("empty", "student.safetensors: damaged or not a safetensors file"),
    ("truncated", "student.safetensors: damaged or not a safetensors file"),
    ("random bytes", "student.safetensors: damaged or not a safetensors file"),
    ("a torch pickle renamed", "student.safetensors: damaged or not a safetensors file"),
    ("NaN weights", "holds NaN or inf"),
    ("int8 weights", "not floating point"),
    ("another architecture's weights", "not the weights of the student"),
    ("no backbone", "missing option 'backbone'"),
    ("no model", "missing option 'model'"),
    ("no embedding", "unknown option 'embeddings'"),
    ("1500 layers", "student.layers must be between 1 and 16, not 1500"),
    ("not JSON", "student.json: damaged"),
]


@pytest.mark.parametrize(("how", "expected"), DAMAGE)
def test_a_damaged_student_is_one_line_naming_the_file(tmp_path: Path, how: str, expected: str) -> None:
    """Damaged student files gave raw `SafetensorError`/`KeyError`/`IndexError` tracebacks, garbage rankings with
    exit 0 (int8 or foreign weights) or gigabytes allocated before refusing (1,500 layers)."""
    from attribution_core.core.errors import CheckpointError
    from attribution_core.distill.attributor import load_student

    folder = _student_copy(tmp_path)
    _damage(folder, how)
    with pytest.raises(CheckpointError) as caught:
        load_student(folder)
    message = str(caught.value)
    assert expected in message and "attribute distill train" in message and "\n" not in message, message


def test_a_damaged_student_fails_its_own_space_only(demo_bundle, tmp_path: Path) -> None:
    """Through the CLI: a spaces file's distilled space over a damaged student answers in one line; the other spaces
    are listed and answer as before."""
    import os

    from attribution_core.core.paths import project_root
    from attribution_core.demo.diffusion import demo_model_dir
    from attribution_core.demo.distilled import distilled_store

    folder = _student_copy(tmp_path)
    _damage(folder, "truncated")
    spaces = tmp_path / "spaces.toml"
    spaces.write_text(
        f'[[spaces]]\nname = "broken_student"\nmethod = "distilled"\nbackbone = "efficientnet_lite0"\n'
        f'store = "{distilled_store()}"\n[spaces.options]\nstudent = "{folder}"\nmodel = "{demo_model_dir()}"\n'
    )
    env = {**os.environ, "ATTRIBUTION_SPACES": str(spaces)}
    listed = subprocess.run([sys.executable, "-m", "attribution_core", "spaces"], capture_output=True, text=True,
                            cwd=project_root(), env=env, timeout=300)  # fmt: skip
    assert listed.returncode == 0 and "broken_student" in listed.stdout and "demo_pixel" in listed.stdout
    done = subprocess.run([sys.executable, "-m", "attribution_core", "-q", "query", "assets/chelsea_q0_object_00.jpg",
                           "--space", "broken_student"], capture_output=True, text=True, cwd=project_root(), env=env,
                          timeout=300)  # fmt: skip
    assert "student.safetensors: damaged" in one_line_error(done)


def test_a_prompt_read_from_a_png_is_shown_escaped_never_obeyed(attribute, demo_bundle, tmp_path: Path) -> None:
    """Prompts read from PNGs were printed raw (escape sequences, CR and NUL reached the terminal); a query without a
    prompt printed `None` as its prompt."""
    import skimage.data as data
    from PIL import Image

    from attribution_core.core.paths import project_root
    from attribution_core.diffusion.generation import FIRST_SAMPLER, Generation, save_generated

    hostile = "a photo of a clock\x1b[2J\x1b]0;owned\x07\rNUL\x00here"
    png = tmp_path / "hostile.png"
    save_generated(Image.fromarray(data.chelsea()), Generation(hostile, 1, "m", FIRST_SAMPLER), png)
    jpeg = tmp_path / "plain.jpg"
    Image.fromarray(data.chelsea()).save(jpeg)
    done = attribute("query", str(png), str(jpeg), "--space", "demo_distilled", "--top-k", "2", cwd=project_root())
    assert done.returncode == 0, done.stderr[-2000:]
    assert not any(c in done.stdout for c in "\x1b\x07\r\x00"), repr(done.stdout)
    assert "\\x1b[2J" in done.stdout and "“a photo of a clock" in done.stdout
    assert "None" not in done.stdout and "no prompt: image features alone" in done.stdout


def test_printable_keeps_text_and_escapes_controls() -> None:
    from attribution_core.cli.common import printable

    assert printable("un café, s’il vous plaît") == "un café, s’il vous plaît"
    assert printable("a\tb\nc\x1b") == "a\\tb\\nc\\x1b"
    assert printable("x" * 500, 10) == "x" * 9 + "…"


def _png_with_prompt(prompt: str) -> bytes:
    import skimage.data as data
    from PIL import Image

    from attribution_core.diffusion.generation import FIRST_SAMPLER, Generation, png_bytes

    return png_bytes(Image.fromarray(data.chelsea()), Generation(prompt, 1, "m", FIRST_SAMPLER))


def test_one_requests_bad_prompt_fails_that_request_alone(demo_bundle) -> None:
    """One request whose PNG carried a 1,001-character prompt made most of the requests batched with it fail, and
    they received its error and its file name. Now it is refused before it joins a batch; the others are answered."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from attribution_core.service import ServiceConfig, create_app

    app = create_app(ServiceConfig(spaces=("demo_distilled",), batch_window_ms=300, max_batch=32))
    good, bad = _png_with_prompt("a photo of a clock"), _png_with_prompt("x" * 1001)
    with TestClient(app) as client:

        def ask(i: int):
            name, body = (f"bad{i}.png", bad) if i == 3 else (f"good{i}.png", good)
            return name, client.post("/v1/attribute", data={"space": "demo_distilled", "k": "3"},
                                      files={"image": (name, body)})  # fmt: skip

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
    for name, r in answers:
        if name.startswith("bad"):
            assert (
                r.status_code == 400 and "bad3.png" in r.json()["detail"] and "1,001 characters" in r.json()["detail"]
            )
        else:
            assert r.status_code == 200, r.text
            assert "bad3" not in r.text


def test_a_batch_members_error_reaches_that_member_only(demo_bundle) -> None:
    """Below the route: a batch whose one member fails the method's own checks is answered member by member."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import skimage.data as data
    from PIL import Image

    from attribution_core.core.errors import AttributionError
    from attribution_core.registry import create_attributor
    from attribution_core.service.batching import MicroBatcher

    attributor = create_attributor("demo_distilled", device="cpu", progress=False)
    image = Image.fromarray(data.chelsea())

    async def run():
        batcher = MicroBatcher(attributor, ThreadPoolExecutor(1), window_s=0.2, max_batch=8)
        prompts = ["a photo of a clock", "y" * 5000, None, "a photo of coins"]
        return await asyncio.gather(
            *(batcher.submit(image, 2, f"q{i}", p) for i, p in enumerate(prompts)), return_exceptions=True
        )

    answers = asyncio.run(run())
    assert isinstance(answers[1], AttributionError) and "q1" in str(answers[1])
    assert all(not isinstance(a, Exception) and a.query == f"q{i}" for i, a in enumerate(answers) if i != 1)


def test_health_says_when_the_spaces_file_is_broken(tmp_path: Path, monkeypatch, caplog) -> None:
    """A service started with a bad spaces file reported healthy, then answered 400 to every request. Now /healthz
    answers 503 (the reason, which names files, goes to the log: /healthz needs no key)."""
    from fastapi.testclient import TestClient

    from attribution_core.service import ServiceConfig, create_app

    spaces = tmp_path / "spaces.toml"
    spaces.write_text('[[spaces]]\nname = "x"\nstore = 3\n')
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(spaces))
    with TestClient(create_app(ServiceConfig())) as client:
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "broken" and "spaces.toml" not in r.text
        assert any("spaces.toml" in rec.getMessage() and "store must be" in rec.getMessage() for rec in caplog.records)
        spaces.write_text('[[spaces]]\nname = "x"\nbackbone = "pixel"\nstore = "feats/x"\n')
        assert client.get("/healthz").status_code == 200  # fixed file: healthy again, without a restart


def test_a_typo_in_a_distilled_spaces_options_lists_that_methods_options(tmp_path: Path) -> None:
    """The typo message listed only the index's options as known, not the distilled space's own (student, model)."""
    from attribution_core.core.errors import AttributionError
    from attribution_core.registry import load_spaces_file

    spaces = tmp_path / "spaces.toml"
    spaces.write_text('[[spaces]]\nname = "d"\nmethod = "distilled"\n[spaces.options]\nstudnet = "s"\nmodel = "m"\n')
    with pytest.raises(AttributionError) as caught:
        load_spaces_file(spaces)
    message = str(caught.value)
    assert "unknown option 'studnet'" in message and "known: index, student, model" in message, message


def test_the_first_unlearning_query_says_what_it_computes_once_with_a_bar(demo_bundle, tmp_path: Path) -> None:
    """The first `attribute unlearn` of a fresh clone ran for over an hour with nothing on the screen: its one-time
    Fisher and "before" losses now say so in a line each and show bars with an ETA."""
    import os

    from attribution_core.core.paths import project_root
    from attribution_core.demo import EXAMPLE_QUERIES, demo_dir

    from .helpers import write_quick_unlearning

    spaces = write_quick_unlearning(tmp_path)
    spaces.write_text(spaces.read_text().replace('prefix = "corpus/"', 'prefix = "corpus/coins/"'))
    home = tmp_path / "home"  # a fresh project root: no cached Fisher or losses
    home.mkdir()
    env = {**os.environ, "ATTRIBUTION_SPACES": str(spaces), "ATTRIBUTION_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "attribution_core", "query", str(demo_dir() / EXAMPLE_QUERIES[0]), "--space",
         "quick_unlearning", "--prompt", "a photo of coins", "-k", "3"],
        capture_output=True, text=True, cwd=project_root(), env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "computing the diagonal Fisher" in done.stderr and "once" in done.stderr
    assert "scoring" in done.stderr and "before unlearning" in done.stderr
    bars = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("fisher")]
    assert bars and any("<" in line for line in bars), done.stderr[-2000:]  # tqdm's elapsed<remaining


def test_written_files_get_the_users_umask(tmp_path: Path) -> None:
    """Every `.safetensors` output was written 0600 (unreadable to the user's group, unlike every other output)."""
    import os
    import stat

    from attribution_core.attribute.calibration import Calibrator, save_calibrator

    out = tmp_path / "cal.safetensors"
    save_calibrator(Calibrator(10.0, -2.0), out)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


GOOD_LABEL = {"index": 0, "split": "train", "prompt": "a photo of coins", "rows": [3, 1, 2], "model": "m"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda good: good[: len(good) // 2], "damaged label"),
        (lambda good: "", "damaged label"),
        (lambda good: good.replace('"rows"', '"rowz"'), "rows must be a list of training rows"),
        (lambda good: good.replace('"train"', "7"), 'split must be "train" or "validation"'),
        (lambda good: good.replace("[3, 1, 2]", '[3, "x"]'), "damaged label (split or rows)"),
    ],
)
def test_a_damaged_label_is_one_line_naming_it_and_how_to_redo_it(tmp_path: Path, content, expected: str) -> None:
    """A truncated or empty label file or a missing field gave a traceback in `attribute distill train`."""
    import json

    from attribution_core.core.errors import AttributionError
    from attribution_core.distill.labels import read_labels

    good = json.dumps(GOOD_LABEL)
    (tmp_path / "000000.json").write_text(good)
    assert read_labels(tmp_path) == [GOOD_LABEL]
    (tmp_path / "000001.json").write_text(content(good))
    with pytest.raises(AttributionError) as caught:
        read_labels(tmp_path)
    message = str(caught.value)
    assert "000001.json" in message and expected in message and "attribute distill label" in message, message


def test_a_damaged_label_manifest_is_one_line(attribute, demo_bundle, tmp_path: Path) -> None:
    from attribution_core.core.paths import project_root

    out = tmp_path / "labels"
    out.mkdir()
    (out / "labels.json").write_text("{ truncated")
    line = one_line_error(attribute("distill", "label", "--space", "demo_unlearning", "--queries", "1", "--out",
                                    str(out), cwd=project_root()))  # fmt: skip
    assert "labels.json: damaged" in line, line


@pytest.mark.parametrize(
    "writer_error", [OSError("21504 requested and 19424 written"), RuntimeError("Error: 'ret == (n)' failed")]
)
def test_a_full_disk_is_called_a_full_disk(tmp_path: Path, monkeypatch, writer_error: Exception) -> None:
    """On a full disk, extraction reported numpy's "21504 requested and 19424 written" and the index build a FAISS
    traceback. A failed write into a folder with almost no free space is now the plain "no space left" error, which
    the CLI prints in one line with what to do."""
    import errno
    import shutil
    from collections import namedtuple

    import numpy as np

    from attribution_core.core import fileio

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))

    def failing_save(file, arr, *args, **kwargs):
        raise writer_error

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError) as caught:
        fileio.atomic_save_npy(tmp_path / "shard.npy", np.zeros(3))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "shard.npy")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**9))
    with pytest.raises(type(writer_error)):  # with space left, the writer's own error stands: not a disk problem
        fileio.atomic_save_npy(tmp_path / "shard.npy", np.zeros(3))


@pytest.mark.parametrize("space", ["demo_distilled", "demo_efficientnet_lite0"])
def test_every_method_takes_the_same_image_shapes(demo_bundle, space: str) -> None:
    """One shape rule for every method and every door: an opened image handed to the Python API used to skip it
    (the file doors refused 17:1, the API answered 40:1 on every space)."""
    from PIL import Image

    from attribution_core.core.errors import InputImageError
    from attribution_core.registry import create_attributor

    attributor = create_attributor(space, device="cpu", progress=False)
    answer = attributor.attribute([Image.new("RGB", (16000, 1000), (120, 30, 200))], 2, names=["wide"])[0]
    assert len(answer.results) == 2
    for width in (17000, 40000):
        with pytest.raises(InputImageError, match=rf"wide: {width} x 1000 pixels is too elongated \(at most 16:1"):
            attributor.attribute([Image.new("RGB", (width, 1000))], 2, names=["wide"])


@pytest.mark.parametrize("content", ["{not json", "[]", '{"model": 1}', ""])
def test_a_damaged_shipped_student_json_leaves_its_space_listed_and_nothing_else_failing(
    tmp_path: Path, monkeypatch, content: str
) -> None:
    """The shipped student's ``student.json`` is read to list its space: damaged, the space is still listed (not
    ready: its loader says why when asked), and listing never raises for it."""
    from attribution_core.demo import distilled

    folder = tmp_path / "distilled"
    folder.mkdir()
    (folder / "student.json").write_text(content)
    monkeypatch.setattr(distilled, "distilled_dir", lambda: folder)
    spec = distilled.distilled_space(tmp_path / "model")
    assert spec is not None and spec.name == distilled.DISTILLED_SPACE and spec.backbone == ""
