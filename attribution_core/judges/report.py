"""The one report shape every judge writes: ``table.md`` and ``table.csv`` (one row per method and setting),
``config.json`` (the options it ran with, their hash, the commit of the code) and ``notes.md`` (verdicts and caveats,
one line each). Plots, when a judge draws them, sit beside these files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..attribute.judge import JudgeReport
from ..core.fileio import atomic_write_json, atomic_write_text
from ..core.paths import project_root

TABLE_MD, TABLE_CSV, CONFIG, NOTES = "table.md", "table.csv", "config.json", "notes.md"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the config as canonical JSON: two runs with the same options share it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_commit() -> str | None:
    """The git commit the code runs at (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def markdown_table(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """``rows`` (same keys) as a Markdown table; floats rounded to ``digits``."""
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])

    def cell(v: Any) -> str:
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(report: JudgeReport, out: Path) -> list[Path]:
    """Write ``report`` into ``out`` in the one shape; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if report.rows:
        writer = csv.DictWriter(buf, fieldnames=list(report.rows[0]))
        writer.writeheader()
        writer.writerows(report.rows)
    atomic_write_text(out / TABLE_CSV, buf.getvalue())
    atomic_write_text(out / TABLE_MD, report.markdown or markdown_table(report.rows))
    atomic_write_json(
        out / CONFIG,
        {"judge": report.judge, "options": report.config, "hash": config_hash(report.config), "commit": code_commit()},
    )
    files = [out / TABLE_MD, out / TABLE_CSV, out / CONFIG]
    if report.notes:
        atomic_write_text(out / NOTES, "".join(f"- {n}\n" for n in report.notes))
        files.append(out / NOTES)
    return files
