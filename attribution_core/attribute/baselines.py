"""Model-free baselines every judge reports beside the methods: seeded random scores (what chance gives) and the
caption-only rule (what the prompt's words alone give away: the Jaccard overlap with each training caption).
Neither looks at an image or a model; a method that does not beat caption-only has shown nothing the prompt did not
already say."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_scores(n: int, seed: int) -> np.ndarray:
    """Seeded random scores of ``n`` training images (a permutation's ranks: no image is favoured)."""
    return np.random.default_rng([7_919, seed]).permutation(n).astype(np.float64)


def caption_scores(prompt: str, captions: Sequence[str]) -> np.ndarray:
    """The caption-only rule: the Jaccard overlap of the prompt's words with each training caption's."""
    words = {w.strip(",.;:").lower() for w in prompt.split()}
    out = np.zeros(len(captions))
    for i, c in enumerate(captions):
        other = {w.strip(",.;:").lower() for w in c.split()}
        out[i] = len(words & other) / max(1, len(words | other))
    return out
