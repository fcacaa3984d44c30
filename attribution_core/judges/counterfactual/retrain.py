"""Leave-K-out retraining, cached: a model trained from scratch without a removed set, same seed and schedule.

A retrain's folder is named by a hash of (removed set, training data, model and training configuration), so the
same removal is trained once, an interrupted retrain resumes from its checkpoint (``train_diffusion`` checkpoints
and resumes), and a different removed set is a different folder. The base model is the retrain that removes
nothing.

Two ways to retrain (docs/method.md §7). *Unpaired*: train on the remaining images alone, so every step draws a
different batch from the base model's and the retrain differs from the base by the removal *and* by a new
random trajectory. *Paired* (the default): train on the base model's exact sequence of random choices, each
slot that drew a removed image given a kept one instead (``train_diffusion(exclude=...)``), so the difference
from the base model is the removal alone. Removing nothing is the base model either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...core.device import resolve_device
from ...core.fileio import atomic_write_json
from ...diffusion.config import ModelConfig, TrainConfig
from ...diffusion.data import TrainingSet
from ...diffusion.load import load_model
from ...diffusion.model import MODEL_INDEX, TextToImageModel
from ...diffusion.train import data_fingerprint, train_diffusion

log = logging.getLogger(__name__)

#: Training options that do not change the trained weights (so they are not part of a retrain's key).
_NOT_IN_KEY = ("device", "checkpoint_every")


def removal_key(
    removed: Sequence[int], data: TrainingSet, model_config: ModelConfig, train: TrainConfig, paired: bool = True
) -> str:
    """The cache key of a retrain: which images were removed, from which data, under which configuration."""
    schedule = {k: v for k, v in dataclasses.asdict(train).items() if k not in _NOT_IN_KEY}
    identity = {
        "removed": sorted(data.paths[int(i)] for i in removed),
        "data": data_fingerprint(data),
        "model": model_config.to_dict(),
        "train": schedule,
    }
    if paired and len(removed):
        identity["paired"] = True
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def retrain_without(
    data: TrainingSet,
    removed: Sequence[int],
    cache: Path,
    model_config: ModelConfig,
    train: TrainConfig,
    progress: bool = True,
    paired: bool = True,
) -> TextToImageModel:
    """The model trained on ``data`` minus the rows ``removed`` (trained now unless cached under ``cache``)."""
    folder = Path(cache) / removal_key(removed, data, model_config, train, paired)
    if not (folder / MODEL_INDEX).is_file():
        log.info("retraining without %d of %d training images -> %s", len(set(removed)), len(data), folder)
        if paired:
            train_diffusion(data, folder, model_config, train, progress=progress, exclude=removed)
        else:
            keep = np.ones(len(data), dtype=bool)
            keep[np.asarray(list(removed), dtype=np.int64)] = False
            train_diffusion(data.subset(keep), folder, model_config, train, progress=progress)
        atomic_write_json(folder / "removed.json", sorted(data.paths[int(i)] for i in removed))
    return load_model(folder, resolve_device(train.device))


class Retrainer(ABC):
    """How a testbed's models are made (docs/method.md §7, §8): the model trained on the training set minus some
    rows, under one training seed, cached by a key so that each is trained once and shared by every query."""

    @abstractmethod
    def key(self, removed: Sequence[int], seed: int) -> str:
        """The cache key of the model without ``removed`` under training seed ``seed``."""

    @abstractmethod
    def model(self, removed: Sequence[int], seed: int, progress: bool = False) -> TextToImageModel:
        """That model (trained now unless cached)."""


class ScratchRetrainer(Retrainer):
    """Training from scratch (the photo testbed): ``retrain_without`` under the schedule with ``seed``."""

    def __init__(self, data: TrainingSet, cache: Path, model_config: ModelConfig, train: TrainConfig, paired: bool):
        self.data, self.cache, self.model_config, self.train, self.paired = data, cache, model_config, train, paired

    def _train(self, seed: int) -> TrainConfig:
        return self.train if seed == self.train.seed else dataclasses.replace(self.train, seed=seed)

    def key(self, removed: Sequence[int], seed: int) -> str:
        return removal_key(removed, self.data, self.model_config, self._train(seed), self.paired)

    def model(self, removed: Sequence[int], seed: int, progress: bool = False) -> TextToImageModel:
        return retrain_without(
            self.data, removed, self.cache, self.model_config, self._train(seed), progress, self.paired
        )
