"""The demo spaces (listed by the registry through ``all_demo_spaces``): over the demo diffusion model's own training
set (the corpus: untuned EfficientNet-Lite0 and pixels, the tuned EfficientNet, and attribution by unlearning with
that model), and over corpus + exemplars for the AbC benchmark (its test case's exemplars must be findable)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..attribute.spaces import DEFAULT_CALIBRATOR, SpaceSpec
from .diffusion import demo_model_dir, unlearning_space
from .distilled import distilled_space
from .layout import (
    ABC_SET,
    CORPUS_SET,
    DEMO_BACKBONES,
    DEMO_GENERATOR,
    TUNED_BACKBONE,
    demo_corpus_store,
    demo_store,
    tuned_calibrator_path,
    tuned_heads_path,
)

NAMES = {"efficientnet_lite0": "EfficientNet-Lite0", "pixel": "pixels"}


def _spaces(
    prefix: str, over: str, store: Callable[[str], Path], corpus: Callable[[str], Path] | None, **common: Any
) -> list[SpaceSpec]:
    """The untuned spaces of every demo backbone and the tuned EfficientNet-Lite0, over ``store(backbone)``."""
    untuned = [
        SpaceSpec(
            name=f"{prefix}{b}",
            label=f"{NAMES[b]} ({over})",
            backbone=b,
            store=store(b),
            corpus_store=corpus(b) if corpus else None,
            calibrator=DEFAULT_CALIBRATOR,
            description=f"Untuned {NAMES[b]} features over {common['description']} (default calibrator)",
            **{k: v for k, v in common.items() if k != "description"},
        )
        for b in DEMO_BACKBONES
    ]
    tuned = SpaceSpec(
        name=f"{prefix}{TUNED_BACKBONE}_tuned",
        label=f"{NAMES[TUNED_BACKBONE]} ({over}, tuned)",
        backbone=TUNED_BACKBONE,
        store=store(TUNED_BACKBONE),
        corpus_store=corpus(TUNED_BACKBONE) if corpus else None,
        mapper=tuned_heads_path(),
        calibrator=tuned_calibrator_path(),
        description=f"EfficientNet-Lite0 with heads and calibrator trained on the demo's training split, over "
        f"{common['description']}",
        **{k: v for k, v in common.items() if k != "description"},
    )
    return [*untuned, tuned]


def demo_spaces() -> list[SpaceSpec]:
    """The AbC demo spaces: corpus ∪ exemplars (evaluation appends each test case's exemplars to the corpus)."""
    return _spaces(
        "demo_",
        "demo",
        demo_store,
        demo_corpus_store,
        demo=True,
        make_ready="attribute demo",
        training_set=ABC_SET,
        description="the demo corpus and exemplars, for the AbC benchmark (built offline from scikit-image's "
        "photographs)",
    )


def model_spaces() -> list[SpaceSpec]:
    """Feature spaces over the demo diffusion model's own training set (the corpus, no exemplars): what the images
    it generates are attributed over, beside unlearning."""
    return _spaces(
        "demo_model_",
        "demo model's training set",
        demo_corpus_store,
        None,
        demo=True,
        make_ready="attribute demo",
        training_set=CORPUS_SET,
        generator=DEMO_GENERATOR,
        description="the demo diffusion model's training set (the corpus)",
    )


def diffusion_spaces() -> list[SpaceSpec]:
    """The demo model's own methods: unlearning, and the distilled space when its student ships."""
    distilled = distilled_space(demo_model_dir())
    return [unlearning_space(), *([distilled] if distilled else [])]


def all_demo_spaces() -> list[SpaceSpec]:
    """Every demo space, feature spaces first (the registry's provider, wired in ``builtin``)."""
    return [*demo_spaces(), *model_spaces(), *diffusion_spaces()]
