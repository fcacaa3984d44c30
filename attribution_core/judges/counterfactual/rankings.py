"""The training images each method would remove for a query: its ranking of the counterfactual training set.

Every method attributes the base model's query over the same training set. Feature spaces rank their whole
store (the demo corpus and exemplars) and keep the training set's rows, in order; the testbed answers the methods
it runs on the base model itself (unlearning); random removal is a seeded permutation that ignores the query.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ...attribute.baselines import caption_scores, random_scores
from ...attribute.interface import Attributor
from ...attribute.rows import method_scores, scores_and_influence
from ...diffusion.data import TrainingSet
from ...diffusion.model import TextToImageModel
from ...registry import create_attributor
from .testbed import Testbed

__all__ = ["Rankers", "caption_scores", "method_ranking", "random_ranking", "random_scores"]


def random_ranking(n: int, draw: int) -> np.ndarray:
    """Draw ``draw``'s random order of ``n`` training images (the same for every query)."""
    return np.random.default_rng(1_000 + draw).permutation(n)


def method_ranking(attributor: Attributor, query: Image.Image, prompt: str, data: TrainingSet) -> np.ndarray:
    """Any method's ranking of ``data`` for ``query``: indices into ``data``, most influential first."""
    return np.argsort(-method_scores(attributor, query, prompt, data), kind="stable")


class Rankers:
    """The attributors each method ranks with, loaded once and reused for every query: the testbed's own for the
    methods it answers on the base model (unlearning), a registered space by its name otherwise."""

    def __init__(self, testbed: Testbed, base: TextToImageModel, data: TrainingSet, device: str):
        self.testbed, self.base, self.data, self.device = testbed, base, data, device
        self._attributors: dict[str, Attributor] = {}

    def attributor(self, method: str) -> Attributor:
        if method not in self._attributors:
            own = self.testbed.attributor(method, self.base, self.data, self.device)
            self._attributors[method] = own or create_attributor(method, device=self.device, progress=False)
        return self._attributors[method]

    def settings(self) -> dict:
        """What the testbed's own attributors run with (recorded beside the rankings)."""
        return self.testbed.settings(self.device)

    def scores(self, method: str, query: Image.Image, prompt: str, data: TrainingSet) -> tuple[np.ndarray, np.ndarray]:
        """The method's raw scores and influence of the rows of ``data``."""
        return scores_and_influence(self.attributor(method), query, prompt, data)

    def ranking(self, method: str, query: Image.Image, prompt: str, data: TrainingSet) -> np.ndarray:
        return method_ranking(self.attributor(method), query, prompt, data)
