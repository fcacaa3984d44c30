"""The explorer against a running attribution service (``streamlit run streamlit_demo.py -- --server URL``, or
``$ATTRIBUTION_SERVER``): spaces, results and training-image thumbnails come from the service, so this process
loads no model or index of its own. The same page, the same behaviour."""

from __future__ import annotations

import argparse
import functools
import os
import sys

import streamlit as st

from attribution_core.attribute import Capabilities
from attribution_core.client import AttributionClient
from attribution_core.spaces import SpaceSpec, SpaceStatus


@functools.cache
def _options() -> tuple[str | None, str | None]:
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


def server_url() -> str | None:
    return _options()[0]


def api_key() -> str | None:
    return _options()[1]


@st.cache_resource
def client() -> AttributionClient:
    url = server_url()
    assert url, "remote mode needs a server URL"
    return AttributionClient(url, api_key(), timeout=300)


@st.cache_data(ttl=10, show_spinner=False)
def spaces() -> list[dict]:
    """The service's spaces (asked again at most every 10 s)."""
    return client().spaces()


def statuses() -> list[SpaceStatus]:
    return [
        SpaceStatus(
            SpaceSpec(
                name=s["name"],
                label=s["label"],
                method=s["method"],
                make_ready=s.get("make_ready", ""),
                description=s.get("description", ""),
                training_set=s.get("training_set", ""),
                generator=s.get("generator", ""),
            ),
            tuple(s["missing"]),
        )
        for s in spaces()
    ]


def capabilities(space: str) -> Capabilities:
    """A space's method's capabilities as the service lists them (a service without ``interactive`` takes a method
    that needs a prompt for one that is not)."""
    found = next((s for s in spaces() if s["name"] == space), {})
    needs = bool(found.get("needs_prompt", False))
    return Capabilities(interactive=bool(found.get("interactive", not needs)), needs_prompt=needs, uses_prompt=needs)
