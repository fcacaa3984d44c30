"""The training images each method would remove for a query: its ranking of the counterfactual training set.

Every method attributes the base model's query over the same training set. Feature spaces rank their whole
store (the demo corpus and exemplars) and keep the training set's rows, in order; unlearning runs on the base
model itself; random removal is a seeded permutation that ignores the query.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..attribute import Attributor
from ..diffusion.data import TrainingSet
from ..diffusion.model import TextToImageModel
from ..errors import AttributionError
from ..registry import create_attributor
from ..spaces import SpaceSpec
from ..unlearning.attributor import UnlearningAttributor
from ..unlearning.config import UnlearningConfig


def random_ranking(n: int, draw: int) -> np.ndarray:
    """Draw ``draw``'s random order of ``n`` training images (the same for every query)."""
    return np.random.default_rng(1_000 + draw).permutation(n)


def feature_ranking(attributor: Attributor, query: Image.Image, data: TrainingSet) -> np.ndarray:
    """A feature space's ranking of ``data`` for ``query``: indices into ``data``, most similar first."""
    row = {str((data.root / p).resolve()): i for i, p in enumerate(data.paths)}
    found = attributor.attribute([query], k=attributor.index.ntotal)[0].results
    order = [row[key] for key in (str(Path(a.path).resolve()) for a in found) if key in row]
    if len(order) != len(data):
        raise AttributionError(
            f"space {attributor.name!r} holds {len(order)} of the {len(data)} training images; it cannot rank them all"
        )
    return np.asarray(order)


def unlearning_ranking(
    model: TextToImageModel, data: TrainingSet, query: torch.Tensor, prompt: str, config: UnlearningConfig
) -> np.ndarray:
    """Attribution by unlearning on ``model`` itself: training images by loss rise, largest first."""
    spec = SpaceSpec(name="counterfactual_unlearning", label="unlearning", method="unlearning")
    scores, _ = UnlearningAttributor(spec, model, data, config).scores(query, prompt)
    return np.argsort(-scores, kind="stable")


class Rankers:
    """The feature-space attributors, loaded once and reused for every query."""

    def __init__(self, device: str):
        self.device = device
        self._spaces: dict[str, Attributor] = {}

    def feature(self, space: str, query: Image.Image, data: TrainingSet) -> np.ndarray:
        if space not in self._spaces:
            self._spaces[space] = create_attributor(space, device=self.device, progress=False)
        return feature_ranking(self._spaces[space], query, data)
