"""The AbC benchmark (docs/method.md §2): the protocol once for every method (``protocol``), orchestration over
spaces and test cases (``run``), the registered judge (``judge``); the test-case format is ``data.testcase``."""

from ...attribute.metrics import exemplar_influence, exemplar_ranks
from ...data.testcase import CustomModel, TestCase, describe_test_case, first_per_type, read_test_case
from ..metrics import DEFAULT_KS, SpaceResult, average_precision, format_table, recall_at, write_csv, write_ranks
from .protocol import check_test_case_files, corpus_rows, evaluate_space, kept_scores
from .run import run_evaluation

__all__ = [
    "DEFAULT_KS",
    "CustomModel",
    "SpaceResult",
    "TestCase",
    "average_precision",
    "check_test_case_files",
    "corpus_rows",
    "describe_test_case",
    "evaluate_space",
    "exemplar_influence",
    "exemplar_ranks",
    "first_per_type",
    "format_table",
    "kept_scores",
    "read_test_case",
    "recall_at",
    "run_evaluation",
    "write_csv",
    "write_ranks",
]
