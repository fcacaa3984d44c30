"""Resident memory of a process, as the benchmarks report it (Linux ``/proc``)."""

from __future__ import annotations

import resource
from pathlib import Path


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory (MiB): total ``VmRSS``, split into anonymous (``RssAnon``: a private copy) and file-backed
    (``RssFile``: shared page cache, reclaimable) pages."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
