"""Plug-ins: modules named in ``$ATTRIBUTION_PLUGINS`` (comma-separated) or installed with an
``attribution_core.plugins`` entry point, imported once before any registry (methods, spaces, index kinds,
backbones) is read. A plug-in module registers its parts with the library's ``register_*`` functions.
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

PLUGINS_ENV = "ATTRIBUTION_PLUGINS"
ENTRY_POINT_GROUP = "attribution_core.plugins"

_loaded: set[str] = set()
#: Plug-ins that failed to load, by module name: the error in one line (shown by `attribute spaces` and in the
#: error for a name only a plug-in would have registered).
_failed: dict[str, str] = {}


def load_plugins() -> None:
    """Import plug-in modules once: ``$ATTRIBUTION_PLUGINS`` and ``attribution_core.plugins`` entry points.

    A plug-in that fails (missing, a syntax error, an exception while it registers) is logged in one line naming it
    and its error, and skipped: the rest of the project keeps working (:func:`failed_plugins` lists it).
    """
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        if name not in _loaded:
            _loaded.add(name)
            _load(name, lambda n=name: importlib.import_module(n), f"${PLUGINS_ENV}")
    if "<entry points>" not in _loaded:
        _loaded.add("<entry points>")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _load(ep.value, ep.load, f"entry point {ep.name!r}")


def _load(name: str, load, source: str) -> None:
    try:
        load()
    except Exception as exc:  # a broken plug-in must not take the tool down: named once, in one line
        where = f" ({exc.filename}, line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        first = (str(exc).strip().splitlines() or [""])[0]
        _failed[name] = f"{type(exc).__name__}: {first}{where}"
        log.warning("plug-in %s (from %s) failed to load and is skipped: %s", name, source, _failed[name])


def failed_plugins() -> dict[str, str]:
    """The plug-ins that failed to load, by module name, with their error in one line."""
    return dict(_failed)


def plugin_note() -> str:
    """A sentence for an unknown-name error when plug-ins failed (a name only they would have registered), else
    ``""``."""
    if not _failed:
        return ""
    return " (plug-ins that failed to load: " + "; ".join(f"{n}: {e}" for n, e in _failed.items()) + ")"
