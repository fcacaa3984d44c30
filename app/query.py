"""The query in the sidebar: an upload, an example, or an image the demo model generates from a typed prompt."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from attribution_core.core.errors import AttributionError, InputImageError
from attribution_core.core.images import QUERY_MAX_SIDE, load_rgb, release_memory
from attribution_core.core.paths import display_path, project_root
from attribution_core.demo.layout import DEMO_GENERATOR
from attribution_core.diffusion.generation import prompt_of

from . import resources
from .settings import Query

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp"]


def example_queries() -> list[Path]:
    """The example inputs in assets/, in the demo's order (clearest first)."""
    from attribution_core.demo import EXAMPLE_QUERIES

    order = ["_".join(q.split("/")[1:]) for q in EXAMPLE_QUERIES]
    folders = [project_root() / "assets", Path(__file__).resolve().parents[1] / "assets"]  # home, then checkout
    found = next((sorted(f.glob("*.jpg")) for f in folders if any(f.glob("*.jpg"))), [])
    return sorted(found, key=lambda p: order.index(p.name) if p.name in order else len(order))


def _from_bytes(data: bytes, name: str) -> Query:
    try:
        image = load_rgb(data, name, max_side=QUERY_MAX_SIDE)
    finally:
        release_memory()  # a large upload's decoding buffers go back to the system, not to this process's heap
    return Query(name, hashlib.sha256(data).hexdigest(), image, prompt_of(image))


def generate_form() -> None:
    """Type a prompt and a seed; the demo model generates the query in the page."""
    with st.expander("…or generate one with the demo model", expanded=True):
        prompt = st.text_input("Prompt", value="a photo of coins", key="gen_prompt")
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="gen_seed")
        left, right = st.columns(2)
        if left.button("Generate", type="primary"):
            try:
                st.session_state["generated"] = (prompt, int(seed), resources.generate_png(prompt, int(seed)))
            except AttributionError as exc:
                st.error(f"Could not generate: {exc}")
        if "generated" in st.session_state and right.button("Clear"):
            del st.session_state["generated"]
        own = resources.generator_spaces(DEMO_GENERATOR)
        if "generated" in st.session_state and own:
            st.caption(
                "The demo model was trained on the demo corpus only: spaces over that training set answer the same "
                "question as unlearning."
            )
            st.button(
                "Attribute over the model's training set",
                on_click=lambda: st.session_state.update(spaces=own),  # a callback may set the widget's state
                help=", ".join(own),
            )


def choose_query() -> Query | None:
    """The sidebar's query widgets; an upload comes first, then a generated image, then the example."""
    upload = st.file_uploader("Upload a generated image", type=UPLOAD_TYPES)
    generate_form()
    generated = st.session_state.get("generated")
    examples = example_queries()
    example = st.selectbox(
        "…or try an example query",
        options=examples,
        format_func=lambda p: p.stem,
        disabled=upload is not None or generated is not None,
    )
    if upload is not None:
        try:
            return _from_bytes(upload.getvalue(), upload.name)
        except InputImageError as exc:
            st.error(f"Could not use this upload: {exc}")
            return None
    if generated is not None:
        prompt, seed, data = generated
        return _from_bytes(data, f"generated: “{prompt}” (seed {seed})")
    if example is None:
        return None
    data = Path(example).read_bytes()
    return Query(display_path(example), hashlib.sha256(data).hexdigest(), load_rgb(Path(example)))
