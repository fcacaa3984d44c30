"""What the counterfactual checks retrain on and ask about, given to them by the caller (docs/method.md §7, §8): a
testbed names its subjects (the photos of the demo corpus, say), builds the training set of chosen subjects and
views, writes a query's prompt, and may answer a method itself (unlearning on the base model the judge trained).
The judges never import a testbed: the door passes the registered one the options name (``demo-photos``:
``demo.testbed.PhotoTestbed``, wired in ``builtin``)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ...attribute.interface import Attributor
from ...core.errors import AttributionError

if TYPE_CHECKING:
    from ...diffusion.data import TrainingSet
    from ...diffusion.model import TextToImageModel


class Testbed(ABC):
    """A training set of subjects with views, and prompts that name a subject."""

    __test__ = False  # not a pytest test class
    name: str = ""
    own_methods: tuple[str, ...] = ()  # the methods :meth:`attributor` answers itself (on the judge's base model)

    @property
    @abstractmethod
    def subjects(self) -> tuple[str, ...]:
        """Every subject, in training-set order."""

    @abstractmethod
    def training_set(self, subjects: tuple[str, ...], views: int, resolution: int) -> TrainingSet:
        """The first ``views`` views of each subject, at ``resolution``, with their captions.

        Raises:
            AttributionError: an unknown subject or a view count out of range (one line naming what exists).
        """

    @abstractmethod
    def prompt(self, subject: str) -> str:
        """The prompt of a query about ``subject``."""

    @abstractmethod
    def default_queries(self, validation: bool) -> tuple[str, ...]:
        """Leave-K-out's queries as ``SUBJECT:SEED``: the reported ones, or the validation ones."""

    def attributor(self, method: str, base: TextToImageModel, data: TrainingSet, device: str) -> Attributor | None:
        """An attributor the testbed makes itself for ``method`` on the judge's base model (None: the registry's
        space of that name answers)."""
        return None

    def settings(self, device: str) -> dict[str, Any]:
        """The settings of the attributors it makes itself, by method (recorded with a run's rankings)."""
        return {}

    def parse_queries(self, specs: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        """``("coins:1", …)`` as ``(("coins", 1), …)``; a malformed entry or an unknown subject is a one-line error."""
        out = []
        for spec in specs:
            subject, _, seed = spec.partition(":")
            if subject not in self.subjects or not seed.isdigit():
                raise AttributionError(
                    f"query {spec!r}: expected SUBJECT:SEED with SUBJECT one of {', '.join(self.subjects)}"
                )
            out.append((subject, int(seed)))
        return tuple(out)

    def resolve(self, config: Any) -> Any:
        """``config`` with its empty subject and query lists filled with the testbed's (every subject; its default
        queries), as a report records them. Every method is checked here, before hours of retraining: ``random``,
        one the testbed answers, or a registered space.

        Raises:
            AttributionError: a method that is none of these (one line listing what there is).
        """
        from ...registry import all_spaces

        spaces = [s.name for s in all_spaces()]  # names only: no readiness checks
        unknown = [m for m in config.methods if m != "random" and m not in self.own_methods and m not in spaces]
        known = ", ".join(["random", *self.own_methods, *spaces])
        if unknown or not config.methods:
            what = f"unknown method {', '.join(map(repr, unknown))}" if unknown else "name at least one method"
            raise AttributionError(f"--methods: {what}; known: {known}")
        changes: dict[str, Any] = {}
        if not config.photos:
            changes["photos"] = self.subjects
        for field, validation in (("queries_reported", False), ("queries_validation", True)):
            if hasattr(config, field) and not getattr(config, field):
                changes[field] = self.default_queries(validation)
        return dataclasses.replace(config, **changes) if changes else config
