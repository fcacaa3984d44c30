"""The counterfactual table, shaped like the AbU paper's Table 1: rows are methods, columns each measure at each
K, cells the mean ± standard error over queries (random removal: its draws averaged per query first); then, per
K, every pair of methods' paired ΔL difference with a bootstrap interval."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...core.fileio import atomic_path
from ..metrics import paired_differences

MEASURES = {"d_loss": "ΔL", "d_mse": "ΔG-MSE", "d_similarity": "ΔG-sim"}


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per (method, K, measure): mean, standard error and number of queries."""
    per_query: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        for m in MEASURES:
            per_query[(r["method"], r["k"], m, r["query"])].append(float(r[m]))
    grouped: dict[tuple, list[float]] = defaultdict(list)
    for (method, k, m, _), values in per_query.items():
        grouped[(method, k, m)].append(float(np.mean(values)))
    out = []
    for (method, k, m), values in grouped.items():
        v = np.asarray(values)
        se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out.append({"method": method, "k": k, "measure": m, "mean": float(v.mean()), "se": se, "queries": len(v)})
    return out


def _methods(summary: list[dict]) -> list[str]:
    return list(dict.fromkeys(s["method"] for s in summary))


def markdown_table(summary: list[dict]) -> str:
    """Rows: methods; columns: each measure at each K; cells ``mean ± se`` (ΔL and ΔG-MSE ×10³)."""
    ks = sorted({s["k"] for s in summary})
    cell = {(s["method"], s["k"], s["measure"]): s for s in summary}
    head = ["method", *[f"{label} K={k}" for m, label in MEASURES.items() for k in ks]]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for method in _methods(summary):
        cells = []
        for m in MEASURES:
            scale = 1.0 if m == "d_similarity" else 1e3
            for k in ks:
                s = cell.get((method, k, m))
                cells.append(f"{s['mean'] * scale:.2f} ± {s['se'] * scale:.2f}" if s else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(summary: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["method", "k", "measure", "mean", "se", "queries"])
    writer.writeheader()
    writer.writerows(summary)
    return buf.getvalue()


def loss_plot(summary: list[dict], path: Path) -> None:
    """ΔL against K per method, with ± standard-error bars (altair; PNG through vl-convert)."""
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame([s for s in summary if s["measure"] == "d_loss"])
    frame["low"], frame["high"] = frame["mean"] - frame["se"], frame["mean"] + frame["se"]
    x = alt.X("k:Q", title="K (training images removed)")
    lines = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(x, alt.Y("mean:Q", title="ΔL (query loss, retrained − base)"), alt.Color("method:N"))
    )
    bars = alt.Chart(frame).mark_errorbar().encode(x, alt.Y("low:Q", title=""), alt.Y2("high:Q"), alt.Color("method:N"))
    chart = (lines + bars).properties(width=420, height=280, title="Leave-K-out: loss of the query after retraining")
    with atomic_path(path, ".png") as tmp:
        chart.save(str(tmp), format="png", scale_factor=2)


def loss_differences(rows: list[dict], resamples: int = 10_000) -> dict[int, list[dict]]:
    """Per K, every pair of methods' paired ΔL difference over the queries both measured (random: its draws averaged
    per query first), with a 95% bootstrap interval (``paired.paired_differences``)."""
    values: dict[int, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        values[r["k"]][r["method"]][r["query"]].append(float(r["d_loss"]))
    out = {}
    for k, by_method in sorted(values.items()):
        per_query = {m: {q: float(np.mean(v)) for q, v in qs.items()} for m, qs in by_method.items()}
        queries = sorted(set.intersection(*(set(qs) for qs in per_query.values())))
        if len(queries) >= 2:
            out[k] = paired_differences(per_query, queries, resamples)
    return out


def differences_markdown(differences: dict[int, list[dict]]) -> str:
    """Per K: each pair's mean ΔL difference (×10³), its 95% interval, and on how many queries the first is higher."""
    lines = []
    for k, pairs in differences.items():
        lines += [
            "",
            f"| ΔL difference, K={k} (×10³) | mean | 95% bootstrap interval | excludes 0 "
            "| queries where the first is higher |",
            "|---|---:|---|---|---:|",
        ]
        for d in pairs:
            lines.append(
                f"| {d['a']} − {d['b']} | {d['mean'] * 1e3:+.2f} | [{d['low'] * 1e3:+.2f}, {d['high'] * 1e3:+.2f}] | "
                f"{'yes' if d['excludes_zero'] else 'no'} | {d['a_wins']} of {d['queries']} |"
            )
    return "\n".join(lines) + "\n" if lines else ""


def write_report(rows: list[dict], out: Path) -> str:
    """Write ``table.md`` (the table, then the paired ΔL differences per K), ``table.csv`` and ``delta_loss.png`` to
    ``out``; returns the Markdown."""
    summary = summarise(rows)
    table = markdown_table(summary) + differences_markdown(loss_differences(rows))
    for name, text in (("table.md", table), ("table.csv", csv_table(summary))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    loss_plot(summary, out / "delta_loss.png")
    return table
