"""Running the service with uvicorn (one process: the models are loaded once and shared by every request)."""

from __future__ import annotations

import logging

from .app import create_app
from .config import ServiceConfig

log = logging.getLogger(__name__)


def serve(config: ServiceConfig) -> None:
    """Serve until interrupted. Refuses a non-loopback bind without an API key."""
    import uvicorn

    config.check_bind()
    log.info("serving on http://%s:%d (OpenAPI at /docs)", config.host, config.port)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning", workers=1)
