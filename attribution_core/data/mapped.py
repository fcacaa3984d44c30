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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
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


def mapped_scores(xb: np.ndarray, xq: np.ndarray, block: int = 2048) -> np.ndarray:
    """Exact scores ``xq @ xb.T`` [nq, nb] of float32 queries [nq, d] against every row of ``xb`` [nb, d] (C-contiguous
    float32, typically memory-mapped), without a private copy of ``xb``.

    Why not ``xb @ q``: a FAISS flat index keeps its vectors after a 45-byte header, so a memory map of them is not
    4-byte aligned, and numpy then makes an aligned copy of the whole matrix before calling BLAS — 5 GB of private
    memory and 1.2–9 s for one query over 1M × 1280 here, 19 s for four queries, against 0.23 s for the same product
    over an aligned map (measured on this project's 2-core machine). One query is scored by FAISS's own
    inner-product kernel (``fvec_inner_products_ny``, unaligned loads, no copy), the rows split across threads
    (FAISS releases the GIL): 0.21–0.29 s. A batch is scored ``block`` rows at a time, each block copied into one
    small aligned buffer when ``xb`` is misaligned, so one pass over the rows serves every query (8 queries 1.2 s,
    64 queries 2.0 s). Neither numpy nor FAISS has a call that gives every score of a misaligned matrix; this is it.
    """
    xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(len(xq), -1)
    nb, d = xb.shape
    out = np.empty((len(xq), nb), dtype=np.float32)
    if nb == 0:
        return out
    if len(xq) == 1 and xb.dtype == np.float32 and xb.flags.c_contiguous:
        parts = max(1, min(faiss.omp_get_max_threads(), nb // block))
        bounds = np.linspace(0, nb, parts + 1).astype(np.int64)

        def score(lo: int, hi: int) -> None:
            faiss.fvec_inner_products_ny(
                faiss.swig_ptr(out[0, lo:hi]), faiss.swig_ptr(xq[0]), faiss.swig_ptr(xb[lo:hi]), d, int(hi - lo)
            )

        if parts == 1:
            score(0, nb)
        else:
            with ThreadPoolExecutor(parts) as pool:
                list(pool.map(score, bounds[:-1], bounds[1:]))
        return out
    buf = None if xb.flags.aligned else np.empty((block, d), dtype=np.float32)
    for start in range(0, nb, block):
        rows = xb[start : start + block]
        if buf is not None:
            np.copyto(buf[: len(rows)], rows)
            rows = buf[: len(rows)]
        np.matmul(xq, rows.T, out=out[:, start : start + len(rows)])
    return out


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
