"""The attribution service (issue: one process holds the models, many clients ask it): HTTP behaviour a client
notices, in-process through the ASGI app and against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from attribution_core.core.paths import project_root
from attribution_core.demo import EXAMPLE_QUERIES, demo_dir
from attribution_core.service import ServiceConfig, create_app

from .helpers import free_port, start_service, write_quick_unlearning

SPACE = "demo_efficientnet_lite0_tuned"


@pytest.fixture(scope="module")
def app(demo_bundle):
    return create_app(ServiceConfig(spaces=(SPACE,), batch_window_ms=50))


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:  # runs the lifespan: the space is loaded once, at start
        yield c


def query_bytes() -> bytes:
    return (demo_dir() / EXAMPLE_QUERIES[0]).read_bytes()


def test_openapi_schema_validates(client) -> None:
    from openapi_spec_validator import validate

    schema = client.get("/openapi.json").json()
    validate(schema)
    assert {"/v1/attribute", "/v1/spaces", "/v1/jobs/{job_id}", "/v1/images/{space}/{row}", "/healthz"} <= set(
        schema["paths"]
    )


def test_attribute_answers_like_the_cli_json(client, tmp_path, capsys) -> None:
    import json

    from attribution_core.cli import main

    r = client.post("/v1/attribute", data={"space": SPACE, "k": "5"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 200, r.text
    (got,) = r.json()["results"]
    query = tmp_path / "q.jpg"
    query.write_bytes(query_bytes())
    capsys.readouterr()
    assert main(["query", str(query), "--space", SPACE, "-k", "5", "--json", "-q"]) == 0
    cli = json.loads(capsys.readouterr().out.splitlines()[0])
    assert [a["row"] for a in got["results"]] == [a["row"] for a in cli["results"]]
    # the CLI names files from the project root (as the README shows); the service from the space's image folder,
    # never revealing the server's own folders
    assert all(c["path"].startswith("dataset/demo/") for c in cli["results"])
    for a, c in zip(got["results"], cli["results"], strict=True):
        assert not a["path"].startswith("/") and c["path"] == f"dataset/demo/{a['path']}"
    assert str(project_root()) not in r.text
    assert [a["influence"] for a in got["results"]] == pytest.approx([a["influence"] for a in cli["results"]])
    assert got["remaining_influence"] == pytest.approx(cli["remaining_influence"])


def test_bad_upload_is_a_400_with_one_line(client) -> None:
    r = client.post("/v1/attribute", data={"space": SPACE}, files={"image": ("notes.png", b"not an image")})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "notes.png" in detail and "\n" not in detail
    r = client.post("/v1/attribute", data={"space": "no_such_space"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 400 and "unknown space 'no_such_space'" in r.json()["detail"]
    r = client.post("/v1/attribute", data={"space": SPACE, "k": "0"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 400


def test_a_full_upload_spool_is_a_507_that_the_operator_hears_about(client, monkeypatch, caplog) -> None:
    """The form parser turns the server's own "no space left" into 400 "error parsing the body" and logs nothing;
    the service answers 507 in one line and logs an error naming the temporary folder."""
    import errno

    from starlette.datastructures import UploadFile

    async def full(self, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(UploadFile, "write", full)
    with caplog.at_level(logging.ERROR, logger="attribution_core.service.app"):
        r = client.post("/v1/attribute", data={"space": SPACE}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 507 and "temporary folder is full" in r.json()["detail"]
    assert any("could not be stored" in m for m in caplog.messages)
    monkeypatch.undo()
    r = client.post("/v1/attribute", data={"space": SPACE}, files={"image": ("notes.png", b"not an image")})
    assert r.status_code == 400  # a client's own mistake is still a 400


def test_uploads_are_decoded_off_the_event_loop(client, monkeypatch) -> None:
    """A large upload's decoding must not stall every other request: it runs where no event loop is running."""
    import attribution_core.service.app as service_app

    real = service_app.load_rgb
    on_loop = []

    def spy(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # no loop here: a worker thread
            on_loop.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(service_app, "load_rgb", spy)
    r = client.post("/v1/attribute", data={"space": SPACE, "k": "1"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 200
    r = client.post("/v1/attribute", data={"space": SPACE, "k": "1", "image_id": f"{SPACE}/0"})
    assert r.status_code == 200
    assert on_loop == [False, False]


def test_oversized_upload_is_a_413(demo_bundle) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceConfig(max_upload_mb=0.05))) as small:
        big = io.BytesIO()
        Image.effect_noise((400, 400), 64).convert("RGB").save(big, format="PNG")  # ~ 0.2 MB, incompressible
        r = small.post("/v1/attribute", data={"space": SPACE}, files={"image": ("big.png", big.getvalue())})
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_an_oversized_upload_sent_chunked_is_a_413_too() -> None:
    """Without Content-Length (chunked), the body is counted as it streams: 413, not the form parser's 400."""
    from fastapi.testclient import TestClient

    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 2**20

    with TestClient(create_app(ServiceConfig(max_upload_mb=25))) as small:
        r = small.post("/v1/attribute", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "over the limit of 25 MB" in r.json()["detail"]


def test_api_key_is_required_when_configured(demo_bundle) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceConfig(api_key="s3cret"))) as keyed:
        assert keyed.get("/v1/spaces").status_code == 401
        assert keyed.get("/v1/spaces", headers={"X-API-Key": "wrong"}).status_code == 401
        assert keyed.get("/v1/spaces", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert keyed.get("/v1/spaces", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert keyed.get("/healthz").status_code == 200  # liveness probes need no key


def test_a_non_loopback_bind_without_a_key_is_refused_in_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "attribution_core", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: refusing to serve on 0.0.0.0 without an API key")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_training_images_are_served_by_row_and_unknown_rows_are_404(client) -> None:
    r = client.get(f"/v1/images/{SPACE}/0", params={"size": 64})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) == 64
    assert client.get(f"/v1/images/{SPACE}/999999").status_code == 404
    assert client.get(f"/v1/images/{SPACE}/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)


def test_a_stored_path_leading_outside_the_image_folder_is_never_served(tmp_path) -> None:
    from attribution_core.service.state import ServiceState

    class Escaping:  # a store whose row 0 names ../secret.txt (a crafted paths.json)
        def training_image(self, row):
            return tmp_path / "images" / ".." / "secret.txt", tmp_path / "images"

    state = ServiceState(ServiceConfig())
    state._attributors["crafted"] = Escaping()
    with pytest.raises(IndexError):
        state.training_image("crafted", 0)


def test_concurrent_requests_are_micro_batched_and_answer_as_alone(app, client) -> None:
    alone = client.post("/v1/attribute", data={"space": SPACE, "k": "5"}, files={"image": ("a.jpg", query_bytes())})
    queries = [(demo_dir() / q).read_bytes() for q in EXAMPLE_QUERIES[:6]]

    async def many():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
            return await asyncio.gather(
                *[
                    c.post("/v1/attribute", data={"space": SPACE, "k": "5"}, files={"image": (f"{i}.jpg", q)})
                    for i, q in enumerate(queries)
                ]
            )

    answers = asyncio.run(many())
    assert all(a.status_code == 200 for a in answers)
    first = answers[0].json()["results"][0]["results"]
    assert [a["path"] for a in first] == [a["path"] for a in alone.json()["results"][0]["results"]]
    assert [a["influence"] for a in first] == pytest.approx(
        [a["influence"] for a in alone.json()["results"][0]["results"]], abs=1e-5
    )
    metrics = client.get("/metrics").text
    # one batch held several of the concurrent queries
    bucket_1 = next(line for line in metrics.splitlines() if line.startswith('attribution_batch_size_bucket{le="1.0"}'))
    count = next(line for line in metrics.splitlines() if line.startswith("attribution_batch_size_count"))
    assert float(count.split()[-1]) > float(bucket_1.split()[-1])
    assert 'attribution_requests_total{endpoint="/v1/attribute",status="200"}' in metrics
    assert "attribution_loaded_spaces 1.0" in metrics


def test_a_full_queue_answers_503(demo_bundle) -> None:
    app = create_app(ServiceConfig(spaces=(SPACE,), queue_size=2, batch_window_ms=300))

    async def many():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
            return await asyncio.gather(
                *[
                    c.post("/v1/attribute", data={"space": SPACE}, files={"image": (f"{i}.jpg", query_bytes())})
                    for i in range(6)
                ]
            )

    from fastapi.testclient import TestClient

    with TestClient(app):  # lifespan: the space is loaded before the burst
        codes = sorted(r.status_code for r in asyncio.run(many()))
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}


@pytest.fixture
def quick_unlearning(demo_bundle, tmp_path, monkeypatch) -> str:
    spaces = write_quick_unlearning(tmp_path)
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(spaces))
    return str(spaces)


def test_client_against_a_real_server_features_at_once_unlearning_as_a_job(quick_unlearning, tmp_path) -> None:
    """``attribute serve`` (uvicorn, loopback) and ``AttributionClient``: a feature space answers in the request,
    unlearning as a job whose progress is visible and whose result matches the library's."""
    from attribution_core.demo import demo_model_dir
    from attribution_core.diffusion import generate_image, load_model
    from attribution_core.diffusion.generation import png_bytes
    from attribution_core.service.client import AttributionClient

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = start_service(port, quick_unlearning, log)
    try:
        url = f"http://127.0.0.1:{port}"
        with AttributionClient(url, timeout=120) as api:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if api.health():
                        break
                except Exception:
                    time.sleep(0.5)
            spaces = {s["name"]: s for s in api.spaces()}
            assert spaces["quick_unlearning"]["ready"] and spaces["quick_unlearning"]["needs_prompt"]
            # all four capabilities are listed, so a remote explorer reads them instead of guessing from the method
            assert not spaces["quick_unlearning"]["interactive"] and spaces["quick_unlearning"]["uses_prompt"]
            assert spaces[SPACE]["batchable"] and spaces[SPACE]["interactive"] and not spaces[SPACE]["uses_prompt"]
            image, generation = generate_image(load_model(demo_model_dir()), "a photo of a clock", 3)
            png = png_bytes(image, generation)
            seen = []
            results = api.attribute(png, spaces=[SPACE, "quick_unlearning"], k=5, on_progress=seen.append, poll_s=0.2)
        assert [r.space for r in results] == [SPACE, "quick_unlearning"]
        unlearned = results[1]
        assert unlearned.method == "unlearning" and unlearned.score_kind == "delta_loss"
        assert unlearned.extras["prompt"] == "a photo of a clock"  # read from the PNG's metadata by the service
        assert len(unlearned.results) == 5 and 0 < sum(a.influence for a in unlearned.results) <= 1
        assert seen and {p.stage for p in seen} & {
            "unlearn",
            "score after unlearning",
            "fisher",
            "score before unlearning",
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "Traceback" not in Path(tmp_path / "serve.log").read_text()


def test_a_request_over_the_time_limit_answers_504(demo_bundle) -> None:
    from fastapi.testclient import TestClient

    # the request waits 0.5 s for others to share its batch, past its 0.05 s limit
    app = create_app(ServiceConfig(spaces=(SPACE,), timeout_s=0.05, batch_window_ms=500))
    with TestClient(app) as slow:
        r = slow.post("/v1/attribute", data={"space": SPACE}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 504
    assert "no answer within 0.05 s" in r.json()["detail"]


def test_a_store_with_no_image_folder_serves_no_file(tmp_path) -> None:
    """A store whose ``meta.json`` says ``"image_root": ""`` (no folder) and whose row names ``/etc/passwd``: the
    image endpoint refuses it (404) instead of serving whatever path the store names."""
    import numpy as np

    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.data.store import write_store
    from attribution_core.registry import create_attributor
    from attribution_core.service.state import ServiceState

    store = write_store(tmp_path / "s", np.ones((2, 768), np.float32), ["/etc/passwd", "x.jpg"], "pixel")
    assert store.meta.image_root == ""
    spec = SpaceSpec(name="no_folder", label="no folder", backbone="pixel", store=store.path)
    state = ServiceState(ServiceConfig())
    state._attributors["no_folder"] = create_attributor(spec, device="cpu", progress=False)
    with pytest.raises(IndexError):
        state.training_image("no_folder", 0)


class _SlowScores:
    """A method whose scoring takes 50 steps of 0.05 s and notes whether a cancel stopped it (a test double of a
    slow query, registered nowhere)."""

    def __init__(self):
        from attribution_core.attribute.interface import Attributor, TrainingRecord
        from attribution_core.core.progress import check_cancelled

        outer = self

        class Slow(Attributor):
            method = "slow_test"
            name = "slow"

            @classmethod
            def load(cls, spec, **_):
                return cls()

            def __len__(self):
                return 4

            def training_record(self, row):
                return TrainingRecord(Path(f"{row}.jpg"))

            def whole_set_scores(self, queries, on_progress=None, cancel=None):
                import numpy as np

                for step in range(50):
                    outer.steps = step
                    check_cancelled(cancel)
                    time.sleep(0.05)
                return np.zeros((len(queries), 4)), [{}] * len(queries)

            def influence(self, scores):
                return scores + 0.25

        self.attributor = Slow()
        self.steps = 0


@pytest.mark.parametrize("batching", [False, True])
def test_a_request_that_timed_out_stops_its_work(batching) -> None:
    """Past the time limit the request answers 504 and its work stops at its next step (it used to run on, holding
    the model thread and its memory), whether it was micro-batched or not."""
    from attribution_core.service.state import ServiceState

    slow = _SlowScores()
    state = ServiceState(ServiceConfig(timeout_s=0.2, micro_batching=batching, batch_window_ms=1))
    state._attributors["slow"] = slow.attributor
    image = Image.new("RGB", (64, 64))

    async def ask():
        with pytest.raises(TimeoutError):
            await state.attribute_now("slow", image, 2, "q")
        await asyncio.sleep(0.5)

    asyncio.run(ask())
    state.model_thread.shutdown(wait=True)
    assert slow.steps < 15, slow.steps  # stopped soon after 0.2 s, not after all 50 steps (2.5 s)
    state.close()


def test_request_mistakes_are_400_at_once_in_the_services_own_words(client) -> None:
    """k below 1 names the form field, not a CLI flag; a method that needs a prompt and gets none is a 400 at once
    (not a 202 and a job that fails); an absurdly long prompt is refused."""
    r = client.post("/v1/attribute", data={"space": SPACE, "k": "0"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 400 and r.json()["detail"] == "k must be at least 1 (got 0)"
    r = client.post("/v1/attribute", data={"space": "demo_unlearning"}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 400 and "space 'demo_unlearning' needs the prompt" in r.json()["detail"]
    assert "--prompt" not in r.json()["detail"]
    long = "a photo of coins " * 10_000
    r = client.post("/v1/attribute", data={"space": SPACE, "prompt": long}, files={"image": ("q.jpg", query_bytes())})
    assert r.status_code == 400 and "the prompt is 170,000 characters long; at most 1,000" in r.json()["detail"]


def test_a_prompt_longer_than_the_model_reads_is_marked_truncated(demo_bundle) -> None:
    """The demo model reads 14 words of a prompt: a result says when the rest was cut off."""
    from attribution_core.attribute.interface import Query
    from attribution_core.registry import create_attributor

    unlearning = create_attributor("demo_unlearning", device="cpu")
    image = Image.new("RGB", (16, 16))
    assert "prompt_truncated" not in unlearning.extras(Query("q", image, "a photo of coins"))
    assert unlearning.extras(Query("q", image, "a photo of coins " * 20))["prompt_truncated"] is True
