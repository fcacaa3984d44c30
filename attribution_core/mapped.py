"""Reading memory-mapped arrays without waiting on the disk one page at a time.

Gathering scattered rows of a memory-mapped file (``feats[rows]``) faults their pages in one after another, each
fault one synchronous disk read: 1,000 rows of a 5 GB store that were not in the page cache took 3.4–8 s here.
Advising the kernel first (``madvise(MADV_WILLNEED)`` over each row's pages) queues all the reads at once, and the
gather then finds them done or in flight: 32–97 ms for the same rows (measured on this project's 2-core machine;
``benchmarks/ivfpq_scale.py`` shows the effect on search latency). Neither numpy nor FAISS offers a prefetching
gather for a numpy memmap; the standard library's ``mmap.madvise`` and ``os.posix_fadvise`` are all it takes, which
is why these few lines are written here.

(Reading a whole index file ahead at open, ``posix_fadvise(WILLNEED)``, was tried too: the first answer of a cold
1M × 1280 flat index took 11.6 s with it and 11.7–13.0 s without, no clear gain, so it is not done.)
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable
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


def chunked_scores(
    vectors_of: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, q: np.ndarray, chunk: int = 16384
) -> np.ndarray:
    """``vectors_of(rows) @ q`` [len(rows)], ``chunk`` rows at a time: memory stays bounded (a query whose mass
    covers most of a 1M × 1280 store would otherwise gather a 5 GB copy of it at once)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty(0, dtype=np.float32)
    return np.concatenate([vectors_of(rows[i : i + chunk]) @ q for i in range(0, len(rows), chunk)])


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


def map_npy(path: Path | str, shape: tuple[int, ...], dtype: type) -> np.ndarray | None:
    """A ``.npy`` file memory-mapped read-only, or None when it is missing, unreadable or not of ``shape``/``dtype``."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return array if array.shape == tuple(shape) and array.dtype == dtype else None


def map_tail(path: Path | str, shape: tuple[int, int], dtype: type = np.float32) -> np.memmap | None:
    """The last ``shape`` elements of a file, memory-mapped read-only by numpy (None when the file is smaller).

    A FAISS flat index stores its vectors at the end of its file. FAISS's own mapping (``IO_FLAG_MMAP_IFC``) was
    measured 25× slower than a numpy memmap for a first, cold sequential scan here (6.8 s against 0.27 s for the
    first 500 MB of a 5 GB index: its page faults came one page at a time), so the flat path scans this mapping of
    the same bytes instead (attribution_core/index/search.py checks that both hold the same vectors)."""
    count = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        offset = Path(path).stat().st_size - count
    except OSError:
        return None
    if offset < 0 or count == 0:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
