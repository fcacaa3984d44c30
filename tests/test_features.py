"""The feature method's cheap load and its prepare: the store and index are opened (an index built) by
``prepare``, with progress a door can show and a cancel that leaves no half-written index."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attribution_core.attribute.spaces import SpaceSpec
from attribution_core.core.progress import Cancelled
from attribution_core.data.store import write_store
from attribution_core.registry import create_attributor


def pixel_space(tmp_path, n: int = 300) -> SpaceSpec:
    feats = np.random.default_rng(0).random((n, 768), dtype=np.float32)
    store = write_store(tmp_path / "store", feats, [f"{i}.jpg" for i in range(n)], "pixel")
    return SpaceSpec(name="pixels_here", label="pixels here", backbone="pixel", store=store.path)


def test_load_is_cheap_and_prepare_reports_its_stages(tmp_path) -> None:
    spec = pixel_space(tmp_path)
    attributor = create_attributor(spec, device="cpu", progress=False)
    assert not attributor.prepared and not (spec.store / "index").exists()  # nothing built by load
    events = []
    attributor.prepare(on_progress=events.append)
    stages = [e.stage for e in events]
    assert stages[0] == "open the feature store" and "index flat" in stages
    assert attributor.prepared and any((spec.store / "index").glob("flat-*.json"))
    events.clear()
    attributor.prepare(on_progress=events.append)
    assert not events  # prepared once


def test_a_cancelled_prepare_writes_no_index_and_the_next_one_builds_it(tmp_path) -> None:
    spec = pixel_space(tmp_path)
    cancel = threading.Event()
    cancel.set()
    attributor = create_attributor(spec, device="cpu", progress=False)
    with pytest.raises(Cancelled):
        attributor.prepare(cancel=cancel)
    assert not attributor.prepared and not list((spec.store / "index").glob("*.json"))
    result = attributor.attribute([_image()], k=3)[0]  # a first query prepares itself
    assert len(result.results) == 3 and attributor.prepared


def _image():
    from PIL import Image

    return Image.new("RGB", (64, 64), (120, 30, 200))
