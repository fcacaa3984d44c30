"""Reading memory-mapped arrays without waiting on the disk one page at a time.

Gathering scattered rows of a memory-mapped file (``feats[rows]``) faults their pages in one after another, each
fault one synchronous disk read: 1,000 rows of a 5 GB store that were not in the page cache took 3.4–8 s here.
Advising the kernel first (``madvise(MADV_WILLNEED)`` over each row's pages) queues all the reads at once, and the
gather then finds them done or in flight: 32–97 ms for the same rows (measured on this project's 2-core machine;
``benchmarks/ivfpq_scale.py`` shows the effect on search latency). Neither numpy nor FAISS offers a prefetching
gather for a numpy memmap; the standard library's ``mmap.madvise`` and ``os.posix_fadvise`` are all it takes, which
is why these few lines are written here.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_WILLNEED = getattr(mmap, "MADV_WILLNEED", None)


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` (a copy in RAM), with the rows' pages prefetched together when ``array`` is memory-mapped.

    Args:
        array: a C-contiguous 2-D array; a ``numpy.memmap`` (as ``np.load(..., mmap_mode="r")`` gives) is
            prefetched, anything else is simply indexed.
        rows: row ids; sorted ones read the file in order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    prefetch_rows(array, rows)
    return np.asarray(array[rows])


def prefetch_rows(array: np.ndarray, rows: np.ndarray) -> None:
    """Ask the kernel to read the pages of ``array[rows]`` now, without waiting for them (no-op in RAM)."""
    mm = getattr(array, "_mmap", None)
    if mm is None or _WILLNEED is None or len(rows) == 0 or array.ndim != 2 or not array.flags.c_contiguous:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data  # where the mapping starts
    ranges = page_runs(array.ctypes.data - base, array.shape[1] * array.itemsize, rows)
    try:
        for start, length in ranges:
            mm.madvise(_WILLNEED, start, length)
    except (OSError, ValueError) as exc:  # advice only: reading still works without it
        log.debug("madvise(WILLNEED) refused: %s", exc)


def page_runs(offset: int, row_bytes: int, rows: np.ndarray, page: int = mmap.PAGESIZE) -> list[tuple[int, int]]:
    """(start, length) byte ranges, starts page-aligned, covering rows ``rows`` of ``row_bytes`` each that begin
    ``offset`` bytes into a mapping; rows whose pages touch are merged into one range (one system call)."""
    if len(rows) == 0:
        return []
    starts = offset + np.sort(np.asarray(rows, dtype=np.int64)) * row_bytes
    ends = starts + row_bytes
    starts -= starts % page
    new_run = np.ones(len(starts), dtype=bool)
    new_run[1:] = starts[1:] > ends[:-1]
    run_starts = starts[new_run]
    run_ends = np.maximum.reduceat(ends, np.flatnonzero(new_run))
    return [(int(s), int(e - s)) for s, e in zip(run_starts, run_ends, strict=True)]


def prefetch_file(path: Path | str) -> threading.Thread | None:
    """Start reading a whole file into the page cache in the background (``posix_fadvise(WILLNEED)``), so that a
    first full scan of a memory-mapped index does not wait on the disk page by page. Returns the thread (daemon),
    or None where the platform has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return None

    def advise() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError as exc:
            log.debug("posix_fadvise(WILLNEED) refused for %s: %s", path, exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=advise, name="prefetch-file", daemon=True)
    thread.start()
    return thread


def physical_memory() -> int:
    """Bytes of physical memory (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0
