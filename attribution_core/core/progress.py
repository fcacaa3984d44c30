"""Progress and cancellation for long work: one callback type, one cancel flag, one tqdm-backed iterator.

Long-running library calls take ``progress: bool`` (a tqdm bar on the terminal) and ``on_progress`` (a callback
that front doors such as the explorer turn into their own progress bar), and optionally ``cancel``: anything
with ``is_set()`` (a :class:`threading.Event`). Cancelling raises :class:`Cancelled` at the next step; work
already written to disk is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tqdm.auto import tqdm

from .errors import AttributionError

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """Where a long task is: ``done`` of ``total`` units of ``stage`` (total 0 when unknown)."""

    stage: str  # what is being done now, in words ("extract efficientnet_lite0", "unlearn")
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class Cancelled(AttributionError):  # noqa: N818  (reads as a state: "the task was cancelled")
    """The caller cancelled a long task; finished work is kept."""


def check_cancelled(cancel: CancelFlag | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled; finished work is kept, run it again to continue")


def tracked(
    items: Iterable[T],
    stage: str,
    total: int | None = None,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Iterate ``items`` with a tqdm bar (when ``progress``), a callback per item and a cancel check per item."""
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else 0)  # type: ignore[arg-type]
    bar = tqdm(total=total or None, desc=stage, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if on_progress:
            on_progress(Progress(stage, 0, total))
        for i, item in enumerate(items, 1):
            check_cancelled(cancel)
            yield item
            bar.update(1)
            if on_progress:
                on_progress(Progress(stage, i, total))
    finally:
        bar.close()


@dataclass(frozen=True)
class Tracker:
    """How a long library call reports and stops: a tqdm bar on the terminal (``bar``), a callback for front doors,
    and a cancel flag; passed down instead of three arguments."""

    bar: bool = True
    on_progress: ProgressCallback | None = None
    cancel: CancelFlag | None = None

    def track(self, items: Iterable[T], stage: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
        """:func:`tracked` with this tracker's bar, callback and cancel flag."""
        return tracked(items, stage, total, self.bar, self.on_progress, self.cancel, unit)

    def quiet_below(self, total: int, minimum: int) -> Tracker:
        """This tracker without its terminal bar when there are fewer than ``minimum`` units (no flicker)."""
        return self if total > minimum else Tracker(False, self.on_progress, self.cancel)


def as_tracker(progress: bool | Tracker) -> Tracker:
    """``progress`` as a :class:`Tracker` (a bool turns the terminal bar on or off)."""
    return progress if isinstance(progress, Tracker) else Tracker(bool(progress))
