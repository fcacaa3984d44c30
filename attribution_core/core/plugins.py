"""Plug-ins: modules named in ``$ATTRIBUTION_PLUGINS`` (comma-separated) or installed with an
``attribution_core.core.plugins`` entry point, imported once before any registry (methods, spaces, index kinds,
backbones) is read. A plug-in module registers its parts with the library's ``register_*`` functions.
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib.metadata import entry_points

from .errors import AttributionError

log = logging.getLogger(__name__)

PLUGINS_ENV = "ATTRIBUTION_PLUGINS"
ENTRY_POINT_GROUP = "attribution_core.core.plugins"

_loaded: set[str] = set()


def load_plugins() -> None:
    """Import plug-in modules once: ``$ATTRIBUTION_PLUGINS`` and ``attribution_core.core.plugins`` entry points.

    Raises:
        AttributionError: a module named in ``$ATTRIBUTION_PLUGINS`` cannot be imported (a broken installed entry
            point is logged and skipped: it must not take the tool down).
    """
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        if name not in _loaded:
            _loaded.add(name)
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise AttributionError(f"plug-in {name!r} (from ${PLUGINS_ENV}) cannot be imported: {exc}") from None
    if "<entry points>" not in _loaded:
        _loaded.add("<entry points>")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken third-party plug-in must not take the tool down
                log.warning("plug-in %s failed to load: %s", ep.name, exc)
