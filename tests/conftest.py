"""Shared fixtures: real photographs from scikit-image, and the demo bundle (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def demo_bundle():
    """The real demo bundle's feature spaces in the project (idempotent: built on the first run, reused after). The
    diffusion test case (10 customised models, ~4 minutes) is left out: no test reads it, and
    ``test_the_diffusion_test_case_is_written_in_the_abc_format_and_evaluated`` builds one model of it."""
    from attribution_core.demo import build_demo

    return build_demo(progress=False, diffusion_test_case=False)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder with a few real photos (different sizes) in nested folders."""
    import skimage.data as data

    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    (folder / "misc").mkdir()
    Image.fromarray(data.chelsea()).save(folder / "cats" / "chelsea.jpg")
    Image.fromarray(data.astronaut()).save(folder / "misc" / "astronaut.png")
    Image.fromarray(data.coffee()).save(folder / "misc" / "coffee.webp")
    Image.fromarray(data.rocket()).save(folder / "rocket.jpg")
    Image.fromarray(data.camera()).save(folder / "camera.png")
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the demo bundle (about 90 s to build once) is ``slow``: ``-m "not slow"`` skips them."""
    for item in items:
        if "demo_bundle" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
