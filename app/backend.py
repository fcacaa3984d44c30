"""Where the explorer's answers come from, behind one small interface: this process's own library (``LocalBackend``)
or a running attribution service (``RemoteBackend``: ``streamlit run streamlit_demo.py -- --server URL``, or
``$ATTRIBUTION_SERVER``), whose spaces, results and training-image thumbnails are fetched, so that no model or index
is loaded here. The page never asks which one it has."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from PIL import Image

from attribution_core.attribute.interface import Attribution, AttributionResult, Attributor, Capabilities
from attribution_core.attribute.spaces import SpaceStatus, status_from_record
from attribution_core.core.images import thumbnail
from attribution_core.core.progress import CancelFlag, Progress
from attribution_core.registry import create_attributor, list_spaces, method_class
from attribution_core.service.client import AttributionClient


class LocalBackend:
    """The library in this process: spaces from the registry, attributors loaded once per server process."""

    remote = False

    def statuses(self) -> list[SpaceStatus]:
        return list_spaces()

    def capabilities(self, space: str) -> Capabilities:
        from attribution_core.registry import get_space

        return method_class(get_space(space).method).capabilities

    def attribute(
        self,
        space: str,
        image: Image.Image,
        k: int,
        name: str,
        prompt: str | None,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: CancelFlag | None = None,
    ) -> AttributionResult:
        model = attributor(space)
        model.prepare(on_progress, cancel)  # a first query builds what the space lacks, with progress and cancel
        return model.attribute([image], k, names=[name], prompts=[prompt], on_progress=on_progress, cancel=cancel)[0]

    def training_image(self, space: str, a: Attribution, max_side: int) -> Image.Image:
        return thumbnail(Path(a.path), max_side)

    def prepared(self, space: str) -> bool:
        """Whether the space's first query has work to do first (an index to build, caches to fill)."""
        return attributor(space).prepared

    def thumbnail_key(self, space: str, a: Attribution) -> str:
        return a.path


class RemoteBackend:
    """A running attribution service, through its Python client."""

    remote = True

    def __init__(self, url: str, api_key: str | None):
        self.client = AttributionClient(url, api_key, timeout=300)

    def statuses(self) -> list[SpaceStatus]:
        return [status_from_record(s) for s in _service_spaces(self.client.url)]

    def capabilities(self, space: str) -> Capabilities:
        """As the service lists them (an older service without ``interactive``, ``uses_prompt`` or ``batchable``:
        a method that needs a prompt is taken for one that is not interactive and reads it)."""
        found = next((s for s in _service_spaces(self.client.url) if s["name"] == space), {})
        needs = bool(found.get("needs_prompt", False))
        return Capabilities(
            interactive=bool(found.get("interactive", not needs)),
            needs_prompt=needs,
            uses_prompt=bool(found.get("uses_prompt", needs)),
            batchable=bool(found.get("batchable", True)),
        )

    def attribute(self, space, image, k, name, prompt, on_progress=None, cancel=None) -> AttributionResult:
        answer = self.client.attribute(
            image, spaces=[space], k=k, prompt=prompt, name=name, on_progress=on_progress, cancel=cancel
        )
        result = answer[0]
        result.query = name
        return result

    def training_image(self, space: str, a: Attribution, max_side: int) -> Image.Image:
        return thumbnail(self.client.training_image(space, a.row, max_side), max_side, self.thumbnail_key(space, a))

    def thumbnail_key(self, space: str, a: Attribution) -> str:
        return f"{space}/{a.row}"

    def prepared(self, space: str) -> bool:
        return True  # the service prepares its own spaces


@st.cache_resource(show_spinner="Loading the space (once per server)…", max_entries=8)
def attributor(space_name: str) -> Attributor:
    """One loaded space, shared across sessions (its store and index are opened on its first query)."""
    return create_attributor(space_name, progress=False)


@st.cache_data(ttl=10, show_spinner=False)
def _service_spaces(url: str) -> list[dict]:
    """The service's spaces (asked again at most every 10 s)."""
    return backend().client.spaces()


@functools.cache
def server_options() -> tuple[str | None, str | None]:
    """(server URL, API key) from ``--server URL --api-key KEY`` after ``--`` on the streamlit command line, else
    ``$ATTRIBUTION_SERVER`` / ``$ATTRIBUTION_API_KEY``; read once per process (every rerun and thumbnail asks)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--server")
    parser.add_argument("--api-key")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return (
        known.server or os.environ.get("ATTRIBUTION_SERVER") or None,
        known.api_key or os.environ.get("ATTRIBUTION_API_KEY") or None,
    )


@st.cache_resource
def backend() -> LocalBackend | RemoteBackend:
    """The explorer's source of answers for this server process."""
    url, key = server_options()
    return RemoteBackend(url, key) if url else LocalBackend()
