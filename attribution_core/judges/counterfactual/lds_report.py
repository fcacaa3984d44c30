"""The LDS report (docs/counterfactual.md): ``table.md`` (every kind of table per track, the pre-registered comparisons
with adjusted intervals, what the run was validated with), ``table.csv``, ``per_query.csv``, ``lds.png`` (each
method's LDS per query with its interval, raw rule) and ``scatter.png`` (predicted against measured effect for a few
queries); the validation track writes the same under ``validation/`` and freezes its choices in ``frozen.json``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...core.fileio import atomic_path
from ..report import code_commit
from .config import LdsConfig
from .lds import predicted_effects
from .lds_frozen import freeze, load_frozen
from .lds_run import LdsData
from .lds_tables import DATAMODEL, RULES, TARGETS, TrackTable, choose, tables


def markdown(results: list[TrackTable], notes: list[str]) -> str:
    """Per kind and track: every method's mean LDS with its 95% interval and its distance to caption-only and to the
    datamodel, the noise ceiling; then the pre-registered comparisons (Bonferroni-adjusted intervals, Holm p over
    the tracks); then the notes."""
    lines: list[str] = []
    for t in results:
        ceiling = "" if np.isnan(t.noise_ceiling) else f"; noise ceiling of the training seeds {t.noise_ceiling:.3f}"
        lines += [
            f"### {RULES[t.rule]} against the {TARGETS[t.target]} — {t.track} track ({t.queries} queries, "
            f"{t.clusters} clusters{ceiling})",
            "",
            f"| method | LDS | 95% interval (clusters × models) | − caption-only | − {DATAMODEL} |",
            "|---|---:|---|---:|---:|",
        ]
        for r in t.rows:
            cap, ceil = r.get("minus_caption"), r.get("minus_datamodel")
            lines.append(
                f"| {r['method']} | {r['mean']:.3f} | [{r['low']:+.3f}, {r['high']:+.3f}] | "
                f"{'' if cap is None else f'{cap:+.3f}'} | {'' if ceil is None else f'{ceil:+.3f}'} |"
            )
        if t.comparisons:
            lines += ["", "| pre-registered comparison | difference | adjusted interval | Holm p | verdict |",
                      "|---|---:|---|---:|---|"]  # fmt: skip
            for c in t.comparisons:
                lines.append(
                    f"| {c['a']} − {c['b']} | {c['mean']:+.3f} | [{c['low']:+.3f}, {c['high']:+.3f}] | "
                    f"{c['p_holm']:.3f} | {c['verdict']} |"
                )
        lines.append("")
    return "\n".join(lines + [f"- {n}" for n in notes]) + "\n"


def csv_text(results: list[TrackTable]) -> str:
    """One row per (rule, target, track, method) and per comparison."""
    buf = io.StringIO()
    fields = ["kind", "rule", "target", "track", "method", "other", "mean", "low", "high", "p_holm", "verdict"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for t in results:
        for r in t.rows:
            writer.writerow({"kind": "lds", "rule": t.rule, "target": t.target, "track": t.track, **r})
        for c in t.comparisons:
            stats = {k: c[k] for k in ("mean", "low", "high", "p_holm", "verdict")}
            writer.writerow(
                {
                    "kind": "difference",
                    "rule": t.rule,
                    "target": t.target,
                    "track": t.track,
                    "method": c["a"],
                    "other": c["b"],
                    **stats,
                }
            )
    return buf.getvalue()


def per_query_text(results: list[TrackTable], data: LdsData) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rule", "target", "track", "method", "query", "cluster", "lds"])
    for t in results:
        for m, values in t.per_query.items():
            for q, v in values.items():
                writer.writerow([t.rule, t.target, t.track, m, q, data.clusters[q], f"{v:.6f}"])
    return buf.getvalue()


def _save(chart, path: Path) -> None:
    with atomic_path(path, ".png") as tmp:
        chart.save(str(tmp), format="png", scale_factor=2)


def lds_plot(results: list[TrackTable], path: Path) -> None:
    """The primary table's LDS per query (points) and mean with its interval, per track (altair)."""
    import altair as alt
    import pandas as pd

    raw = [t for t in results if t.rule == "raw" and t.target == "loss"]
    points = pd.DataFrame(
        [{"track": t.track, "method": m, "lds": v} for t in raw for m, d in t.per_query.items() for v in d.values()]
    )
    means = pd.DataFrame([{"track": t.track, **r} for t in raw for r in t.rows])
    order = list(means.groupby("method")["mean"].mean().sort_values(ascending=False).index)
    y = alt.Y("method:N", title=None, sort=order)
    title = "LDS (Spearman), raw scores"
    x = alt.X("lds:Q", title=title)
    dots = alt.Chart(points).mark_circle(opacity=0.3, size=25).encode(x, y)
    bars = alt.Chart(means).mark_errorbar(thickness=2).encode(alt.X("low:Q", title=title), alt.X2("high:Q"), y)
    mean = alt.Chart(means).mark_point(filled=True, size=80, color="black").encode(alt.X("mean:Q"), y)
    layers = []
    for track in sorted({t.track for t in raw}):
        sel = alt.datum.track == track
        layers.append(
            alt.layer(dots.transform_filter(sel), bars.transform_filter(sel), mean.transform_filter(sel)).properties(
                width=380, height=26 * len(order), title=f"{track} track (95% interval: clusters × models)"
            )
        )
    _save(alt.hconcat(*layers), path)


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


def write_tables(results: list[TrackTable], data: LdsData, out: Path, notes: list[str], scatter: str) -> str:
    """Write ``table.md``, ``table.csv``, ``per_query.csv``, ``lds.png`` and ``scatter.png`` (``scatter``: the
    method whose raw scores are plotted, when it ran); returns the Markdown."""
    text = markdown(results, notes)
    for name, body in (
        ("table.md", text),
        ("table.csv", csv_text(results)),
        ("per_query.csv", per_query_text(results, data)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(body)
    lds_plot(results, out / "lds.png")
    queries = (data.reported or data.validation)[:4]
    if scatter in data.scores:
        scatter_plot(data.member, data.losses, data.scores[scatter], queries, out / "scatter.png")
    return text


def report_lds(data: LdsData, config: LdsConfig, out: Path, scatter_method: str = "unlearning") -> str:
    """The validation track: choose every setting on its queries, freeze them (``frozen.json``) and write its tables
    under ``out/validation``. The reported track: the tables under the frozen settings (or, with
    ``--no-validation``, unchosen ones: raw scores and τ = 1e9, the report says so) in ``out``. Returns the
    Markdown."""
    seeds = len(config.training_seeds) if config.training_seeds else 1
    models = f"{len(data.member)} subset models × {seeds} training seed(s), losses averaged over the seeds"
    if config.track == "validation":
        choices = choose(data)
        record = freeze(config, choices, out)
        notes = [
            f"validation track: {models}; settings chosen here and frozen in frozen.json (config "
            f"{record['config_hash']}, commit {record['commit']})",
            "temperatures: "
            + ", ".join(f"{m} {t:g}" for m, t in sorted(choices.temperatures.items()))
            + f"; datamodel ridge {choices.ridge:g}",
            "in-sample: these tables are scored on the queries the settings were chosen on",
        ]
        folder = out / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        return write_tables(
            tables(data, data.validation, choices, config.bootstrap), data, folder, notes, scatter_method
        )
    choices, record = load_frozen(config, out)
    notes = [
        f"reported track: {models}; config {record['config_hash']}, run at commit {code_commit()}",
        f"settings frozen on the validation track at commit {record['frozen_commit']}"
        if record["validated"]
        else "NOT VALIDATED (--no-validation): no setting was chosen on validation queries",
        f"{DATAMODEL}: a ridge regression of the loss on subset membership fitted on a random half of the subset "
        "models, predicting the other half (16 splits averaged); not a bound (the noise ceiling in each heading is)",
        "a comparison whose adjusted interval includes 0 is a tie",
    ]
    return write_tables(tables(data, data.reported, choices, config.bootstrap), data, out, notes, scatter_method)
