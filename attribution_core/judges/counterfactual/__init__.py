"""The leave-K-out counterfactual check (docs/method.md §7): retrain without each method's top-K training images
for a generated query and measure how much worse the model gets at that query. Names load their modules on first
use (``attribution_core.core.lazy``): the CLI reads the configuration without importing diffusers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.lazy import lazy_exports

_EXPORTS = {
    "CounterfactualConfig": "config",
    "QueryEffect": "measures",
    "query_effect": "measures",
    "query_loss": "measures",
    "markdown_table": "report",
    "summarise": "report",
    "write_report": "report",
    "removal_key": "retrain",
    "retrain_without": "retrain",
    "run_counterfactual": "run",
}

__all__ = [
    "CounterfactualConfig",
    "QueryEffect",
    "markdown_table",
    "query_effect",
    "query_loss",
    "removal_key",
    "retrain_without",
    "run_counterfactual",
    "summarise",
    "write_report",
]

if TYPE_CHECKING:
    from .config import CounterfactualConfig
    from .measures import QueryEffect, query_effect, query_loss
    from .report import markdown_table, summarise, write_report
    from .retrain import removal_key, retrain_without
    from .run import run_counterfactual

__getattr__ = lazy_exports(__name__, _EXPORTS)
