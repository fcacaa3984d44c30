"""One method's scores over another training set, matched by file: a feature space's store rows, or an
unlearning model's training rows, laid onto the rows of a ``TrainingSet`` (the counterfactual judges and
unlearning's candidates both need it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import AttributionError
from ..diffusion.data import TrainingSet
from .interface import Attributor


def scores_and_influence(
    attributor: Attributor, query: Image.Image, prompt: str | None, data: TrainingSet
) -> tuple[np.ndarray, np.ndarray]:
    """Any method's raw scores and influence (its share of its whole training set, from its own influence rule) of
    the rows of ``data`` for ``query``, matched to ``data`` by file (the method's other rows are dropped).

    Raises:
        AttributionError: the method gives no whole-set scores, or misses some of ``data``'s images (naming it).
    """
    scores = attributor.scores([query], prompts=[prompt])[0]
    influence = attributor.influence(scores)
    row = {str((data.root / p).resolve()): i for i, p in enumerate(data.paths)}
    out = np.full((2, len(data)), np.nan)
    for r in range(len(scores)):
        i = row.get(str(Path(attributor.training_record(r).path).resolve()))
        if i is not None:
            out[:, i] = scores[r], influence[r]
    if np.isnan(out[0]).any():
        raise AttributionError(
            f"space {attributor.name!r} holds {int((~np.isnan(out[0])).sum())} of the {len(data)} training images; "
            "it cannot score them all"
        )
    return out[0], out[1]


def method_scores(attributor: Attributor, query: Image.Image, prompt: str | None, data: TrainingSet) -> np.ndarray:
    """Any method's raw scores of the rows of ``data`` for ``query`` (higher = more influential)."""
    return scores_and_influence(attributor, query, prompt, data)[0]
