"""The README's quick start, run as a newcomer would copy it (issue: docs that cannot rot): every ``bash`` and
``python`` block of its "Quick start" section runs against the demo bundle and must succeed. Blocks marked
``text`` (installers, the explorer, downloads) are not run here; the browser tests cover the explorer."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


def quick_start_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every runnable block in the README's "Quick start" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(bash|python)\n(.*?)```", section, re.S)]


def test_the_quick_start_has_the_commands_a_newcomer_looks_for() -> None:
    code = "\n".join(c for _, c in quick_start_blocks())
    for command in ("attribute query", "attribute extract", "attribute serve", "curl", "attribute unlearn",
                    "attribute evaluate", "create_attributor"):  # fmt: skip
        assert command in code, command


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def test_every_quick_start_command_runs_as_written(demo_bundle, tmp_path: Path) -> None:
    # a fresh working folder holding the checkout's example images and ground truth, as a clone has them
    for name in ("assets", "dataset"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    port = str(free_port())  # the README's port 8000 may be taken on a shared machine
    background: list[subprocess.Popen] = []
    try:
        for language, code in quick_start_blocks():
            if language == "python":
                done = subprocess.run(
                    [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
                )
                assert done.returncode == 0, f"README python block failed:\n{code}\n{done.stderr[-2000:]}"
                assert "%" in done.stdout, done.stdout
                assert str(ROOT) not in done.stdout, done.stdout  # paths as the CLI prints them, not absolute
                continue
            for line in code.strip().splitlines():
                command = line.split(" # ")[0].strip().replace("8000", port)
                if command.endswith("&"):
                    args = shlex.split(command[:-1])
                    background.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL))  # fmt: skip
                    _wait_for(f"http://127.0.0.1:{port}/healthz", background[-1])
                    continue
                done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                      timeout=600)  # fmt: skip
                assert done.returncode == 0, f"README command failed: {line}\n{done.stderr[-2000:]}"
                assert "Traceback" not in done.stderr, done.stderr[-2000:]
                if command.startswith("curl"):
                    assert '"results"' in done.stdout and "chelsea" in done.stdout, done.stdout[:500]
    finally:
        for p in background:
            p.terminate()
            p.wait(timeout=30)
    assert (tmp_path / "coins.png").is_file() and (tmp_path / "feats" / "readme_mine").is_dir()


@pytest.mark.parametrize("target", sorted({m for m in re.findall(r"\]\(([^)#\s]+)", (ROOT / "README.md").read_text())
                                           if not m.startswith("http")}))  # fmt: skip
def test_every_link_in_the_readme_leads_somewhere(target: str) -> None:
    if (ROOT / target).exists():
        return
    # a reference page the site generates from the code at build time
    assert target.startswith("docs/reference/"), target
    assert f'"{target.removeprefix("docs/")}"' in (ROOT / "scripts" / "docs_reference.py").read_text()
