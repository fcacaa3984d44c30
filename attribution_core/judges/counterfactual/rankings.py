"""The training images each method would remove for a query: its ranking of the counterfactual training set.

Every method attributes the base model's query over the same training set. Feature spaces rank their whole
store (the demo corpus and exemplars) and keep the training set's rows, in order; unlearning runs on the base
model itself; random removal is a seeded permutation that ignores the query.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ...attribute.interface import Attributor
from ...attribute.rows import method_scores, scores_and_influence
from ...attribute.spaces import SpaceSpec
from ...diffusion.data import TrainingSet
from ...diffusion.model import TextToImageModel
from ...registry import create_attributor
from ...unlearning.attributor import UnlearningAttributor
from ...unlearning.config import UnlearningConfig


def random_ranking(n: int, draw: int) -> np.ndarray:
    """Draw ``draw``'s random order of ``n`` training images (the same for every query)."""
    return np.random.default_rng(1_000 + draw).permutation(n)


def random_scores(n: int, seed: int) -> np.ndarray:
    """Seeded random scores of ``n`` training images (a permutation's ranks: no image is favoured)."""
    return np.random.default_rng([7_919, seed]).permutation(n).astype(np.float64)


def method_ranking(attributor: Attributor, query: Image.Image, prompt: str, data: TrainingSet) -> np.ndarray:
    """Any method's ranking of ``data`` for ``query``: indices into ``data``, most influential first."""
    return np.argsort(-method_scores(attributor, query, prompt, data), kind="stable")


class Rankers:
    """The attributors each method ranks with, loaded once and reused for every query: unlearning on the base model
    itself, a registered space by its name."""

    def __init__(self, base: TextToImageModel, data: TrainingSet, unlearning: UnlearningConfig, device: str):
        self.device = device
        self._attributors: dict[str, Attributor] = {
            "unlearning": UnlearningAttributor(
                SpaceSpec(name="counterfactual_unlearning", label="unlearning", method="unlearning"),
                base,
                data,
                unlearning,
            )
        }

    def attributor(self, method: str) -> Attributor:
        if method not in self._attributors:
            self._attributors[method] = create_attributor(method, device=self.device, progress=False)
        return self._attributors[method]

    def scores(self, method: str, query: Image.Image, prompt: str, data: TrainingSet) -> tuple[np.ndarray, np.ndarray]:
        """The method's raw scores and influence of the rows of ``data``."""
        return scores_and_influence(self.attributor(method), query, prompt, data)

    def ranking(self, method: str, query: Image.Image, prompt: str, data: TrainingSet) -> np.ndarray:
        return method_ranking(self.attributor(method), query, prompt, data)
