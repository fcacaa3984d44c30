"""Subset models of a fine-tune (docs/counterfactual.md): the base model fine-tuned on the training set minus some
rows, under one training seed, replaying the full-set fine-tune's batches (paired), cached by a key of what was
removed, the data, the base model, the schedule and the new words."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ...core.device import resolve_device
from ...core.fileio import atomic_write_json
from ...diffusion.data import TrainingSet
from ...diffusion.finetune import FinetuneConfig, finetune
from ...diffusion.load import load_model
from ...diffusion.model import MODEL_INDEX, TextToImageModel
from ...diffusion.train import data_fingerprint
from .retrain import Retrainer

log = logging.getLogger(__name__)


class FinetuneRetrainer(Retrainer):
    """Fine-tunes of ``base`` (a model folder) on ``data`` minus removed rows, with ``words`` as new tokens."""

    def __init__(self, data: TrainingSet, cache: Path, base: Path, words: Sequence[str], config: FinetuneConfig):
        self.data, self.cache, self.base_folder, self.words, self.config = data, Path(cache), base, words, config
        self._base: TextToImageModel | None = None

    def base(self) -> TextToImageModel:
        if self._base is None:
            self._base = load_model(self.base_folder, resolve_device(self.config.device))
        return self._base

    def key(self, removed: Sequence[int], seed: int) -> str:
        identity = {
            "removed": sorted(self.data.paths[int(i)] for i in removed),
            "data": data_fingerprint(self.data),
            "base": self.base().fingerprint(),
            "finetune": {**self.config.key(), "seed": seed},
            "words": list(self.words),
        }
        return "ft-" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def model(self, removed: Sequence[int], seed: int, progress: bool = False) -> TextToImageModel:
        folder = self.cache / self.key(removed, seed)
        if not (folder / MODEL_INDEX).is_file():
            log.info("fine-tuning without %d of %d images (seed %d) -> %s", len(removed), len(self.data), seed, folder)
            model = copy.deepcopy(self.base())
            finetune(model, self.data, self.words, replace(self.config, seed=seed), removed, progress)
            model.save(folder)
            atomic_write_json(folder / "removed.json", sorted(self.data.paths[int(i)] for i in removed))
        return load_model(folder, resolve_device(self.config.device))
