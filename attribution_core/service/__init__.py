"""The attribution service (FastAPI + uvicorn): one process holds the models and indexes, many clients ask it."""

from .app import create_app
from .config import ServiceConfig, is_loopback
from .serve import serve

__all__ = ["ServiceConfig", "create_app", "is_loopback", "serve"]
