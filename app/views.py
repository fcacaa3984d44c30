"""The result views: galleries sized by influence, the comparison of spaces, and the inspect panel."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from attribution_core.attribute.interface import AttributionResult
from attribution_core.core.paths import display_path

from . import resources
from .gallery import layout_rows, mark, pad_right, resize_short_side, thumbnail_side
from .settings import Settings


def gallery(result: AttributionResult, settings: Settings, shared: set[str]) -> None:
    """Rows of retrieved training images, each sized by its influence, each row headed by its influence."""
    thumbs = resources.thumbnails()
    images = []
    for a in result.results:
        side = thumbnail_side(a.influence, settings.res, max_side=settings.res)
        src = thumbs.get(result.space, a)
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
            color=alt.Color("space:N", title="space"),
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
    img = resources.thumbnails().get(results[choice[0]].space, a)
    if img is not None:
        left.image(img, width="stretch")
    rows = [
        ("path", display_path(a.path)),
        ("space", labels[choice[0]]),
        ("rank", str(a.rank)),
        (f"score ({results[choice[0]].score_kind})", f"{a.score:.4f}"),
        ("influence", f"{a.influence * 100:.3f}%"),
    ]
    rows += [(label, text) for label, text in (("caption", a.caption), ("source URL", a.url)) if text]
    for name, r in results.items():
        if name != choice[0]:
            other = next((b.rank for b in r.results if b.path == a.path), None)
            rows.append((f"rank in {labels[name]}", str(other) if other else f"not in top {len(r.results)}"))
    right.table(pd.DataFrame(rows, columns=["", "value"]).set_index(""))
