"""The explorer page: query in the sidebar, results per feature space, comparison, inspection, export."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from attribution_core.attribute import AttributionResult, results_to_csv, results_to_jsonl
from attribution_core.errors import AttributionError, InputImageError
from attribution_core.images import QUERY_MAX_SIDE, load_rgb, release_memory
from attribution_core.paths import display_path, project_root
from attribution_core.spaces import SpaceStatus

from . import resources
from .gallery import layout_rows, mark, pad_right, resize_short_side, thumbnail_side

log = logging.getLogger(__name__)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp"]
K_OPTIONS = sorted({int(x) for x in 10 ** np.linspace(1, 3, 101)})
RES_OPTIONS = list(range(64, 1024 + 32, 32))


@dataclass(frozen=True)
class Query:
    name: str
    digest: str
    image: Image.Image


@dataclass(frozen=True)
class Settings:
    spaces: list[str]
    k: int
    columns: int
    res: int
    pad: int


def example_queries() -> list[Path]:
    """The example inputs in assets/, in the demo's order (clearest first)."""
    from attribution_core.demo import EXAMPLE_QUERIES

    order = ["_".join(q.split("/")[1:]) for q in EXAMPLE_QUERIES]
    folders = [project_root() / "assets", Path(__file__).resolve().parents[1] / "assets"]  # home, then checkout
    found = next((sorted(f.glob("*.jpg")) for f in folders if any(f.glob("*.jpg"))), [])
    return sorted(found, key=lambda p: order.index(p.name) if p.name in order else len(order))


def sidebar(statuses: list[SpaceStatus]) -> tuple[Settings, Query | None]:
    ready = [s.spec for s in statuses if s.ready]
    labels = {s.name: s.label for s in ready}
    default = [n for n in ("clip",) if n in labels] or [n for n in labels if n.startswith("demo_")][:1]
    with st.sidebar:
        st.title("Attribution explorer")
        st.caption("Which training images influenced a generated image, and how much.")
        spaces = st.multiselect(
            "Spaces",
            options=list(labels),
            default=default,
            format_func=labels.get,
            help="Pick two or more to compare them side by side.",
        )
        missing = [s for s in statuses if not s.ready]
        if missing:
            with st.expander(f"{len(missing)} more spaces need downloads"):
                for s in missing:
                    st.markdown(f"**{s.spec.label}** — missing {', '.join(s.missing)}")
                    st.code(s.spec.make_ready, language="bash")
        upload = st.file_uploader("Upload a generated image", type=UPLOAD_TYPES)
        examples = example_queries()
        example = st.selectbox(
            "…or try an example query", options=examples, format_func=lambda p: p.stem, disabled=upload is not None
        )
        st.header("Display")
        k = st.select_slider("Number retrieved", options=K_OPTIONS, value=100)
        columns = st.slider("Width (columns)", min_value=1, max_value=20, value=5)
        res = st.select_slider("Resolution (px)", options=RES_OPTIONS, value=256)
        pad = st.slider("Padding (px)", min_value=0, max_value=64, value=8)
    settings = Settings(spaces, k, columns, res, pad)
    if upload is not None:
        data = upload.getvalue()
        try:
            image = load_rgb(data, upload.name, max_side=QUERY_MAX_SIDE)
        except InputImageError as exc:
            st.error(f"Could not use this upload: {exc}")
            return settings, None
        finally:
            release_memory()  # a large upload's decoding buffers go back to the system, not to this process's heap
        return settings, Query(upload.name, hashlib.sha256(data).hexdigest(), image)
    if example is None:
        return settings, None
    data = Path(example).read_bytes()
    return settings, Query(display_path(example), hashlib.sha256(data).hexdigest(), load_rgb(Path(example)))


def gallery(result: AttributionResult, settings: Settings, shared: set[str]) -> None:
    """Rows of retrieved training images, each sized by its influence, each row headed by its influence."""
    thumbs = resources.thumbnails()
    images = []
    for a in result.results:
        side = thumbnail_side(a.influence, settings.res, max_side=settings.res)
        src = thumbs.get(a.path)
        img = resize_short_side(src, side) if src is not None else Image.new("RGB", (side, side), (200, 200, 200))
        images.append(mark(img) if a.path in shared else img)
    rows = layout_rows(
        [im.width for im in images], [a.influence for a in result.results], settings.columns, settings.res, settings.pad
    )
    for row in rows:
        st.markdown(row.heading)
        st.image(
            [pad_right(images[i], settings.pad) for i in row.items],
            alt=[f"rank {result.results[i].rank}" for i in row.items],
        )
    st.markdown(f"Remaining influence: **{result.remaining_influence * 100:.2f}%**")


def comparison(results: dict[str, AttributionResult], labels: dict[str, str]) -> set[str]:
    """Cumulative influence against rank for every space on one chart, and the overlap of their top-K."""
    frames = [
        pd.DataFrame(
            {
                "space": labels[name],
                "rank": np.arange(1, len(r.results) + 1),
                "cumulative influence": np.cumsum([a.influence for a in r.results]),
            }
        )
        for name, r in results.items()
    ]
    chart = (
        alt.Chart(pd.concat(frames))
        .mark_line()
        .encode(
            x=alt.X("rank:Q", scale=alt.Scale(type="log"), title="rank"),
            y=alt.Y("cumulative influence:Q", axis=alt.Axis(format="%"), title="cumulative influence"),
            color=alt.Color("space:N", title="feature space"),
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")
    sets = [{a.path for a in r.results} for r in results.values()]
    shared = set.intersection(*sets)
    k = max(len(s) for s in sets)
    st.markdown(
        f"**Overlap of the top {k}: {len(shared)} images retrieved by every selected space** (framed in red below)."
    )
    return shared


def inspect(results: dict[str, AttributionResult], labels: dict[str, str]) -> None:
    """One result in detail, with its rank in every other selected space."""
    options = [(name, i) for name, r in results.items() for i in range(len(r.results))]

    def describe(opt: tuple[str, int]) -> str:
        a = results[opt[0]].results[opt[1]]
        return f"{labels[opt[0]]} · #{a.rank} · {display_path(a.path)}"

    choice = st.selectbox("Result", options=options, format_func=describe)
    if choice is None:
        return
    a = results[choice[0]].results[choice[1]]
    left, right = st.columns([1, 2])
    img = resources.thumbnails().get(a.path)
    if img is not None:
        left.image(img, width="stretch")
    rows = [
        ("path", display_path(a.path)),
        ("space", labels[choice[0]]),
        ("rank", str(a.rank)),
        (f"score ({results[choice[0]].score_kind})", f"{a.score:.4f}"),
        ("influence", f"{a.influence * 100:.3f}%"),
    ]
    for name, r in results.items():
        if name != choice[0]:
            other = next((b.rank for b in r.results if b.path == a.path), None)
            rows.append((f"rank in {labels[name]}", str(other) if other else f"not in top {len(r.results)}"))
    right.table(pd.DataFrame(rows, columns=["", "value"]).set_index(""))


def main() -> None:
    st.set_page_config(page_title="Data attribution explorer", layout="wide")
    statuses = resources.space_statuses()
    if not resources.demo_ready(statuses):
        resources.build_demo_with_progress()
        statuses = resources.space_statuses()
    settings, query = sidebar(statuses)
    if query is None:
        st.info("Upload a generated image in the sidebar, or pick an example query.")
        return
    if not settings.spaces:
        st.warning("Pick at least one feature space in the sidebar.")
        return
    labels = {s.spec.name: s.spec.label for s in statuses}

    head, summary = st.columns([1, 2])
    head.image(resize_short_side(query.image, settings.res), caption=query.name)
    results: dict[str, AttributionResult] = {}
    for name in settings.spaces:
        try:
            results[name] = resources.attribute(name, query.digest, settings.k, query.image, query.name)
        except AttributionError as exc:
            st.error(f"{labels.get(name, name)}: {exc}")
    if not results:
        return
    with summary:
        st.caption(
            "Each training image below is drawn at a size that grows with its estimated influence: its calibrated "
            "share of the whole training set. Rows are headed by their total influence."
        )
        for name, r in results.items():
            top = r.results[0]
            t = r.timings_ms
            st.markdown(
                f"**{labels[name]}** — top match {display_path(top.path)} "
                f"({top.influence * 100:.1f}% influence); {r.mass_count:,} training images carry influence"
            )
            st.caption(
                f"{r.describe()} · "
                + " · ".join(f"{stage} {ms:.0f} ms" if ms >= 10 else f"{stage} {ms:.1f} ms" for stage, ms in t.items())
            )
        all_results = list(results.values())
        c1, c2 = st.columns(2)
        c1.download_button("Download CSV", results_to_csv(all_results), "attribution.csv", "text/csv")
        c2.download_button("Download JSON", results_to_jsonl(all_results), "attribution.jsonl", "application/json")

    shared: set[str] = set()
    if len(results) > 1:
        st.subheader("Comparison")
        shared = comparison(results, labels)
    cols = st.columns(len(results)) if len(results) > 1 else [st.container()]
    for col, (name, r) in zip(cols, results.items(), strict=True):
        with col:
            st.subheader(labels[name])
            gallery(r, settings, shared)
    with st.expander("Inspect a result"):
        inspect(results, labels)


def run() -> None:
    """Entry point: any unexpected failure is logged on the server and shown as one line, never a traceback."""
    try:
        main()
    except Exception as exc:  # a bug, not a user mistake: keep serving, tell the user, log the traceback
        if type(exc).__name__ in ("StopException", "RerunException"):
            raise
        log.exception("explorer page failed")
        st.error(f"Something went wrong on our side ({type(exc).__name__}); the server log has the details.")
