"""The contract every method and door shares: the ``Attributor`` interface and its one ``attribute()`` template
(``interface``; what callers hand it, checked: ``inputs``), the method-neutral result (``results``), calibrated
influence (``calibration``), what a space is (``spaces``), and one method's scores laid onto another training set
(``rows``)."""

from .calibration import Calibrator, load_calibrator, save_calibrator, soft_influence
from .interface import (
    Attributor,
    Capabilities,
    Query,
    QueryImage,
    Ranking,
    TrainingRecord,
    check_k,
    check_ks,
    query_names,
    ranking_from_scores,
)
from .results import CSV_FIELDS, SCORE_KINDS, Attribution, AttributionResult, results_to_csv, results_to_jsonl
from .spaces import SpaceSpec, SpaceStatus

__all__ = [
    "CSV_FIELDS",
    "SCORE_KINDS",
    "Attribution",
    "AttributionResult",
    "Attributor",
    "Calibrator",
    "Capabilities",
    "Query",
    "QueryImage",
    "Ranking",
    "SpaceSpec",
    "SpaceStatus",
    "TrainingRecord",
    "check_k",
    "check_ks",
    "load_calibrator",
    "query_names",
    "ranking_from_scores",
    "results_to_csv",
    "results_to_jsonl",
    "save_calibrator",
    "soft_influence",
]
