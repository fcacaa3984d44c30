"""What one service process holds: each space's loaded attributor (loaded once, on first use or at start), a
micro-batcher per feature space, the unlearning job queue, and the one thread that runs model work."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..attribute.interface import AttributionResult, Attributor
from ..attribute.results import with_paths
from ..core.errors import AttributionError
from ..registry import create_attributor, get_space, list_spaces, method_class, space_record
from .batching import MicroBatcher
from .config import ServiceConfig
from .jobs import JobQueue
from .metrics import ServiceMetrics

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """More feature-space requests in flight than ``queue_size``."""


class ServiceState:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self.metrics = ServiceMetrics()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="attribution-model")
        self.jobs = JobQueue(config.max_jobs)
        self._attributors: dict[str, Attributor] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._load_lock = threading.Lock()
        self.inflight = 0

    # --- spaces --------------------------------------------------------------------------------------------
    def spaces(self) -> list[dict]:
        return [{**space_record(s), "loaded": s.spec.name in self._attributors} for s in list_spaces()]

    def resolve(self, spaces: list[str], methods: list[str]) -> list[str]:
        """Space names from ``space`` and ``method`` fields (a method names every ready space it answers)."""
        names = [get_space(s).name for s in spaces]
        for m in methods:
            method_class(m)  # unknown method: a clear error
            names += [s.spec.name for s in list_spaces() if s.spec.method == m and s.ready]
        names = list(dict.fromkeys(names))
        if not names:
            raise AttributionError("name at least one space (space=NAME) or method (method=NAME); see GET /v1/spaces")
        return names

    def attributor(self, name: str) -> Attributor:
        """The loaded space (blocking; loads once)."""
        with self._load_lock:
            if name not in self._attributors:
                log.info("loading space %s", name)
                self._attributors[name] = create_attributor(name, device=self.config.device, progress=False)
                self.metrics.loaded_spaces.set(len(self._attributors))
            return self._attributors[name]

    def preload(self) -> None:
        """Load and prepare the configured spaces before the first request (index builds, caches: logged)."""
        for name in self.config.spaces:
            self.attributor(get_space(name).name).prepare()

    def is_slow(self, name: str) -> bool:
        """Whether the space's method answers as a job with progress (not ``interactive``)."""
        return not method_class(get_space(name).method).capabilities.interactive

    # --- interactive requests ------------------------------------------------------------------------------
    async def attribute_now(
        self, name: str, image: Image.Image, k: int, query: str, prompt: str | None = None
    ) -> AttributionResult:
        """An interactive method's result, micro-batched with concurrent requests when the method is batchable (or
        alone when batching is off)."""
        if self.inflight >= self.config.queue_size:
            raise QueueFullError
        self.inflight += 1
        self.metrics.queue_depth.set(self.inflight)
        cancel = threading.Event()  # set when the request times out: its work stops at the next step
        try:
            loop = asyncio.get_running_loop()
            attributor = await loop.run_in_executor(self.model_thread, self.attributor, name)
            work = self._submit(name, attributor, image, k, query, prompt, cancel)
            return await asyncio.wait_for(work, timeout=self.config.timeout_s)
        except TimeoutError:
            cancel.set()
            raise
        finally:
            self.inflight -= 1
            self.metrics.queue_depth.set(self.inflight)

    async def _submit(
        self,
        name: str,
        attributor: Attributor,
        image: Image.Image,
        k: int,
        query: str,
        prompt: str | None,
        cancel: threading.Event,
    ):
        if self.config.micro_batching and attributor.capabilities.batchable:
            if name not in self._batchers:
                self._batchers[name] = MicroBatcher(
                    attributor,
                    self.model_thread,
                    self.config.batch_window_ms / 1000,
                    self.config.max_batch,
                    self.metrics.batch_size.observe,
                )
            return await self._batchers[name].submit(image, k, query, prompt)
        loop = asyncio.get_running_loop()
        self.metrics.batch_size.observe(1)
        run = lambda: attributor.attribute([image], k, [query], prompts=[prompt], cancel=cancel)  # noqa: E731
        return (await loop.run_in_executor(self.model_thread, run))[0]

    # --- jobs (methods that are not interactive) ----------------------------------------------------------------------
    def start_job(self, name: str, image: Image.Image, k: int, query: str, prompt: str | None):
        def work(on_progress, cancel) -> dict:
            attributor = self.attributor(name)
            result = attributor.attribute([image], k, [query], prompts=[prompt], on_progress=on_progress, cancel=cancel)
            return self.public(name, result[0])

        return self.jobs.submit(name, work)

    def public(self, name: str, result: AttributionResult) -> dict:
        """A result as the service answers it: each path relative to the space's image folder (the server's own
        folders are not its clients' business; ``row`` is what ``/v1/images`` serves), else the file's name."""
        attributor = self._attributors[name]  # loaded: it just answered (no load lock taken on the event loop)

        def shown(a) -> str:
            path, root = attributor.training_image(a.row) if a.row >= 0 else (Path(a.path), None)
            if root is not None and str(root):
                relative = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
                if not relative.startswith(".."):
                    return Path(relative).as_posix()
            return Path(a.path).name

        return with_paths(result, shown).to_dict()

    # --- training images -----------------------------------------------------------------------------------
    def training_image(self, name: str, row: int) -> Path:
        """The file of training image ``row`` of a loaded space; never a path outside the space's image folder, and
        nothing for a space that names no image folder (a store whose ``image_root`` is empty).

        Raises:
            IndexError: no such row, no image folder, or a stored path that leads outside the image folder.
        """
        path, root = self.attributor(name).training_image(row)
        if root is None or not str(root):  # no image folder to confine it to: nothing is served
            raise IndexError(row)
        lexical = os.path.normpath(path)
        if os.path.commonpath([lexical, os.path.normpath(root)]) != os.path.normpath(root):
            raise IndexError(row)
        return Path(path)

    def close(self) -> None:
        self.jobs.shutdown()
        self.model_thread.shutdown(wait=False, cancel_futures=True)
