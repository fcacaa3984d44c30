"""Per-model caches of attribution by unlearning: the diagonal Fisher and the "before" training losses.

Kept in ``feats/unlearning/<model fingerprint>-<data fingerprint>/`` under the project root (the user cache when
that is read-only), so they are computed once per model and training set and rebuilt when either changes: a new
fingerprint is a new folder. Fisher as safetensors; losses as ``.npy`` named by the settings they
depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..core.fileio import atomic_path, is_writable_dir
from ..core.paths import cache_dir, project_root
from ..core.progress import CancelFlag, ProgressCallback
from ..diffusion.data import TrainingSet
from ..diffusion.model import TextToImageModel
from ..diffusion.train import data_fingerprint
from .config import UnlearningConfig
from .scores import diagonal_fisher, training_losses

log = logging.getLogger(__name__)


def cache_folder(model: TextToImageModel, data: TrainingSet) -> Path:
    key = f"{model.fingerprint()}-{data_fingerprint(data)}"
    home = project_root() / "feats" / "unlearning"
    return (home if is_writable_dir(home) else cache_dir() / "unlearning") / key


def cached_fisher(
    model: TextToImageModel,
    data: TrainingSet,
    config: UnlearningConfig,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> dict[str, torch.Tensor]:
    """The diagonal Fisher of (model, data), computed once."""
    path = cache_folder(model, data) / f"fisher-e{config.fisher_epochs}-s{config.seed}.safetensors"
    if path.is_file():
        return {k: v.double() for k, v in load_file(str(path)).items()}
    log.warning(
        "first use of this model: computing the diagonal Fisher over %d training images and their flips (once; "
        "cached beside the model, later queries skip it)",
        len(data),
    )
    fisher = diagonal_fisher(model, data, config, progress, on_progress, cancel)
    with atomic_path(path, ".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in fisher.items()}, str(tmp))
    return fisher


def cached_losses(
    model: TextToImageModel,
    data: TrainingSet,
    config: UnlearningConfig,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> np.ndarray:
    """The "before" losses [2N] of (model, data) under ``config``'s scoring settings, computed once."""
    key = hashlib.sha256(json.dumps(config.cache_key(), sort_keys=True).encode()).hexdigest()[:12]
    path = cache_folder(model, data) / f"losses-{key}.npy"
    if path.is_file():
        return np.load(path)
    log.warning(
        "first use of these settings: scoring %d training images and their flips before unlearning (once; cached)",
        len(data),
    )
    losses = training_losses(model, data, config, progress, on_progress, cancel, stage="score before unlearning")
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, losses)
    return losses
