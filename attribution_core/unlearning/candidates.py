"""Unlearning on candidates (docs/method.md §6): after the query is unlearned, score only the top-N training
images of a fast space instead of every image. Scoring the training set after unlearning is most of a query's cost
and grows with the set, while the images unlearning ranks high are nearly always among a good feature space's top
few hundred (FastGDA labels its training data this way); the rest get no score and no influence."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..attribute.interface import Attributor
from ..attribute.rows import method_scores
from ..core.errors import AttributionError
from ..diffusion.data import TrainingSet
from ..registry import create_attributor


class CandidatePicker:
    """The top-N rows of a training set under a fast space, that space loaded once."""

    def __init__(self, space: str, n: int, device: str):
        if n < 1:
            raise AttributionError(f"--candidates must be a positive number of training images, not {n}")
        if not space:
            raise AttributionError(
                "--candidates needs the fast space that picks them: --candidate-space NAME (a space over the same "
                "training set, e.g. demo_model_efficientnet_lite0_tuned; see `attribute spaces`)"
            )
        self.space, self.n, self.device = space, n, device
        self._attributor: Attributor | None = None

    def rows(self, query: Image.Image, prompt: str | None, data: TrainingSet) -> np.ndarray:
        """The candidates' rows in ``data``, sorted (all rows when ``n`` covers the set)."""
        if self.n >= len(data):
            return np.arange(len(data))
        if self._attributor is None:
            self._attributor = create_attributor(self.space, device=self.device, progress=False)
        scores = method_scores(self._attributor, query, prompt, data)
        return np.sort(np.argsort(-scores, kind="stable")[: self.n])
