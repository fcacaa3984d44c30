"""The encoder registry of the feature family: the ``Encoder`` contract (the query side of a feature space and the
identity of the store searched beside it) and its kinds by name (docs/method.md §2, §9). A new encoder (a student
over image and prompt, next projected gradients) is one registered class, not a new method that fakes a backbone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..attribute.interface import Query, Sample
from ..core.errors import AttributionError
from ..core.images import load_rgb
from ..heads import Heads

_ENCODERS: dict[str, type[Encoder]] = {}


class Encoder(ABC):
    """The query side of a feature space, and the identity of the store it is searched against."""

    kind: ClassVar[str] = ""
    uses_prompt: ClassVar[bool] = False  # reads the query's prompt (the method then reads it from the PNG)

    @property
    @abstractmethod
    def store_heads(self) -> Heads:
        """The heads whose real head maps the store's rows into the attribution space (identity when the store already
        holds them)."""

    @abstractmethod
    def store_identity(self) -> tuple[str, int]:
        """The (name, dimension) the store's metadata must record (checked on open)."""

    @abstractmethod
    def encode(self, queries: Sequence[Query]) -> np.ndarray:
        """Queries -> unit-norm float32 features [nq, d] of the attribution space."""

    @abstractmethod
    def encode_training(self, images: Sequence[Query]) -> np.ndarray:
        """Training-side images (each with its caption as ``prompt``) -> unit-norm float32 features [n, d], as the
        store's rows are through ``store_heads`` (images the store does not hold: a judge's exemplars)."""

    def warm(self, samples: Sequence[Sample], root: Path, name: str, progress: bool = True) -> None:  # noqa: B027
        """Files a judge is about to ask about (the encoder may embed them once and cache them); a no-op by
        default."""

    def encode_files(self, samples: Sequence[Sample], side: str) -> np.ndarray:
        """Image files with their texts -> features [n, d] on the query side (``side="query"``) or the training side
        (``"training"``)."""
        loaded = [Query(str(s.path), load_rgb(s.path), s.text) for s in samples]
        return self.encode(loaded) if side == "query" else self.encode_training(loaded)


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    """Register an encoder class under ``cls.kind`` (usable as a class decorator)."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} must set the class attribute 'kind' to register")
    _ENCODERS[cls.kind] = cls
    return cls


def list_encoders() -> list[str]:
    return sorted(_ENCODERS)


def encoder_class(kind: str) -> type[Encoder]:
    try:
        return _ENCODERS[kind]
    except KeyError:
        raise AttributionError(f"unknown encoder {kind!r}; known encoders: {', '.join(list_encoders())}") from None
