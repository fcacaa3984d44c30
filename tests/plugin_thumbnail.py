"""A third-party attribution method, as a plug-in would ship it: registered from outside the library's code.

It ranks the images of a folder by how close their 8×8 thumbnails are to the query's (score = minus the mean
absolute pixel difference) and turns scores into influence with a softmax. Loaded through
``ATTRIBUTION_PLUGINS=tests.plugin_thumbnail`` in the tests, exactly as a user's own module would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attribution_core.attribute.interface import Attributor, TrainingRecord
from attribution_core.attribute.spaces import SpaceSpec
from attribution_core.core.images import load_rgb
from attribution_core.registry import register_method, register_space


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.resize((8, 8), Image.BILINEAR), dtype=np.float32).ravel() / 255.0


@register_method
class ThumbnailAttributor(Attributor):
    """Provides only whole-set scores, an influence rule and its training records: the base class's template does
    the rest (names, k, loading, ranking, the result)."""

    method = "thumbnail"
    score_kind = "neg_thumbnail_distance"
    description = "closeness of 8x8 thumbnails (a test plug-in)"

    def __init__(self, spec: SpaceSpec, paths: list[Path]):
        self.name = spec.name
        self.paths = paths
        self.thumbs = np.stack([_thumb(load_rgb(p)) for p in paths])

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        folder = Path(spec.options["folder"])
        return () if any(folder.glob("*.jpg")) else (f"images in {folder}",)

    @classmethod
    def load(cls, spec: SpaceSpec, **_: Any) -> ThumbnailAttributor:
        return cls(spec, sorted(Path(spec.options["folder"]).glob("*.jpg")))

    def __len__(self) -> int:
        return len(self.paths)

    def training_record(self, row: int) -> TrainingRecord:
        return TrainingRecord(self.paths[row])

    def whole_set_scores(self, queries, on_progress=None, cancel=None):
        scores = np.stack([-np.abs(self.thumbs - _thumb(q.image)).mean(axis=1) for q in queries])
        return scores, [{}] * len(queries)

    def influence(self, scores: np.ndarray) -> np.ndarray:
        p = np.exp(50 * (scores - scores.max()))
        return p / p.sum()


register_space(
    SpaceSpec(
        name="thumbnails",
        label="Thumbnails (plug-in)",
        method="thumbnail",
        description="the example queries in assets/, ranked by thumbnail distance",
        options={"folder": str(Path(__file__).resolve().parents[1] / "assets")},
    )
)
