"""The prepared GPU check dry-runs every step on the CPU at tiny sizes, so the script a GPU machine runs is known to
work before device time is spent on it."""

from __future__ import annotations

import subprocess
import sys

from attribution_core.core.paths import project_root


def test_gpu_check_dry_run_runs_every_step_and_prints_one_table() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    steps = [row.split(" | ")[0].lstrip("| ") for row in rows]
    for expected in (
        "gpu-marked tests",
        "exact search",
        "batched exact queries/s, batch 64",
        "embedding batch",
        "whole feature query",
        "unlearning query",
        "counterfactual retrain",
        "demo model training",
    ):
        assert any(step.startswith(expected) for step in steps), (expected, steps)
    measured = [row for row in rows if not row.startswith("| gpu-marked tests")]
    assert not any("skipped" in row for row in measured), measured  # CI has every package the check needs
    assert "same top-10 as the CPU" in out.stdout
