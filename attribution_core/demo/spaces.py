"""The demo spaces, registered at import: untuned EfficientNet-Lite0 and pixels, the tuned EfficientNet, and
attribution by unlearning with the demo diffusion model."""

from __future__ import annotations

from ..registry import register_space_provider
from ..spaces import DEFAULT_CALIBRATOR, SpaceSpec
from .diffusion import unlearning_space
from .layout import (
    DEMO_BACKBONES,
    TUNED_BACKBONE,
    demo_corpus_store,
    demo_store,
    tuned_calibrator_path,
    tuned_heads_path,
)


def demo_spaces() -> list[SpaceSpec]:
    """The demo spaces: identity heads, the default calibrator, corpus ∪ exemplars."""
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
            description=f"Demo space: untuned {names[b]} features over the demo corpus and exemplars "
            "(built offline from scikit-image's photographs; default calibrator)",
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
            description="Demo space: EfficientNet-Lite0 with heads and calibrator trained on the demo's training "
            "split (`attribute train-head`, `attribute train-calibrator`)",
        )
    ]


register_space_provider(lambda: [*demo_spaces(), unlearning_space()])  # feature spaces first
