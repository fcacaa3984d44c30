"""IVF-PQ indexes for stores larger than RAM (docs/method.md §3): trained once on a sample, filled shard by shard
straight from the memory-mapped store, and merged into on-disk inverted lists (FAISS ``OnDiskInvertedLists``
through ``faiss.contrib.ondisk.merge_ondisk``), which are memory-mapped at query time.

Building never holds more than one shard of vectors in memory. Shards are kept in ``<index>.parts/`` until the
merge, so an interrupted build resumes at the first missing shard. Candidates found by the PQ codes are rescored
before influence is computed: exactly, from the float32 store through the head (``rescore: "store"``, the
default), or from a float16 copy of the head-mapped vectors written beside the index during the build
(``rescore: "float16"``, ``<index>.rescore.npy``): half the bytes of a float32 store of the same dimension, so that
the rows candidates are read from can stay in the page cache of a machine with less memory than the store.
Scores from float16 vectors differ from float32 ones by at most Σ|q_i|·|x_i|·2⁻¹¹ ≤ 2⁻¹¹ for unit vectors.

The float16 copy is laid out in inverted-list order (``<index>.slots.npy``: where each store row sits in it, held
in RAM at query time, 4 bytes a row). A query's candidates come from the few lists it probes, so their rows lie
close together in the copy and a copy read from disk needs fewer, longer reads than in store order, where the
rows of one list are scattered over the whole file (on the 10M benchmark's queries: 391 page runs and 457 pages
per query against 1,000 runs and 658 pages; more where the store's order has nothing to do with its clusters, as
in a crawl). FAISS keeps each list's codes together the same way; it has no such layout for rescoring vectors.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

from ..core.fileio import atomic_path
from ..core.progress import Tracker, as_tracker
from ..data.mapped import chunked_scores, gather_rows, map_npy
from ..data.store import FeatureStore

log = logging.getLogger(__name__)

SHARD_ROWS = 1_000_000
TRAIN_PER_LIST = 64  # training vectors per inverted list (FAISS wants ≥ 39)
RERANK = 10  # candidates rescored exactly per result wanted (params "rerank")
RESCORE_SOURCES = ("store", "float16")  # params "rescore": where candidates' vectors are read from


#: Rows below which IVF-PQ has no default factory: FAISS wants 39 training vectors per PQ centroid (2^8 of them).
MIN_DEFAULT_ROWS = 39 * 256


def default_ivfpq_params(n: int, d: int) -> dict:
    """``IVF{nlist},PQ{m}``: nlist ≈ 4·√n (at most n/39), m = d/8 sub-quantisers of 8 bits (d/8 bytes a vector);
    no factory below MIN_DEFAULT_ROWS rows (an index kind for stores larger than RAM has no default that trains
    well on fewer)."""
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39 if n >= 39 else 1))
    m = next(m for m in (d // 8, d // 4, d // 2, d) if m >= 1 and d % m == 0)
    return {
        "factory": f"IVF{nlist},PQ{m}" if n >= MIN_DEFAULT_ROWS else None,
        "nprobe": min(nlist, max(16, nlist // 16)),
        "shard_rows": SHARD_ROWS,
        "rescore": "store",
    }


def rescore_copy_path(faiss_path: Path) -> Path:
    """The float16 copy of the head-mapped vectors beside an index built with ``rescore: "float16"``."""
    return faiss_path.with_suffix(".rescore.npy")


def slots_path(faiss_path: Path) -> Path:
    """Where each store row sits in the list-ordered float16 copy."""
    return faiss_path.with_suffix(".slots.npy")


@dataclass(frozen=True)
class RescoreCopy:
    """The float16 copy of the mapped vectors beside an IVF-PQ index (memory-mapped) and, when it is laid out in
    inverted-list order, the slot of each store row in it (in RAM; a copy in store order has none)."""

    vectors: np.ndarray  # [n, d] float16
    slots: np.ndarray | None  # [n] row -> position in ``vectors``

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Float32 vectors [m, d] of store rows ``rows``, their pages read together."""
        at = rows if self.slots is None else self.slots[rows]
        return gather_rows(self.vectors, at).astype(np.float32)


def build_ondisk(
    store: FeatureStore,
    map_rows: Callable[[np.ndarray], np.ndarray],
    faiss_path: Path,
    params: dict,
    progress: bool | Tracker = True,
) -> faiss.Index:
    """Build ``faiss_path`` (+ ``.ivfdata`` beside it) over every row of ``store`` mapped by ``map_rows``."""
    n, d = len(store), int(map_rows(np.array([0])).shape[1])
    parts = faiss_path.with_suffix(".parts")
    parts.mkdir(parents=True, exist_ok=True)
    trained = parts / "trained.faiss"
    if not trained.is_file():
        index = faiss.index_factory(d, params["factory"], faiss.METRIC_INNER_PRODUCT)
        nlist = faiss.extract_index_ivf(index).nlist
        rng = np.random.default_rng(0)
        wanted = max(TRAIN_PER_LIST * nlist, 39 * 256)  # the coarse lists, and PQ's 256 centroids per sub-vector
        sample = np.sort(rng.choice(n, min(n, wanted), replace=False))
        log.info("training %s on %d of %d vectors", params["factory"], len(sample), n)
        vectors = np.ascontiguousarray(map_rows(sample))
        with faiss_output_to_debug():
            index.train(vectors)
        with atomic_path(trained) as tmp:
            faiss.write_index(index, str(tmp))
    rows = int(params.get("shard_rows", SHARD_ROWS))
    copy = _open_rescore_copy(parts / "rescore.npy", n, d) if params.get("rescore") == "float16" else None
    shards = []
    for s, start in enumerate(as_tracker(progress).track(range(0, n, rows), "fill shards", unit="shard")):
        shard = parts / f"shard_{s:05d}.faiss"
        shards.append(str(shard))
        if shard.is_file():
            continue  # done by an earlier, interrupted run
        index = faiss.read_index(str(trained))
        for i in range(start, min(n, start + rows), 65536):
            ids = np.arange(i, min(n, start + rows, i + 65536), dtype=np.int64)
            vectors = np.ascontiguousarray(map_rows(ids))
            index.add_with_ids(vectors, ids)
            if copy is not None:
                copy[ids[0] : ids[-1] + 1] = vectors
        if copy is not None:
            copy.flush()  # the shard's rows of the copy are on disk before the shard counts as done
        with atomic_path(shard) as tmp:
            faiss.write_index(index, str(tmp))
    if copy is not None:
        del copy
    else:
        rescore_copy_path(faiss_path).unlink(missing_ok=True)  # an earlier build's copy: not this index's
        slots_path(faiss_path).unlink(missing_ok=True)
    index = faiss.read_index(str(trained))
    data = faiss_path.with_suffix(".ivfdata")
    data.unlink(missing_ok=True)
    with faiss_output_to_debug():
        merge_ondisk(index, shards, str(data))
    if params.get("rescore") == "float16":
        _write_list_ordered_copy(parts / "rescore.npy", list_order(index), faiss_path, progress)
    with atomic_path(faiss_path) as tmp:
        faiss.write_index(index, str(tmp))
    shutil.rmtree(parts, ignore_errors=True)
    return read_ondisk(faiss_path)


def list_order(index: faiss.Index) -> np.ndarray:
    """The ids (store rows) of an IVF index, inverted list after inverted list [ntotal]."""
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    sizes = [lists.list_size(i) for i in range(ivf.nlist)]
    return np.concatenate(
        [faiss.rev_swig_ptr(lists.get_ids(i), size).copy() for i, size in enumerate(sizes) if size]
        or [np.empty(0, dtype=np.int64)]
    )


def _write_list_ordered_copy(row_ordered: Path, order: np.ndarray, faiss_path: Path, progress: bool | Tracker) -> None:
    """Write the float16 copy beside ``faiss_path`` in inverted-list order (row ``order[j]`` at position ``j``) from
    the copy filled in store order, and the slot of each row. The index file is written only after both, so an
    interrupted build is resumed, not loaded; a copy left without its slots (read in store order) fails the spot
    check on load, which rebuilds."""
    source = np.load(row_ordered, mmap_mode="r")
    n, d = source.shape
    slots = np.empty(n, dtype=np.uint32 if n < 2**32 else np.int64)
    slots[order] = np.arange(n, dtype=slots.dtype)
    slots_path(faiss_path).unlink(missing_ok=True)
    with atomic_path(rescore_copy_path(faiss_path), ".npy") as tmp:
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, d))
        chunk = 65536
        for j in as_tracker(progress).track(range(0, n, chunk), "list-ordered copy", unit="chunk"):
            target[j : j + chunk] = gather_rows(source, order[j : j + chunk])
        target.flush()
        del target
    with atomic_path(slots_path(faiss_path), ".npy") as tmp:
        np.save(tmp, slots)


def _open_rescore_copy(path: Path, n: int, d: int) -> np.ndarray:
    """The float16 copy being filled (reopened by a resumed build, whose finished shards' rows are kept)."""
    if path.is_file():
        copy = np.load(path, mmap_mode="r+")
        if copy.shape == (n, d) and copy.dtype == np.float16:
            return copy
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))


def read_rescore_copy(faiss_path: Path, n: int, d: int) -> RescoreCopy | None:
    """The float16 copy beside an index (memory-mapped) and its slots (read into RAM; a copy written before the
    list-ordered layout has none and is read in store order); None when the copy is missing or of another shape,
    or its slots are of another shape or point outside it."""
    vectors = map_npy(rescore_copy_path(faiss_path), (n, d), np.float16)
    if vectors is None:
        return None
    if not slots_path(faiss_path).is_file():
        return RescoreCopy(vectors, None)
    try:
        slots = np.load(slots_path(faiss_path))
    except (OSError, ValueError):
        return None
    if slots.shape != (n,) or slots.dtype.kind not in "iu" or (n and int(slots.max()) >= n):
        return None
    return RescoreCopy(vectors, slots)


def read_ondisk(faiss_path: Path) -> faiss.Index:
    """The index with its inverted lists memory-mapped from the ``.ivfdata`` file beside it."""
    with faiss_output_to_debug():
        return faiss.read_index(str(faiss_path), faiss.IO_FLAG_ONDISK_SAME_DIR)


@contextlib.contextmanager
def faiss_output_to_debug() -> Iterator[None]:
    """FAISS's own C++ messages (k-means warnings, notes about on-disk file names) go to the debug log instead of
    the user's terminal: the process's stdout and stderr are pointed at a temporary file for the call."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 1)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            caught.seek(0)
            text = caught.read().decode(errors="replace").strip()
            if text:
                log.debug("FAISS said: %s", text)


def rescored_search(
    index: faiss.Index, q: np.ndarray, k: int, threshold: Callable[[float], float], rescore, rerank: int = RERANK
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Top-``k`` by exact score among the index's ``rerank``·k best candidates by PQ code, the candidate list grown
    (×4) until its lowest exact score is at or below the calibrator's mass threshold; returns (D, I, mass scores,
    max score). PQ scores are coarse: many near-equal neighbours swap places, so the exact top-k is looked for
    among more candidates than k (FAISS's ``IndexRefine`` k_factor does the same)."""
    n = index.ntotal
    kk = min(n, max(k * max(1, rerank), 64))
    while True:
        _, rows = index.search(q[None], kk)
        rows = rows[0][rows[0] >= 0]
        order = np.argsort(rows)
        exact = np.empty(len(rows), dtype=np.float32)
        exact[order] = chunked_scores(rescore, rows[order], q)
        s_max = float(exact.max())
        if exact.min() <= threshold(s_max) or kk >= n or len(rows) < kk:
            break
        kk = min(n, kk * 4)
    top = np.lexsort((rows, -exact))[:k]  # ties: the lower row first, as the flat scan lists them
    return exact[top], rows[top], exact[exact > threshold(s_max)], s_max
