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

from attribution_core.attribute import Attribution, AttributionResult, Attributor, check_k, query_names
from attribution_core.images import load_rgb
from attribution_core.registry import register_method, register_space
from attribution_core.spaces import SpaceSpec


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.resize((8, 8), Image.BILINEAR), dtype=np.float32).ravel() / 255.0


@register_method
class ThumbnailAttributor(Attributor):
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

    def attribute(self, images, k=100, names=None, *, prompts=None, on_progress=None, cancel=None):
        k = check_k(k)
        out = []
        for im, name in zip(images, query_names(images, names), strict=True):
            im = im if isinstance(im, Image.Image) else load_rgb(im)
            scores = -np.abs(self.thumbs - _thumb(im)).mean(axis=1)
            p = np.exp(50 * (scores - scores.max()))
            p /= p.sum()
            order = np.argsort(-scores, kind="stable")[:k]
            results = [
                Attribution(r + 1, str(self.paths[i]), float(scores[i]), float(p[i]), int(i))
                for r, i in enumerate(order)
            ]
            out.append(
                AttributionResult(
                    name,
                    self.name,
                    results,
                    float(max(0.0, 1 - p[order].sum())),
                    method=self.method,
                    score_kind=self.score_kind,
                    mass_count=len(self.paths),
                )
            )
        return out


register_space(
    SpaceSpec(
        name="thumbnails",
        label="Thumbnails (plug-in)",
        method="thumbnail",
        description="the example queries in assets/, ranked by thumbnail distance",
        options={"folder": str(Path(__file__).resolve().parents[1] / "assets")},
    )
)
