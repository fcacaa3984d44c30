"""Cached resources shared by every session of one server process: spaces, attributors, thumbnails."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st
from PIL import Image

from attribution_core.attribute import AttributionResult, Attributor
from attribution_core.demo import build_demo
from attribution_core.errors import InputImageError
from attribution_core.images import load_rgb
from attribution_core.progress import Progress
from attribution_core.registry import create_attributor, list_spaces
from attribution_core.spaces import SpaceStatus


def space_statuses() -> list[SpaceStatus]:
    return list_spaces()


def demo_ready(statuses: list[SpaceStatus]) -> bool:
    return all(s.ready for s in statuses if s.spec.demo)


def build_demo_with_progress() -> None:
    """First launch: build the demo bundle with a progress bar (driven by the build's own progress) instead of
    failing."""
    intro = "First launch: building the offline demo bundle (about 90 seconds)"
    bar = st.progress(0.0, text=f"{intro}…")

    def show(p: Progress) -> None:
        count = f" {p.done:,}/{p.total:,}" if p.total > 1 else ""
        bar.progress(p.fraction, text=f"{intro}: {p.stage}{count}")

    build_demo(progress=False, on_progress=show)
    bar.empty()


@st.cache_resource(show_spinner="Loading the feature space (once per server)…", max_entries=8)
def attributor(space_name: str) -> Attributor:
    """One loaded space (for feature spaces: backbone, heads, calibrator, store, index), shared across sessions."""
    return create_attributor(space_name, progress=False)


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
