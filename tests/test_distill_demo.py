"""The shipped distilled space (issue: distilled attribution, items 4-6): listed ready out of the box, queried by the
CLI with the prompt from the PNG (or none, and marked), evaluated on the AbC diffusion test case, served with
micro-batched answers equal to single ones; and the demo model's calibrated unlearning."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from attribution_core.core.paths import project_root

SPACE = "demo_distilled"


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", *args],
        capture_output=True, text=True, cwd=project_root(), timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clock(demo_bundle, tmp_path_factory) -> Path:
    """A generated "a photo of a clock" (its PNG carries the prompt)."""
    out = tmp_path_factory.mktemp("distilled") / "clock.png"
    made = cli("diffusion", "sample", "--prompt", "a photo of a clock", "--seed", "7", "--out", str(out))
    assert made.returncode == 0, made.stderr[-2000:]
    return out


def test_the_distilled_space_ships_ready_with_its_training_record(demo_bundle) -> None:
    listed = cli("spaces", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    spaces = {s["name"]: s for s in json.loads(listed.stdout)}
    assert spaces[SPACE]["ready"] and spaces[SPACE]["method"] == "distilled"
    assert spaces["demo_unlearning"]["ready"]
    from attribution_core.demo.distilled import distilled_dir

    meta = json.loads((distilled_dir() / "student.json").read_text())
    from attribution_core.demo import demo_model_dir
    from attribution_core.diffusion.load import load_model

    assert meta["model"] == load_model(demo_model_dir(), "cpu").fingerprint()  # trained for the shipped model
    report = meta["report"]["average_precision"]
    assert report["student"]["10"] > report["backbone cosine"]["10"]  # it learnt more than its raw features hold


def test_a_generated_image_is_attributed_with_its_prompt_or_marked_without(clock, tmp_path) -> None:
    jpeg = tmp_path / "clock.jpg"
    Image.open(clock).convert("RGB").save(jpeg)  # a JPEG carries no prompt
    asked = cli("query", str(clock), str(jpeg), "--space", SPACE, "--top-k", "10", "--json")
    assert asked.returncode == 0, asked.stderr[-2000:]
    with_prompt, without = (json.loads(line) for line in asked.stdout.splitlines())
    assert with_prompt["extras"]["prompt"] == "a photo of a clock" and with_prompt["method"] == "distilled"
    assert without["extras"]["note"] == "no prompt: image features alone"
    for answer in (with_prompt, without):
        shares = [r["influence"] for r in answer["results"]]
        assert sum(shares) + answer["remaining_influence"] == pytest.approx(1.0, abs=1e-6)
        assert shares == sorted(shares, reverse=True)
        assert answer["influence_from"].startswith("calibrator: inv temp")  # fitted on ground truth, shown
    captions = [r["caption"] for r in with_prompt["results"]]
    assert sum("clock" in c for c in captions) >= 5, captions  # a generated clock is attributed to clock photos
    assert with_prompt["results"][0]["influence"] > 0.05  # not flat: the top image carries a real share


def test_attribute_evaluate_has_a_distilled_row(demo_bundle) -> None:
    """The AbC demo test case names no prompts: evaluated on image features alone (the diffusion test case, with
    prompts and customised models, is evaluated in test_demo.py)."""
    run = cli("evaluate", "dataset/json/test_demo.json", "--space", SPACE, "--max-per-type", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith(f"| {SPACE} |"))
    values = [float(c) for c in row.strip("|").split("|")[1:]]
    assert values and all(0.0 <= v <= 1.0 for v in values)


def test_service_answers_micro_batched_distilled_queries_as_alone(clock) -> None:
    from fastapi.testclient import TestClient

    from attribution_core.service import ServiceConfig, create_app

    app = create_app(ServiceConfig(spaces=(SPACE,), batch_window_ms=50))
    prompts = ["a photo of a clock", "a photo of coins", "a photo of a horse, dark", None]
    image = clock.read_bytes()

    def form(prompt: str | None) -> dict:
        return {"space": SPACE, "k": "5", **({"prompt": prompt} if prompt else {})}

    with TestClient(app) as client:
        alone = [client.post("/v1/attribute", data=form(p), files={"image": ("q.png", image)}).json() for p in prompts]

        async def together():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
                return await asyncio.gather(
                    *[c.post("/v1/attribute", data=form(p), files={"image": ("q.png", image)}) for p in prompts]
                )

        answers = asyncio.run(together())
        metrics = client.get("/metrics").text
    assert all(a.status_code == 200 for a in answers)
    for single, batched in zip(alone, answers, strict=True):
        one, many = single["results"][0], batched.json()["results"][0]
        assert [r["path"] for r in many["results"]] == [r["path"] for r in one["results"]]
        assert [r["influence"] for r in many["results"]] == pytest.approx(
            [r["influence"] for r in one["results"]], abs=1e-5
        )
    # the prompt matters: a clock image asked as "coins" is answered differently
    assert [r["path"] for r in alone[0]["results"][0]["results"]] != [
        r["path"] for r in alone[1]["results"][0]["results"]
    ]
    bucket_1 = next(line for line in metrics.splitlines() if line.startswith('attribution_batch_size_bucket{le="1.0"}'))
    count = next(line for line in metrics.splitlines() if line.startswith("attribution_batch_size_count"))
    assert float(count.split()[-1]) > float(bucket_1.split()[-1])  # one batch held several queries


def test_the_demo_unlearning_shares_are_calibrated_not_flat(demo_bundle) -> None:
    from attribution_core.demo.distilled import unlearning_calibrator_path
    from attribution_core.registry import create_attributor

    attributor = create_attributor("demo_unlearning", device="cpu", progress=False)
    assert attributor.calibrator is not None and unlearning_calibrator_path().is_file()
    import numpy as np

    from attribution_core.unlearning.scores import share_of_rise

    # a few training images were forgotten with the query, the rest moved a little, as in a real answer
    rises = np.concatenate([[1.0, 0.9, 0.8, 0.7, 0.6], np.random.default_rng(0).uniform(-0.2, 0.3, 1015)])
    shares = attributor.influence(rises * 0.004)  # loss rises are small numbers: their ratios are what count
    flat = share_of_rise(rises)
    assert shares.sum() == pytest.approx(1.0) and flat[0] < 0.05
    assert shares[:5].sum() > 0.5 and shares[0] > 5 * flat[0]  # the forgotten images carry most of the mass
    assert np.all(np.diff(shares[:5]) <= 0)  # in the order of their rise
    assert attributor.influence(np.where(np.arange(1020) < 100, rises, -np.inf))[100:].sum() == 0  # unscored: none
