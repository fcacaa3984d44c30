"""Long requests (attribution by unlearning) as jobs: ``POST`` returns an id at once, ``GET /v1/jobs/{id}`` gives
progress and, when done, the result, so no request holds a connection for a minute.

Jobs run one at a time on their own worker thread (a job uses every core; two would only slow each other), and
feature-space requests keep being answered meanwhile on the service's other worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AttributionError
from ..core.progress import CancelFlag, Cancelled, Progress

log = logging.getLogger(__name__)


class JobsFullError(Exception):
    """Every kept job is still unfinished."""


@dataclass
class Job:
    id: str
    space: str
    status: str = "queued"  # queued | running | done | failed | cancelled
    stage: str = ""
    done: int = 0
    total: int = 0
    result: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "space": self.space,
            "status": self.status,
            "progress": {"stage": self.stage, "done": self.done, "total": self.total},
            **({"result": self.result} if self.result is not None else {}),
            **({"error": self.error} if self.error is not None else {}),
        }

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


class JobQueue:
    """At most ``capacity`` jobs kept; the oldest finished ones are forgotten first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="attribution-job")

    def submit(self, space: str, work: Callable[[Callable[[Progress], None], CancelFlag], dict]) -> Job:
        """Queue ``work(on_progress, cancel) -> result dict``.

        Raises:
            JobsFullError: ``capacity`` unfinished jobs already.
        """
        with self._lock:
            for key in [k for k, j in self._jobs.items() if j.finished]:
                if len(self._jobs) < self.capacity:
                    break
                del self._jobs[key]
            if len(self._jobs) >= self.capacity:
                raise JobsFullError
            job = Job(uuid.uuid4().hex, space)
            self._jobs[job.id] = job
        self._worker.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work) -> None:
        if job.cancel.is_set():
            job.status = "cancelled"
            return
        job.status = "running"

        def on_progress(p: Progress) -> None:
            job.stage, job.done, job.total = p.stage, p.done, p.total

        try:
            job.result = work(on_progress, job.cancel)
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
        except AttributionError as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # a bug: the job fails with its type; the server log has the traceback
            log.exception("job %s failed", job.id)
            job.error, job.status = f"internal error ({type(exc).__name__})", "failed"

    def shutdown(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._worker.shutdown(wait=False, cancel_futures=True)
