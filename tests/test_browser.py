"""End to end in a real browser: the Streamlit server on loopback, headless Chromium, a real file upload."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attribution_core.core.paths import project_root
from attribution_core.demo import EXAMPLE_QUERIES, demo_dir

from .helpers import free_port, start_service, wait_until_up, write_quick_unlearning

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = project_root() / "test-artifacts"
ROW_HEADING = re.compile(r"^\[(\d+\.\d\d)%\] estimated influence, (\d+) images$")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


def start_explorer(log_name: str, env: dict, *script_args: str) -> tuple[subprocess.Popen, str, object]:
    port = free_port()
    log = open(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / log_name, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_demo.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            *(["--", *script_args] if script_args else []),
        ],
        cwd=project_root(),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    return proc, url, log


def stop(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def quick_spaces(demo_bundle, tmp_path_factory) -> str:
    return str(write_quick_unlearning(tmp_path_factory.mktemp("spaces")))


@pytest.fixture(scope="module")
def server(quick_spaces):
    proc, url, log = start_explorer("streamlit.log", {"ATTRIBUTION_SPACES": quick_spaces})
    yield url
    stop(proc, log)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        page.set_default_timeout(180_000)
        yield page
        browser.close()


def wait_for_results(page, n_spaces: int) -> None:
    page.get_by_text("Remaining influence").nth(n_spaces - 1).wait_for()
    # the script run has ended (the status widget appears only after a delay, so its absence alone can be a run
    # still under way, with the previous run's elements not yet cleared)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    # every result image has arrived and decoded (a broken or missing image would have naturalWidth 0)
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('img[alt^=\"rank \"]')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
    )


def test_upload_shows_results_sized_by_influence(page, server, tmp_path_factory) -> None:
    page.goto(server)
    page.get_by_text("Attribution explorer").first.wait_for()
    wait_for_results(page, 1)  # the default example query renders first
    query = tmp_path_factory.mktemp("upload") / "my_generated_image.jpg"
    shutil.copy(demo_dir() / EXAMPLE_QUERIES[0], query)
    page.locator("input[type=file]").set_input_files(str(query))
    page.locator('[data-testid="stImageCaption"]', has_text="my_generated_image.jpg").wait_for()
    wait_for_results(page, 1)
    assert page.get_by_text("dataset/demo/exemplar/chelsea_q0/").count() >= 1  # its own exemplar is the top match
    assert page.locator('img[alt^="rank "]').count() == 100  # the default "Number retrieved"
    headings = page.get_by_text(ROW_HEADING)
    assert headings.count() >= 2
    counts = [int(ROW_HEADING.match(headings.nth(i).inner_text()).group(2)) for i in range(headings.count())]
    assert sum(counts) == 100  # every result sits under one influence heading
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=False)


def test_compare_mode_in_the_browser(page, server) -> None:
    page.locator('[data-testid="stMultiSelect"] input').first.click()
    page.get_by_role("option", name="pixels (demo)").click()
    page.keyboard.press("Escape")
    page.get_by_text("Overlap of the top 100").wait_for()
    wait_for_results(page, 2)
    assert page.locator('img[alt^="rank "]').count() == 200
    assert page.get_by_text("Remaining influence").count() == 2
    assert page.get_by_text(ROW_HEADING).count() >= 2
    page.screenshot(path=str(ARTIFACTS / "explorer-compare.png"), full_page=False)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copy(ARTIFACTS / "explorer.png", project_root() / "docs" / "explorer.png")
        shutil.copy(ARTIFACTS / "explorer-compare.png", project_root() / "docs" / "explorer-compare.png")


def test_type_a_prompt_generate_and_attribute_by_unlearning(page, server) -> None:
    """Generate an image from a typed prompt in the page; it is attributed by unlearning and by the distilled space
    beside the feature spaces."""
    page.goto(server)  # a new session: the earlier tests' upload would take precedence over a generated image
    wait_for_results(page, 1)
    for option in ("pixels (demo)", "Unlearning (quick settings)", "Distilled (demo diffusion model)"):
        page.locator('[data-testid="stMultiSelect"] input').first.click()
        page.get_by_role("option", name=option).click()
        page.keyboard.press("Escape")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.wait_for(state="visible")
    prompt.fill("a photo of a clock")
    prompt.press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator('[data-testid="stImageCaption"]', has_text="a photo of a clock").wait_for()
    page.get_by_text("Remaining influence").nth(3).wait_for(timeout=600_000)
    wait_for_results(page, 4)
    assert page.get_by_role("heading", name="Unlearning (quick settings)").count() == 1
    assert page.get_by_role("heading", name="Distilled (demo diffusion model)").count() == 1
    assert page.get_by_text("unlearning; score = delta_loss").count() >= 1
    assert page.locator('img[alt^="rank "]').count() == 400
    page.screenshot(path=str(ARTIFACTS / "explorer-unlearning.png"), full_page=False)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copy(ARTIFACTS / "explorer-unlearning.png", project_root() / "docs" / "explorer-unlearning.png")


def test_the_explorer_on_a_running_service_shows_the_same_results(page, server, quick_spaces) -> None:
    """``streamlit run streamlit_demo.py -- --server URL``: the same page, answered by ``attribute serve``."""
    port = free_port()
    service_log = open(ARTIFACTS / "service.log", "w")
    service = start_service(port, quick_spaces, service_log)
    service_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(service_url, service, "/healthz")
        proc, url, log = start_explorer("streamlit-remote.log", {}, "--server", service_url)
        try:
            page.goto(url)
            page.get_by_text("Attribution explorer").first.wait_for()
            wait_for_results(page, 1)  # the default example query, answered by the service
            query = ARTIFACTS / "my_generated_image.jpg"
            shutil.copy(demo_dir() / EXAMPLE_QUERIES[0], query)
            page.locator("input[type=file]").set_input_files(str(query))
            page.locator('[data-testid="stImageCaption"]', has_text="my_generated_image.jpg").wait_for()
            wait_for_results(page, 1)
            # the service names files from the space's image folder, never from its own disk
            assert page.get_by_text("exemplar/chelsea_q0/").count() >= 1
            assert page.get_by_text("dataset/demo/exemplar/").count() == 0
            assert page.locator('img[alt^="rank "]').count() == 100
            page.screenshot(path=str(ARTIFACTS / "explorer-remote.png"), full_page=False)
        finally:
            stop(proc, log)
    finally:
        stop(service, service_log)
    served = (ARTIFACTS / "service.log").read_text()
    assert "Traceback" not in served
