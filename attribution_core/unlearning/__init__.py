"""Attribution by unlearning (AbU, docs/method.md §6): Fisher, loss caches, unlearning, scoring, the Attributor."""

from .attributor import UnlearningAttributor, prompt_of
from .caches import cached_fisher, cached_losses
from .config import UnlearningConfig
from .scores import diagonal_fisher, influence_of, score_timesteps, scores_from_losses, training_losses, unlearn

__all__ = [
    "UnlearningAttributor",
    "UnlearningConfig",
    "cached_fisher",
    "cached_losses",
    "diagonal_fisher",
    "influence_of",
    "prompt_of",
    "score_timesteps",
    "scores_from_losses",
    "training_losses",
    "unlearn",
]
