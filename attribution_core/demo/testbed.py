"""The counterfactual checks' default testbed (docs/method.md §7, §8): the demo corpus's photographs, each seen in
its views; a query is "a photo of <photo>"; unlearning answers on the base model the judge trains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..attribute.interface import Attributor
from ..attribute.spaces import SpaceSpec
from ..core.errors import AttributionError
from ..diffusion.data import TrainingSet
from ..diffusion.model import TextToImageModel
from ..judges.counterfactual.testbed import QuerySpec, Testbed
from .diffusion import demo_training_set
from .layout import VIEWS_PER_PHOTO
from .synthesis import PHOTO_NOUNS


class PhotoTestbed(Testbed):
    """The demo corpus: 17 photographs × 8 views, captioned "a photo of <noun>"."""

    name = "demo photos"
    own_methods = ("unlearning",)

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(PHOTO_NOUNS)

    def training_set(self, subjects: tuple[str, ...], views: int, resolution: int) -> TrainingSet:
        unknown = sorted(set(subjects) - set(PHOTO_NOUNS))
        if unknown or not 1 <= views <= VIEWS_PER_PHOTO:
            what = f"unknown photos {', '.join(unknown)}" if unknown else f"--views-per-photo {views}"
            raise AttributionError(
                f"{what}: the demo corpus has {', '.join(PHOTO_NOUNS)}, with 1 to {VIEWS_PER_PHOTO} views each"
            )
        data = demo_training_set(resolution)
        keep = np.array(
            [Path(p).parent.name in subjects and int(Path(p).stem.split("_")[-1]) < views for p in data.paths]
        )
        return data.subset(keep)

    def prompt(self, subject: str) -> str:
        return f"a photo of {PHOTO_NOUNS[subject]}"

    def default_queries(self, validation: bool) -> tuple[str, ...]:
        """Reported: the first 12 photos in corpus order, seed 1; validation (any setting is chosen on these, never
        reported): four other photos, seed 101."""
        photos = tuple(PHOTO_NOUNS)
        return tuple(f"{p}:101" for p in photos[12:16]) if validation else tuple(f"{p}:1" for p in photos[:12])

    def lds_queries(self, config, validation: bool) -> list[QuerySpec]:
        """The LDS's queries on new prompts, not new seeds: reported, the first 12 photos (``--seeds``); validation,
        the other 5 (``--validation-seeds``); one generation per photo and seed, clustered by photo."""
        photos = [p for p in self.subjects if p in config.photos]
        chosen, seeds = (photos[12:], config.validation_seeds) if validation else (photos[:12], config.seeds)
        if not chosen:
            chosen = photos  # a trial configuration of fewer photos: the seeds alone tell the tracks apart
        return [QuerySpec(f"{p}-s{s}", self.prompt(p), f"{p}-s{s}" if len(photos) <= 12 else p, "gen", s)
                for s in seeds for p in chosen]  # fmt: skip

    def _unlearning_config(self, device: str):
        from ..unlearning.config import UnlearningConfig

        return UnlearningConfig(device=device)

    def attributor(self, method: str, base: TextToImageModel, data: TrainingSet, device: str) -> Attributor | None:
        """Unlearning runs on the base model itself, over its training set."""
        if method != "unlearning":
            return None
        from ..unlearning.attributor import UnlearningAttributor

        spec = SpaceSpec(name="counterfactual_unlearning", label="unlearning", method="unlearning")
        return UnlearningAttributor(spec, base, data, self._unlearning_config(device))

    def settings(self, device: str) -> dict:
        return {"unlearning": dataclasses.asdict(self._unlearning_config(device))}
