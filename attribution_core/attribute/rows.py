"""One method's scores over another training set, matched by file: a feature space's store rows, or an
unlearning model's training rows, laid onto the rows of a ``TrainingSet`` (the counterfactual judges and
unlearning's candidates both need it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import AttributionError
from ..diffusion.data import TrainingSet
from .interface import Attributor, Candidates, Sample


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


def rows_held(attributor: Attributor, data: TrainingSet) -> np.ndarray | None:
    """The attributor's row of each of ``data``'s images, matched by file; None when it lacks some of them."""
    row = {str(Path(attributor.training_record(r).path).resolve()): r for r in range(len(attributor))}
    rows = [row.get(str((data.root / p).resolve())) for p in data.paths]
    return None if any(r is None for r in rows) else np.asarray(rows, dtype=np.int64)


def scores_of_files(attributor: Attributor, queries: list[Sample], data: TrainingSet) -> np.ndarray:
    """Any method's raw scores [nq, len(data)] of ``data``'s images for query files it has never seen in training:
    its candidate scores with ``data``'s images (and captions) as the extra candidates (one call, each image
    embedded once)."""
    extra = tuple(Sample(data.root / p, c) for p, c in zip(data.paths, data.captions, strict=True))
    return np.asarray(attributor.candidate_scores(queries, Candidates(np.zeros(0, dtype=np.int64), extra)))
