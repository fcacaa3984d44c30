"""Round-3 hardening (issue 37): the audit's probes, kept as regression tests. Each one failed before its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def attribute(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode in (1, 2), (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["the image folder", "its parent", "the working directory"])
def test_extract_never_deletes_a_folder_it_did_not_make(photo_dir: Path, where: str) -> None:
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


def test_extract_writes_into_an_empty_folder_and_updates_its_own_store(photo_dir: Path, tmp_path: Path) -> None:
    """The guard refuses only what is not a store: an empty folder and a store of the same kind are written."""
    out = tmp_path / "empty"
    out.mkdir()
    for _ in range(2):
        done = attribute("extract", "--backbone", "pixel", "--images", str(photo_dir), "--out", str(out),
                         cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (out / "meta.json").is_file()


def test_a_file_as_the_output_folder_is_one_line(photo_dir: Path, tmp_path: Path) -> None:
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
        (["lds", "--batch-size", "0"], "--batch-size must be at least 1, not 0"),
        (["counterfactual", "--steps", "0"], "--steps must be at least 1, not 0"),
        (["counterfactual", "--ks", "2", "-5"], "--ks must be at least 1, not -5"),
        (["evaluate", "dataset/json/test_demo.json", "--ks", "0"], "--ks must be at least 1, not 0"),
        (["evaluate", "dataset/json/test_demo.json", "--max-per-type", "-3"], "--max-per-type must be at least 1"),
        (["calibrate", "demo_pixel", "--max-per-type", "-3"], "--max-per-type must be at least 1"),
        (["judge", "abc", "--max-per-type", "-3"], "--max-per-type must be at least 0, not -3"),
        (["judge", "lds", "--alpha", "1.5"], "--alpha must be between 0.01 and 0.99, not 1.5"),
    ],
)
def test_judge_arguments_out_of_range_are_refused_before_any_work(args: list[str], expected: str) -> None:
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
def test_test_case_paths_that_are_not_strings_are_one_line(tmp_path: Path, bad, command: str) -> None:
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
        first = sorted(tensors)[0]
        tensors[first] = torch.full_like(tensors[first], float("nan"))
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


def test_a_prompt_read_from_a_png_is_shown_escaped_never_obeyed(demo_bundle, tmp_path: Path) -> None:
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


def test_health_says_when_the_spaces_file_is_broken(tmp_path: Path, monkeypatch) -> None:
    """A service started with a bad spaces file reported healthy, then answered 400 to every request."""
    from fastapi.testclient import TestClient

    from attribution_core.service import ServiceConfig, create_app

    spaces = tmp_path / "spaces.toml"
    spaces.write_text('[[spaces]]\nname = "x"\nstore = 3\n')
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(spaces))
    with TestClient(create_app(ServiceConfig())) as client:
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "broken" and "spaces.toml" in r.json()["detail"]
        spaces.write_text('[[spaces]]\nname = "x"\nbackbone = "pixel"\nstore = "feats/x"\n')
        assert client.get("/healthz").status_code == 200  # fixed file: healthy again, without a restart
