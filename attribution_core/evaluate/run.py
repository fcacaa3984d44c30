"""``attribute evaluate``: every space (any registered method) on every test case, through the registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..registry import method_class, require_ready
from ..spaces import SpaceSpec
from .metrics import SpaceResult
from .testcase import TestCase


def run_evaluation(
    test_cases: Sequence[TestCase], spaces: Sequence[SpaceSpec], root: Path, **options: Any
) -> list[tuple[TestCase, SpaceResult]]:
    """Evaluate every space on every test case with its method's ``evaluate``.

    Args:
        options: ``ks``, ``no_head``, ``device``, ``progress``, ``influence`` (methods ignore what they do not use).
            To evaluate every space on a subset, pass ``first_per_type(tc, n)`` test cases.

    Returns:
        (test case, result) pairs, space by space.
    """
    out: list[tuple[TestCase, SpaceResult]] = []
    for spec in spaces:
        require_ready(spec)
        results = method_class(spec.method).evaluate(spec, test_cases, root, **options)
        out.extend(zip(test_cases, results, strict=True))
    return out
