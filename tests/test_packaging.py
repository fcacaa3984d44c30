"""Installing the project is quiet: no setuptools deprecation banner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attribution_core.core.paths import project_root


@pytest.mark.slow
def test_building_the_package_prints_no_deprecation_banner(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(project_root())],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "deprecat" not in text.lower(), text
    assert list(tmp_path.glob("attribution_core-*.whl"))
