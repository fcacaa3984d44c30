"""The LDS report: ``table.md`` and ``table.csv`` (each method's mean ± s.e. over queries, then every pairwise
difference with its bootstrap interval), ``lds.png`` (LDS per method with intervals) and ``scatter.png``
(predicted against measured effect for a few queries), all under the output folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...core.fileio import atomic_path
from .config import LdsConfig
from .lds import LdsTable, predicted_effects
from .lds_run import LdsData


def markdown(table: LdsTable) -> str:
    """Two Markdown tables: LDS per method (mean ± s.e., queries), and paired differences with 95% intervals."""
    lines = ["| method | LDS (mean ± s.e.) | queries |", "|---|---:|---:|"]
    for s in sorted(table.summary, key=lambda s: -s["mean"]):
        lines.append(f"| {s['method']} | {s['mean']:.3f} ± {s['se']:.3f} | {s['queries']} |")
    lines += [
        "",
        "| difference | mean | 95% bootstrap interval | excludes 0 | queries where the first is higher |",
        "|---|---:|---|---|---:|",
    ]
    for d in table.differences:
        lines.append(
            f"| {d['a']} − {d['b']} | {d['mean']:+.3f} | [{d['low']:+.3f}, {d['high']:+.3f}] | "
            f"{'yes' if d['excludes_zero'] else 'no'} | {d['a_wins']} of {d['queries']} |"
        )
    return "\n".join(lines) + "\n"


def csv_text(table: LdsTable) -> str:
    """One row per method and one per pair: ``kind, method, other, mean, se, low, high, queries``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["kind", "method", "other", "mean", "se", "low", "high", "queries"])
    writer.writeheader()
    for s in table.summary:
        writer.writerow({"kind": "lds", **s, "other": "", "low": "", "high": ""})
    for d in table.differences:
        writer.writerow(
            {"kind": "difference", "method": d["a"], "other": d["b"], "mean": d["mean"], "se": "",
             "low": d["low"], "high": d["high"], "queries": d["queries"]}
        )  # fmt: skip
    return buf.getvalue()


def _save(chart, path: Path) -> None:
    with atomic_path(path, ".png") as tmp:
        chart.save(str(tmp), format="png", scale_factor=2)


def lds_plot(table: LdsTable, path: Path) -> None:
    """Each method's LDS per query (points) and mean with a ±1.96 s.e. bar (altair)."""
    import altair as alt
    import pandas as pd

    points = pd.DataFrame(
        [{"method": m, "query": q, "lds": v} for m, d in table.per_query.items() for q, v in d.items()]
    )
    means = pd.DataFrame(table.summary)
    means["low"], means["high"] = means["mean"] - 1.96 * means["se"], means["mean"] + 1.96 * means["se"]
    y = alt.Y("method:N", title=None, sort=list(means.sort_values("mean", ascending=False)["method"]))
    dots = alt.Chart(points).mark_circle(opacity=0.35, size=30).encode(alt.X("lds:Q", title="LDS (Spearman)"), y)
    bars = (
        alt.Chart(means).mark_errorbar(thickness=2).encode(alt.X("low:Q", title="LDS (Spearman)"), alt.X2("high:Q"), y)
    )
    mean = alt.Chart(means).mark_point(filled=True, size=90, color="black").encode(alt.X("mean:Q"), y)
    chart = (dots + bars + mean).properties(width=420, height=30 * len(means), title="LDS per method (95% interval)")
    _save(chart, path)


def scatter_plot(
    member: np.ndarray, losses: dict[str, np.ndarray], scores: dict[str, np.ndarray], queries: list[str], path: Path
) -> None:
    """Predicted effect (ranks) against measured loss (ranks) over the subset models, one panel per query, for one
    method's ``scores``."""
    import altair as alt
    import pandas as pd
    from scipy.stats import rankdata

    rows = []
    for q in queries:
        g, f = rankdata(predicted_effects(member, scores[q])), rankdata(losses[q])
        rows += [
            {"query": q, "predicted effect (rank)": a, "measured loss (rank)": b} for a, b in zip(g, f, strict=True)
        ]
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_circle(size=28)
        .encode(alt.X("predicted effect (rank):Q"), alt.Y("measured loss (rank):Q"))
        .properties(width=170, height=170)
        .facet(facet="query:N", columns=min(4, len(queries)))
    )
    _save(chart, path)


def write_lds_report(
    table: LdsTable, out: Path, member: np.ndarray, losses: dict, scores: dict, scatter_queries: list
) -> str:
    """Write the table (Markdown, CSV), the per-query LDS, the LDS plot and a scatter of ``scores`` (one method's,
    query -> [N]; none: no scatter); returns the Markdown."""
    text = markdown(table)
    for name, body in (("table.md", text), ("table.csv", csv_text(table))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(body)
    per_query = [{"method": m, "query": q, "lds": v} for m, d in table.per_query.items() for q, v in d.items()]
    with atomic_path(out / "per_query.csv") as tmp:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["method", "query", "lds"])
        writer.writeheader()
        writer.writerows(per_query)
        tmp.write_text(buf.getvalue())
    lds_plot(table, out / "lds.png")
    if scores:
        scatter_plot(member, losses, scores, scatter_queries, out / "scatter.png")
    return text


def report_lds(data: LdsData, config: LdsConfig, out: Path, scatter_method: str = "unlearning") -> str:
    """The reported queries' report in ``out`` and the validation queries' in ``out/validation``, for the configured
    tau; the same for the other tau in ``out/tau_<other>/`` (for comparison); returns the reported table (Markdown)."""
    text = ""
    taus = [config.tau, *(t for t in (data.every_tau or {}) if t != config.tau)]
    for tau in taus:
        base = out if tau == config.tau else out / f"tau_{tau}"
        scores = (data.every_tau or {}).get(tau, data.scores)
        for validation, folder in ((False, base), (True, base / "validation")):
            queries = data.validation if validation else data.reported
            table = data.table(validation, config.bootstrap, None if tau == config.tau else tau)
            body = write_lds_report(
                table, folder, data.member, data.losses, scores.get(scatter_method, {}), queries[:4]
            )
            text = text or body
    return text
