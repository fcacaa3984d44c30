"""The LDS's subset retrains (docs/method.md §8): ``M`` models, each trained on a seeded random subset of the
training set, shared by every query and every method.

A subset model is a leave-K-out retrain whose removed set is the subset's complement (``retrain.retrain_without``),
so it is cached, keyed and resumed the same way, and paired the same way: it replays the base model's run, every
slot that drew an image outside the subset given one inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...core.errors import AttributionError
from ...core.fileio import atomic_write_json
from ...core.progress import tracked
from ...diffusion.config import ModelConfig, TrainConfig
from ...diffusion.data import TrainingSet
from ...diffusion.model import TextToImageModel
from .retrain import retrain_without

log = logging.getLogger(__name__)

SUBSETS = "subsets.json"


def draw_subset(n: int, alpha: float, seed: int) -> np.ndarray:
    """Rows of subset ``seed``: ``round(alpha * n)`` of ``n`` training images without replacement, sorted."""
    if not 0 < alpha < 1:
        raise AttributionError(f"the subset fraction alpha must lie strictly between 0 and 1; got {alpha}")
    size = round(alpha * n)
    if not 0 < size < n:
        raise AttributionError(f"alpha={alpha} of {n} training images gives an empty or full subset")
    return np.sort(np.random.default_rng([20_240_829, seed]).choice(n, size=size, replace=False))


def draw_subsets(n: int, m: int, alpha: float, seed: int) -> np.ndarray:
    """The ``[m, n]`` membership matrix of the ``m`` subsets (subset ``j`` drawn with seed ``seed + j``)."""
    if m < 2:
        raise AttributionError(f"the LDS needs at least 2 subset retrains; got {m}")
    member = np.zeros((m, n), dtype=bool)
    for j in range(m):
        member[j, draw_subset(n, alpha, seed + j)] = True
    return member


def save_subsets(member: np.ndarray, data: TrainingSet, path: Path) -> None:
    """The subsets as lists of training-image paths (anyone can recompute the LDS from them)."""
    atomic_write_json(path, [[data.paths[i] for i in np.flatnonzero(row)] for row in member])


def subset_models(
    data: TrainingSet,
    member: np.ndarray,
    cache: Path,
    model_config: ModelConfig,
    train: TrainConfig,
    progress: bool = True,
    paired: bool = True,
) -> Iterator[tuple[int, TextToImageModel]]:
    """Each subset's model in turn (trained now unless cached): ``(j, model)`` for ``j`` in ``range(len(member))``."""
    for j in tracked(range(len(member)), "subset retrains", progress=progress, unit="model"):
        removed = np.flatnonzero(~member[j])
        yield j, retrain_without(data, removed, cache, model_config, train, progress=False, paired=paired)
