"""Settings of attribution by unlearning (docs/method.md §6), scaled from the paper's to the demo model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import REQUIRED, option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP


@dataclass(frozen=True)
class UnlearningConfig:
    """Options of ``attribute unlearn`` (the CLI's flags are generated from these fields).

    The paper's MSCOCO setting is 1 step at lr 0.01 with 80 × 625 noise/timestep draws, and Stable Diffusion's
    100 steps at lr 0.1 with 16 × 10 draws per step; the demo model is small enough for several steps of many
    draws each on a CPU.
    """

    steps: int = option(10, "unlearning (gradient ascent) steps", minimum=1)
    lr: float = option(0.01, "step size of the Fisher-preconditioned ascent θ ← θ + lr·g/(F·N)", minimum=0)
    draws: int = option(64, "noise/timestep draws per step (distinct timesteps within each batch of draws)", minimum=1)
    batches: int = option(4, "batches of draws per step (their gradients are averaged)", minimum=1)
    score_timesteps: int = option(
        8, "timesteps, strided over the schedule, at which training losses are scored", minimum=1
    )
    fisher_epochs: int = option(2, "passes over the training set (and flips) for the diagonal Fisher", minimum=1)
    batch_size: int = option(256, "images per forward pass when scoring", minimum=1)
    seed: int = option(0, "seed of every noise draw (same seed: same scores)")
    candidates: int = option(
        0, "score only the top N training images of the candidate space after unlearning (0: every image)", minimum=0
    )
    candidate_space: str = option("", "the fast space whose top N are scored (a space over the same training set)")
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)

    def cache_key(self) -> dict:
        """The settings the cached "before" losses depend on."""
        return {"score_timesteps": self.score_timesteps, "seed": self.seed, "noise": "shared"}


DEFAULT_CONFIG = UnlearningConfig()


@dataclass(frozen=True)
class UnlearningOptions:
    """What an unlearning space names (its ``options`` in a spaces file; relative paths are resolved against the
    file): the diffusion model, its training set, and the settings of unlearning."""

    model: Path = option(REQUIRED, "the diffusion model's folder (model_index.json)", path=True)
    captions: Path = option(REQUIRED, "the training set's captions (JSON lines of path, caption)", path=True)
    images: Path = option(REQUIRED, "the folder the captions' paths are relative to", path=True)
    prefix: str = option("", "only training images whose path starts with this")
    config: UnlearningConfig = option(DEFAULT_CONFIG, "settings of unlearning (steps, lr, draws, …)")
