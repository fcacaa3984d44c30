"""The attribution service (FastAPI + uvicorn): one process holds the models and indexes, many clients ask it
(``client``: the Python client, which needs no FastAPI). Names load their modules on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

_EXPORTS = {
    "AttributionClient": "client",
    "ServiceConfig": "config",
    "create_app": "app",
    "is_loopback": "config",
    "serve": "serve",
}
__all__ = ["AttributionClient", "ServiceConfig", "create_app", "is_loopback", "serve"]

if TYPE_CHECKING:
    from .app import create_app
    from .client import AttributionClient
    from .config import ServiceConfig, is_loopback
    from .serve import serve

__getattr__ = lazy_exports(__name__, _EXPORTS)
