"""The leave-K-out counterfactual check (docs/method.md §7): retrain without each method's top-K training images
for a generated query and measure how much worse the model gets at that query."""

from .config import CounterfactualConfig
from .measures import QueryEffect, query_effect, query_loss
from .report import markdown_table, summarise, write_report
from .retrain import removal_key, retrain_without
from .run import run_counterfactual

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
