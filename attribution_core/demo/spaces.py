"""The demo spaces, registered at import: over the demo diffusion model's own training set (the corpus: untuned
EfficientNet-Lite0 and pixels, the tuned EfficientNet, and attribution by unlearning with that model), and over
corpus + exemplars for the AbC benchmark (its test case's exemplars must be findable)."""

from __future__ import annotations

from ..registry import register_space_provider
from ..spaces import DEFAULT_CALIBRATOR, SpaceSpec
from .diffusion import unlearning_space
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


def demo_spaces() -> list[SpaceSpec]:
    """The AbC demo spaces: identity heads, the default calibrator, corpus ∪ exemplars."""
    names = {"efficientnet_lite0": "EfficientNet-Lite0", "pixel": "pixels"}
    return [
        SpaceSpec(
            name=f"demo_{b}",
            label=f"{names[b]} (demo)",
            backbone=b,
            store=demo_store(b),
            corpus_store=demo_corpus_store(b),
            mapper=None,
            calibrator=DEFAULT_CALIBRATOR,
            demo=True,
            make_ready="attribute demo",
            description=f"Demo space (AbC benchmark): untuned {names[b]} features over the demo corpus and "
            "exemplars (built offline from scikit-image's photographs; default calibrator)",
            training_set=ABC_SET,
        )
        for b in DEMO_BACKBONES
    ] + [
        SpaceSpec(
            name=f"demo_{TUNED_BACKBONE}_tuned",
            label="EfficientNet-Lite0 (demo, tuned)",
            backbone=TUNED_BACKBONE,
            store=demo_store(TUNED_BACKBONE),
            corpus_store=demo_corpus_store(TUNED_BACKBONE),
            mapper=tuned_heads_path(),
            calibrator=tuned_calibrator_path(),
            demo=True,
            make_ready="attribute demo",
            description="Demo space (AbC benchmark): EfficientNet-Lite0 with heads and calibrator trained on the "
            "demo's training split (`attribute train-head`, `attribute train-calibrator`)",
            training_set=ABC_SET,
        )
    ]


def model_spaces() -> list[SpaceSpec]:
    """Feature spaces over the demo diffusion model's own training set (the corpus, no exemplars): what the images
    it generates are attributed over, beside unlearning."""
    names = {"efficientnet_lite0": "EfficientNet-Lite0", "pixel": "pixels"}
    common = {"demo": True, "make_ready": "attribute demo", "training_set": CORPUS_SET, "generator": DEMO_GENERATOR}
    return [
        SpaceSpec(
            name=f"demo_model_{b}",
            label=f"{names[b]} (demo model's training set)",
            backbone=b,
            store=demo_corpus_store(b),
            calibrator=DEFAULT_CALIBRATOR,
            description=f"Untuned {names[b]} features over the demo diffusion model's training set (the corpus)",
            **common,
        )
        for b in DEMO_BACKBONES
    ] + [
        SpaceSpec(
            name=f"demo_model_{TUNED_BACKBONE}_tuned",
            label="EfficientNet-Lite0 (demo model's training set, tuned)",
            backbone=TUNED_BACKBONE,
            store=demo_corpus_store(TUNED_BACKBONE),
            mapper=tuned_heads_path(),
            calibrator=tuned_calibrator_path(),
            description="The tuned EfficientNet-Lite0 space over the demo diffusion model's training set (the corpus)",
            **common,
        )
    ]


register_space_provider(lambda: [*demo_spaces(), *model_spaces(), unlearning_space()])  # feature spaces first
