"""Cached resources shared by every session of one server process: results, thumbnails, the demo diffusion model,
over the backend that answers (app/backend.py: this process's library, or a running service)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st
from PIL import Image

from attribution_core import diffusion  # its names load diffusers on first use, not at the explorer's start
from attribution_core.attribute.interface import Attribution, AttributionResult, Capabilities
from attribution_core.attribute.spaces import SpaceStatus
from attribution_core.core.errors import InputImageError
from attribution_core.core.progress import CancelFlag, Progress
from attribution_core.demo import build_demo, demo_model_dir
from attribution_core.diffusion.generation import SamplerSettings, png_bytes
from attribution_core.service.client import ServiceError

from .backend import backend


def space_statuses() -> list[SpaceStatus]:
    return backend().statuses()


def generator_spaces(generator: str) -> list[str]:
    """Ready spaces over the training set of ``generator`` (the images it makes are attributed over them)."""
    return [s.spec.name for s in space_statuses() if s.ready and s.spec.generator == generator]


def demo_ready(statuses: list[SpaceStatus]) -> bool:
    if backend().remote:
        return True  # the service has its own data
    return all(s.ready for s in statuses if s.spec.demo and s.spec.method == "feature")


def prepared(space_name: str) -> bool:
    """Whether a space answers without work first (else the page shows that work's progress)."""
    return backend().prepared(space_name)


def capabilities(space_name: str) -> Capabilities:
    """What a space's method can do (interactive, needs a prompt, …)."""
    return backend().capabilities(space_name)


def build_demo_with_progress() -> None:
    """First launch: build the demo's feature spaces with a progress bar (driven by the build's own progress)
    instead of failing. The diffusion test case (evaluation only, minutes more) is built on its first need."""
    intro = "First launch: building the offline demo bundle (a few minutes)"
    bar = st.progress(0.0, text=f"{intro}…")

    def show(p: Progress) -> None:
        count = f" {p.done:,}/{p.total:,}" if p.total > 1 else ""
        bar.progress(p.fraction, text=f"{intro}: {p.stage}{count}")

    build_demo(progress=False, on_progress=show, diffusion_test_case=False)
    bar.empty()


class ResultCache:
    """Results by (space, image digest, k, prompt), an LRU shared by every session; one lock per space, so a
    minute-long unlearning run in one session never blocks feature-space queries in another."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._results: OrderedDict[tuple, AttributionResult] = OrderedDict()
        self._lock = threading.Lock()
        self._space_locks: dict[str, threading.Lock] = {}

    def get(self, key: tuple) -> AttributionResult | None:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        return None

    def space_lock(self, space: str) -> threading.Lock:
        with self._lock:
            return self._space_locks.setdefault(space, threading.Lock())

    def put(self, key: tuple, result: AttributionResult) -> None:
        with self._lock:
            self._results[key] = result
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)


@st.cache_resource
def results() -> ResultCache:
    return ResultCache()


def cached_result(space_name: str, digest: str, k: int, prompt: str | None) -> AttributionResult | None:
    return results().get((space_name, digest, k, prompt))


def attribute(
    space_name: str,
    digest: str,
    k: int,
    image: Image.Image,
    name: str,
    prompt: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag | None = None,
) -> AttributionResult:
    """Top-``k`` and influence for one query image, cached by the image's digest and prompt (reruns are free)."""
    key = (space_name, digest, k, prompt)
    hit = results().get(key)
    if hit is not None:
        return hit
    with results().space_lock(space_name):  # one model call per space at a time: torch already uses every core
        result = backend().attribute(space_name, image, k, name, prompt, on_progress, cancel)
    results().put(key, result)
    return result


@st.cache_resource(show_spinner="Loading the demo diffusion model…")
def demo_model():
    return diffusion.load_model(demo_model_dir())


_generate_lock = threading.Lock()


@st.cache_data(show_spinner="Generating…", max_entries=64)
def generate_png(prompt: str, seed: int) -> bytes:
    """An image of the demo model for (prompt, seed), as a PNG carrying its generation record."""
    with _generate_lock:
        image, generation = diffusion.generate_image(demo_model(), prompt, seed, SamplerSettings())
    return png_bytes(image, generation)


class Thumbnails:
    """Decoded training images, kept small and in memory (an LRU), so reruns do not decode again."""

    def __init__(self, capacity: int = 4096, max_side: int = 1024):
        self.capacity, self.max_side = capacity, max_side
        self._cache: OrderedDict[str, Image.Image | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, space: str, a: Attribution) -> Image.Image | None:
        """Training image ``a`` of ``space``: from disk, or from the service in remote mode (None: unavailable)."""
        key = backend().thumbnail_key(space, a)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            img = backend().training_image(space, a, self.max_side)
        except (InputImageError, ServiceError):
            img = None  # a training image missing on disk (or on the service) is shown as a placeholder
        with self._lock:
            self._cache[key] = img
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return img


@st.cache_resource
def thumbnails() -> Thumbnails:
    return Thumbnails()
