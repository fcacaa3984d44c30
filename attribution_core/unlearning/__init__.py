"""Attribution by unlearning (AbU, docs/method.md §6): Fisher, loss caches, unlearning, scoring, the Attributor.

Names load their modules on first use (``attribution_core.core.lazy``); the method registers itself when
``attributor`` is imported, which the registry does the first time the method is looked up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

_EXPORTS = {
    "UnlearningAttributor": "attributor",
    "prompt_of": "attributor",
    "cached_fisher": "caches",
    "cached_losses": "caches",
    "UnlearningConfig": "config",
    "diagonal_fisher": "scores",
    "share_of_rise": "scores",
    "score_timesteps": "scores",
    "scores_from_losses": "scores",
    "training_losses": "scores",
    "unlearn": "scores",
}

__all__ = [
    "UnlearningAttributor",
    "UnlearningConfig",
    "cached_fisher",
    "cached_losses",
    "diagonal_fisher",
    "prompt_of",
    "score_timesteps",
    "scores_from_losses",
    "share_of_rise",
    "training_losses",
    "unlearn",
]

if TYPE_CHECKING:
    from .attributor import UnlearningAttributor, prompt_of
    from .caches import cached_fisher, cached_losses
    from .config import UnlearningConfig
    from .scores import diagonal_fisher, score_timesteps, scores_from_losses, share_of_rise, training_losses, unlearn

__getattr__ = lazy_exports(__name__, _EXPORTS)
