"""Lazy package exports (PEP 562): a package lists which submodule defines each public name, and the submodule is
imported when the name is first used. Packages whose modules import diffusers use it, so that importing the
library, building the CLI or answering a feature-space query never pays for diffusers (seconds at every start).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``exports`` maps a public name to the submodule (relative name) that
    defines it; the value is cached in the package's namespace after the first access."""

    def load(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return load
