"""The AbC benchmark (docs/method.md §2): test-case format, ranking kernels, metrics, orchestration."""

from ..metrics import DEFAULT_KS, SpaceResult, average_precision, format_table, recall_at, write_csv, write_ranks
from .features import corpus_rows_without, evaluate_feature_space, test_case_features
from .protocol import evaluate_features
from .ranking import exemplar_influence, exemplar_ranks
from .run import run_evaluation
from .testcase import CustomModel, TestCase, describe_test_case, read_test_case

__all__ = [
    "DEFAULT_KS",
    "CustomModel",
    "SpaceResult",
    "TestCase",
    "average_precision",
    "corpus_rows_without",
    "describe_test_case",
    "evaluate_feature_space",
    "evaluate_features",
    "exemplar_influence",
    "exemplar_ranks",
    "format_table",
    "read_test_case",
    "recall_at",
    "run_evaluation",
    "test_case_features",
    "write_csv",
    "write_ranks",
]
