"""The explorer's page logic, driven by Streamlit's AppTest on the demo bundle (uploads included)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import skimage.data as data
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from attribution_core.core.paths import project_root
from attribution_core.features.attributor import FeatureAttributor

APP = str(project_root() / "streamlit_demo.py")


def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_first_view_shows_the_example_with_influence_rows(demo_bundle) -> None:
    at = app()
    assert not at.error
    headings = [t for t in texts(at) if "estimated influence**" in t]
    assert headings and headings[0].startswith("**[")
    total = sum(int(t.split("**, **")[1].split(" images")[0]) for t in headings)
    assert total == 100  # every retrieved image sits in exactly one row
    assert any(t.startswith("Remaining influence:") for t in texts(at))
    assert any("calibrator: inv temp 16.1587; bias -0.0385" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 2


def test_controls_change_the_results(demo_bundle) -> None:
    at = app()
    at.sidebar.select_slider[0].set_value(10).run()
    headings = [t for t in texts(at) if "estimated influence**" in t]
    assert sum(int(t.split("**, **")[1].split(" images")[0]) for t in headings) == 10


def test_compare_two_spaces(demo_bundle) -> None:
    at = app()
    at.sidebar.multiselect[0].set_value(["demo_efficientnet_lite0", "demo_pixel"]).run()
    assert not at.exception and not at.error
    assert any(t.startswith("**Overlap of the top 100:") for t in texts(at))
    assert sum(t.startswith("Remaining influence:") for t in texts(at)) == 2
    assert [s.value for s in at.subheader][:3] == ["Comparison", "EfficientNet-Lite0 (demo)", "pixels (demo)"]
    table = at.table[0].value  # the inspect panel: first result of the first space
    rows = dict(zip(table.index, table["value"], strict=True))
    assert rows["space"] == "EfficientNet-Lite0 (demo)" and rows["rank"] == "1"
    assert rows["rank in pixels (demo)"].isdigit() or rows["rank in pixels (demo)"] == "not in top 100"


def test_the_distilled_space_beside_a_feature_space(demo_bundle) -> None:
    at = app()
    at.sidebar.multiselect[0].set_value(["demo_model_efficientnet_lite0_tuned", "demo_distilled"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader][:3] == [
        "Comparison",
        "EfficientNet-Lite0 (demo model's training set, tuned)",
        "Distilled (demo diffusion model)",
    ]
    assert sum(t.startswith("Remaining influence:") for t in texts(at)) == 2
    captions = [c.value for c in at.caption]
    # the example query is a JPEG without a prompt: answered on image features alone, and the page says so
    assert any("no prompt: image features alone" in c and c.startswith("calibrator: inv temp") for c in captions)


@pytest.mark.parametrize(
    "name,content,ok",
    [
        ("rgba.png", lambda: png_bytes(Image.fromarray(data.chelsea()).convert("RGBA")), True),
        ("cmyk.jpg", lambda: png_bytes(Image.fromarray(data.chelsea()).convert("CMYK"), "JPEG"), True),
        ("gray16.png", lambda: png_bytes(Image.fromarray(data.camera().astype(np.uint16) * 257)), True),
        ("palette.png", lambda: png_bytes(Image.fromarray(data.coffee()).convert("P", palette=Image.ADAPTIVE)), True),
        (
            "anim.webp",
            lambda: png_bytes(
                Image.new("RGB", (64, 64), "red"),
                "WEBP",
                save_all=True,
                append_images=[Image.new("RGB", (64, 64), "blue")],
            ),
            True,
        ),
        ("notes.png", lambda: b"these are my notes, not an image", False),
        ("cut.jpg", lambda: png_bytes(Image.fromarray(data.astronaut()), "JPEG")[:5000], False),
        ("bomb.png", lambda: png_bytes(Image.new("1", (17_000, 17_000))), False),
    ],
)
def test_uploads_work_or_show_a_clear_error(demo_bundle, name, content, ok) -> None:
    at = app()
    at.sidebar.file_uploader[0].set_value((name, content(), "image/png")).run()
    assert not at.exception
    if ok:
        assert not at.error, [e.value for e in at.error]
        assert any(t.startswith("Remaining influence:") for t in texts(at))
    else:
        assert len(at.error) == 1 and name in at.error[0].value and "Traceback" not in at.error[0].value
        assert not any(t.startswith("Remaining influence:") for t in texts(at))


def test_models_load_once_per_server_process(demo_bundle, monkeypatch) -> None:
    st.cache_resource.clear()
    st.cache_data.clear()
    loads = []
    real_load = FeatureAttributor.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args[0].name)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(FeatureAttributor, "load", classmethod(counting_load))
    at = app()
    at.sidebar.slider[0].set_value(3).run()  # a display change
    at.sidebar.select_slider[0].set_value(50).run()  # a new K
    second = AppTest.from_file(APP, default_timeout=180)  # another browser session
    second.run()
    assert loads == ["demo_efficientnet_lite0"]


@pytest.mark.slow
def test_first_launch_builds_the_demo_instead_of_failing(tmp_path, monkeypatch) -> None:
    """A fresh home with no demo bundle: the page builds its feature spaces (progress bar), then answers the
    example query."""
    monkeypatch.setenv("ATTRIBUTION_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (tmp_path / "feats" / "demo" / "efficientnet_lite0" / "train" / "meta.json").is_file()
    assert any(t.startswith("Remaining influence:") for t in texts(at))
    # the diffusion test case (evaluation only, minutes more) is built on its first need
    assert not (tmp_path / "dataset" / "json" / "test_demo_diffusion.json").exists()
    st.cache_resource.clear()
    st.cache_data.clear()


def test_the_explorer_listens_on_loopback_only(tmp_path) -> None:
    """Started as ``scripts/run.sh`` starts it (no address given), the explorer binds to 127.0.0.1: it prints no
    "Network URL", and a connection to this machine's other addresses is refused."""
    import socket
    import subprocess
    import sys

    from .helpers import free_port, wait_until_up

    port = free_port()
    log = tmp_path / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_demo.py", "--server.port", str(port)],
            cwd=project_root(),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", proc)
        text = log.read_text()
        assert f"http://127.0.0.1:{port}" in text and "Network URL" not in text, text
        others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
        for address in others - {a for a in others if a.startswith("127.")}:
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((address, port))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
