"""``attribute evaluate``: every space (any registered method) on every test case, through the registry and the one
protocol (``protocol.evaluate_space``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...attribute.spaces import SpaceSpec
from ...data.testcase import TestCase
from ...registry import create_attributor
from ..metrics import DEFAULT_KS, SpaceResult
from .protocol import evaluate_space


def run_evaluation(
    test_cases: Sequence[TestCase],
    spaces: Sequence[SpaceSpec],
    root: Path,
    ks: Sequence[int] = DEFAULT_KS,
    influence: bool = False,
    scores_top: int = 0,
    device: str = "auto",
    progress: bool = True,
    names: Sequence[str] | None = None,
) -> list[tuple[TestCase, SpaceResult]]:
    """Evaluate every space on every test case (to evaluate every space on a subset, pass ``first_per_type(tc, n)``
    test cases).

    Args:
        names: each space's row name (default: its own).

    Returns:
        (test case, result) pairs, space by space.
    """
    out: list[tuple[TestCase, SpaceResult]] = []
    for i, spec in enumerate(spaces):
        attributor = create_attributor(spec, device=device, progress=progress)
        name = names[i] if names is not None else spec.name
        for tc in test_cases:
            result = evaluate_space(attributor, tc, root, name, ks, influence, scores_top, progress)
            out.append((tc, result))
    return out
