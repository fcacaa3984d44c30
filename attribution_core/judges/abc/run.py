"""``attribute evaluate``: every space (any registered method) on every test case, through the registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...attribute.spaces import SpaceSpec
from ...registry import create_attributor
from ..metrics import SpaceResult
from .testcase import TestCase


def run_evaluation(
    test_cases: Sequence[TestCase], spaces: Sequence[SpaceSpec], root: Path, **options: Any
) -> list[tuple[TestCase, SpaceResult]]:
    """Evaluate every space on every test case with its loaded method's ``evaluate``.

    Args:
        options: ``ks``, ``no_head``, ``device``, ``progress``, ``influence`` (methods ignore what they do not use).
            To evaluate every space on a subset, pass ``first_per_type(tc, n)`` test cases.

    Returns:
        (test case, result) pairs, space by space.
    """
    out: list[tuple[TestCase, SpaceResult]] = []
    for spec in spaces:
        device, progress = options.get("device", "auto"), options.get("progress", True)
        attributor = create_attributor(spec, device=device, progress=progress)
        results = attributor.evaluate(test_cases, root, **options)
        out.extend(zip(test_cases, results, strict=True))
    return out
