"""Cached resources shared by every session of one server process: spaces, attributors, thumbnails."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st
from PIL import Image

from attribution_core.attribute import AttributionResult, FeatureAttributor
from attribution_core.errors import InputImageError
from attribution_core.images import load_rgb
from attribution_core.spaces import SpaceStatus, get_space, list_spaces


def space_statuses() -> list[SpaceStatus]:
    return list_spaces()


def demo_ready(statuses: list[SpaceStatus]) -> bool:
    return all(s.ready for s in statuses if s.spec.demo)


def build_demo_with_progress() -> None:
    """First launch: build the demo bundle with a progress bar instead of failing."""
    from attribution_core.demo import build_demo

    bar = st.progress(0.0, text="First launch: building the offline demo bundle (about 90 seconds)…")
    steps = iter([0.25, 0.6, 0.9, 1.0])

    def log(message: str) -> None:
        bar.progress(next(steps, 1.0), text=message)

    build_demo(progress=False, log=log)
    bar.empty()


@st.cache_resource(show_spinner="Loading the feature space (once per server)…", max_entries=8)
def attributor(space_name: str) -> FeatureAttributor:
    """One loaded space (backbone, heads, calibrator, store, index), shared across sessions."""
    return FeatureAttributor.load(get_space(space_name), progress=False)


_attribute_lock = threading.Lock()


@st.cache_data(show_spinner=False, max_entries=256)
def attribute(space_name: str, digest: str, k: int, _image: Image.Image, name: str) -> AttributionResult:
    """Top-``k`` and influence for one query image, cached by the image's digest (reruns are free)."""
    with _attribute_lock:  # one model call at a time: torch already uses every core
        return attributor(space_name).attribute([_image], k, names=[name])[0]


class Thumbnails:
    """Decoded training images, kept small and in memory (an LRU), so reruns do not decode again."""

    def __init__(self, capacity: int = 4096, max_side: int = 1024):
        self.capacity, self.max_side = capacity, max_side
        self._cache: OrderedDict[str, Image.Image | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> Image.Image | None:
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        try:
            img = load_rgb(Path(path))
            img.thumbnail((self.max_side, self.max_side), Image.BICUBIC)
        except InputImageError:
            img = None  # a training image missing on disk is shown as a placeholder
        with self._lock:
            self._cache[path] = img
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return img


@st.cache_resource
def thumbnails() -> Thumbnails:
    return Thumbnails()
