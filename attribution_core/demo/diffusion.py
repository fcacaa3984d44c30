"""The demo's diffusion model and its unlearning space: a model trained on the demo corpus and its captions.

The trained weights ship with the package (``attribution_core/demo/model/``: safetensors, with the configuration,
seed and loss log that produced them), so attribution by unlearning works offline out of the box;
``attribute diffusion train`` reproduces them from ``dataset/demo/captions.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from ..diffusion.data import TrainingSet, load_training_set
from ..spaces import SpaceSpec
from .layout import CAPTIONS, demo_dir

#: The prefix of the training images (the corpus) in the captions file.
CORPUS_PREFIX = "corpus/"


def demo_model_dir() -> Path:
    """The shipped demo model's folder."""
    return Path(__file__).resolve().parent / "model"


def demo_training_set(resolution: int) -> TrainingSet:
    """The demo corpus with its captions, at the model's resolution."""
    return load_training_set(demo_dir() / CAPTIONS, demo_dir(), resolution, CORPUS_PREFIX)


def unlearning_space(model: Path | None = None) -> SpaceSpec:
    """The unlearning space over the demo corpus (``model``: another model trained on it; default the demo's)."""
    model = model or demo_model_dir()
    return SpaceSpec(
        name="demo_unlearning",
        label="Unlearning (demo diffusion model)",
        method="unlearning",
        demo=True,
        make_ready="attribute demo",
        description="Attribution by unlearning the query from the demo text-to-image model, trained on the demo "
        "corpus (needs the query's prompt)",
        options={
            "model": str(model),
            "captions": str(demo_dir() / CAPTIONS),
            "images": str(demo_dir()),
            "prefix": CORPUS_PREFIX,
        },
    )
