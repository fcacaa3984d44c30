"""``attribute serve``: the attribution service (FastAPI + uvicorn) in front of the library."""

from __future__ import annotations

import argparse

from .common import add_config_args, config_from_args


def cmd_serve(args: argparse.Namespace) -> int:
    from ..service import ServiceConfig, serve

    serve(config_from_args(ServiceConfig, args))
    return 0


def add_commands(command) -> None:
    from ..service.config import ServiceConfig

    p = command(
        "serve",
        "serve attribution over HTTP (one process holds the models; OpenAPI at /docs)",
        cmd_serve,
    )
    add_config_args(p, ServiceConfig)
