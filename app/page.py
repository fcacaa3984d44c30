"""The explorer page: query in the sidebar, results per space (feature spaces and unlearning), comparison,
inspection, export."""

from __future__ import annotations

import logging

import streamlit as st

from attribution_core.attribute.interface import AttributionResult, results_to_csv, results_to_jsonl
from attribution_core.attribute.spaces import SpaceStatus, training_set_note
from attribution_core.core.errors import AttributionError
from attribution_core.core.paths import display_path
from attribution_core.core.progress import Progress
from attribution_core.registry import default_space

from . import resources
from .gallery import resize_short_side
from .query import choose_query
from .settings import K_OPTIONS, RES_OPTIONS, Query, Settings
from .views import comparison, gallery, inspect

log = logging.getLogger(__name__)


def sidebar(statuses: list[SpaceStatus]) -> tuple[Settings, Query | None]:
    ready = [s.spec for s in statuses if s.ready]
    labels = {s.name: s.label for s in ready}
    chosen = default_space(statuses)
    default = [chosen] if chosen in labels else []
    with st.sidebar:
        st.title("Attribution explorer")
        st.caption("Which training images influenced a generated image, and how much.")
        spaces = st.multiselect(
            "Spaces",
            options=list(labels),
            default=None if "spaces" in st.session_state else default,
            key="spaces",
            format_func=labels.get,
            help="Feature spaces and attribution by unlearning; pick two or more to compare them side by side.",
        )
        missing = [s for s in statuses if not s.ready]
        if missing:
            with st.expander(f"{len(missing)} more spaces need downloads"):
                for s in missing:
                    st.markdown(f"**{s.spec.label}** — missing {', '.join(s.missing)}")
                    st.code(s.spec.make_ready, language="bash")
        query = choose_query()
        st.header("Display")
        k = st.select_slider("Number retrieved", options=K_OPTIONS, value=100)
        columns = st.slider("Width (columns)", min_value=1, max_value=20, value=5)
        res = st.select_slider("Resolution (px)", options=RES_OPTIONS, value=256)
        pad = st.slider("Padding (px)", min_value=0, max_value=64, value=8)
    return Settings(spaces, k, columns, res, pad), query


def prompt_field(query: Query, spaces: list[str]) -> str | None:
    """The prompt for methods that need one (unlearning), pre-filled from the image's metadata."""
    if not any(resources.capabilities(s).needs_prompt for s in spaces):
        return query.prompt
    value = st.text_input(
        "Prompt the image was generated from (for unlearning)",
        value=query.prompt or "",
        key=f"prompt-{query.digest}",
        help="Filled in from the PNG's metadata when the image carries it (images made by the demo model do).",
    )
    return value.strip() or None


def run_space(name: str, label: str, query: Query, prompt: str | None, k: int) -> AttributionResult | None:
    """One space's result: from the cache, or computed now, with a progress bar and a Cancel button for slow
    methods."""
    slow = not resources.capabilities(name).interactive or not resources.prepared(name)
    if resources.capabilities(name).needs_prompt and not prompt:
        st.warning(f"{label}: type the prompt the image was generated from, above, to attribute it by unlearning.")
        return None
    cached = resources.cached_result(name, query.digest, k, prompt)
    if cached is not None or not slow:
        return cached or resources.attribute(name, query.digest, k, query.image, query.name, prompt)
    cancelled_key = f"cancelled-{name}-{query.digest}-{prompt}"
    if st.session_state.get(cancelled_key):
        st.info(f"{label}: cancelled.")
        if st.button(f"Run {label} again", key=f"again-{cancelled_key}"):
            del st.session_state[cancelled_key]
            st.rerun()
        return None
    bar = st.progress(0.0, text=f"{label}: starting…")
    cancel_slot = st.empty()
    if cancel_slot.button("Cancel", key=f"cancel-{cancelled_key}"):
        st.session_state[cancelled_key] = True
        st.rerun()

    def show(p: Progress) -> None:
        count = f" {p.done}/{p.total}" if p.total > 1 else ""
        bar.progress(p.fraction, text=f"{label}: {p.stage}{count}")

    result = resources.attribute(name, query.digest, k, query.image, query.name, prompt, on_progress=show)
    bar.empty()
    cancel_slot.empty()  # done: nothing left to cancel
    return result


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
        st.warning("Pick at least one space in the sidebar.")
        return
    labels = {s.spec.name: s.spec.label for s in statuses}

    head, summary = st.columns([1, 2])
    head.image(resize_short_side(query.image, settings.res), caption=query.name)
    prompt = prompt_field(query, settings.spaces)
    results: dict[str, AttributionResult] = {}
    for name in settings.spaces:
        try:
            result = run_space(name, labels.get(name, name), query, prompt, settings.k)
        except AttributionError as exc:
            st.error(f"{labels.get(name, name)}: {exc}")
            continue
        if result is not None:
            results[name] = result
    if not results:
        return
    note = training_set_note([s.spec for s in statuses if s.spec.name in results])
    if note:
        st.info(note[0].upper() + note[1:] + ".")
    with summary:
        st.caption(
            "Each training image below is drawn at a size that grows with its estimated influence: its share of "
            "the whole training set. Rows are headed by their total influence."
        )
        for name, r in results.items():
            top = r.results[0]
            t = r.timings_ms
            st.markdown(
                f"**{labels[name]}** — top match {display_path(top.path)} "
                f"({top.influence * 100:.1f}% influence); {r.mass_count:,} training images carry influence"
            )
            notes = [r.extras["note"]] if r.extras.get("note") else []  # e.g. a distilled query without a prompt
            if r.extras.get("scored"):
                notes.append(f"{r.extras['scored']:,} candidates scored")
            st.caption(
                " · ".join([r.describe(), *notes])
                + " · "
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
