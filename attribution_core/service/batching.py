"""Micro-batching of concurrent requests to a batchable method (``Capabilities.batchable``): requests that arrive
within a short window share one ``attribute`` call (for feature spaces: one embedding batch, the expensive part, and
one search, a matrix-matrix product on exact indexes), each with its own k and prompt.

asyncio does the collecting; the model work runs on the service's single model thread (torch already uses every
core, so two concurrent forward passes would only slow each other). No general-purpose batching library fits an
in-process FastAPI service without a separate server (Ray Serve's ``@serve.batch`` needs a Ray cluster), so this
is the ~60 lines it takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from PIL import Image

from ..attribute.interface import AttributionResult, Attributor
from ..core.errors import AttributionError


@dataclass
class _Pending:
    image: Image.Image
    k: int
    name: str
    prompt: str | None
    future: asyncio.Future


class MicroBatcher:
    """One per batchable space: ``await submit(image, k, name, prompt)`` -> its result, computed in a shared batch."""

    def __init__(
        self,
        attributor: Attributor,
        executor: Executor,
        window_s: float,
        max_batch: int,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.attributor = attributor
        self.on_batch = on_batch  # told each batch's size (metrics)
        self.executor = executor
        self.window_s = window_s
        self.max_batch = max(1, max_batch)
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0  # batches run so far (for /metrics)
        self._running: set[asyncio.Task] = set()

    async def submit(self, image: Image.Image, k: int, name: str, prompt: str | None = None) -> AttributionResult:
        loop = asyncio.get_running_loop()
        item = _Pending(image, k, name, prompt, loop.create_future())
        self._pending.append(item)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await item.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:  # more than one batch arrived at once: the rest goes next, without waiting again
            self._timer = asyncio.get_running_loop().call_soon(self._flush)
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)  # keep a reference until it is done
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self._compute, batch)
        except AttributionError as exc:
            if len(batch) == 1:
                raise_into(batch[0], exc)
                return
            # one member's bad input must not fail the others (nor show them its error): each on its own
            for item in batch:
                await self._run([item])
            return
        except Exception as exc:  # every request of the batch gets the error
            for item in batch:
                raise_into(item, exc)
            return
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():  # a request that timed out meanwhile is not answered
                item.future.set_result(result)

    def _compute(self, batch: list[_Pending]) -> list[AttributionResult]:
        """One ``attribute`` call for the whole batch (each query with its own k and prompt); it stops at its next
        step once every request of the batch has timed out (their futures are then cancelled)."""
        return self.attributor.attribute(
            [item.image for item in batch],
            [item.k for item in batch],
            [item.name for item in batch],
            prompts=[item.prompt for item in batch],
            cancel=_AllGone(batch),
        )


def raise_into(item: _Pending, exc: BaseException | None) -> None:
    """Answer a waiting request with ``exc`` (one that timed out meanwhile is not answered)."""
    if not item.future.done():
        item.future.set_exception(exc)


@dataclass
class _AllGone:
    """A cancel flag that is set when no request of a batch waits for its answer any more."""

    batch: list[_Pending]

    def is_set(self) -> bool:
        return all(item.future.done() for item in self.batch)
