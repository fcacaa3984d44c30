"""Memory-mapped reads: the prefetching gather returns exactly what plain indexing returns, whatever the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attribution_core.data import mapped


@pytest.fixture
def saved(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3,000 × 37 float32 array (rows of 148 bytes: rows straddle page boundaries) and its memory map."""
    array = np.random.default_rng(0).standard_normal((3000, 37)).astype(np.float32)
    np.save(tmp_path / "feats.npy", array)
    return array, np.load(tmp_path / "feats.npy", mmap_mode="r")


@pytest.mark.parametrize(
    "rows",
    [
        [5, 3, 3, 2999, 0, 1, 2, 500],  # unsorted, repeated, first and last
        list(range(3000)),  # every row: one contiguous run
        [],
        [1234],
    ],
)
def test_gather_equals_indexing(saved, rows):
    array, mapped_array = saved
    rows = np.array(rows, dtype=np.int64)
    np.testing.assert_array_equal(mapped.gather_rows(mapped_array, rows), array[rows])
    np.testing.assert_array_equal(mapped.gather_rows(array, rows), array[rows])  # in RAM: plain indexing


def test_gather_from_a_view_of_the_map(saved):
    """A slice of the map starts inside the file: the prefetch must advise that slice's pages, not the file's start."""
    array, mapped_array = saved
    view = mapped_array[1000:2000]
    np.testing.assert_array_equal(mapped.gather_rows(view, np.array([0, 999, 10])), array[[1000, 1999, 1010]])


def test_neighbouring_rows_are_advised_in_one_call():
    """Rows whose pages touch are advised together (a block of rows costs one system call); every range starts on
    a page and covers its rows."""
    offset, row_bytes, page = 128, 148, 4096
    runs = mapped.page_runs(offset, row_bytes, np.arange(100, 2000), page)
    assert len(runs) == 1
    start, length = runs[0]
    assert start % page == 0 and start <= offset + 100 * row_bytes and start + length >= offset + 2000 * row_bytes
    far = mapped.page_runs(offset, row_bytes, np.array([2999, 0, 1]), page)  # 440 kB apart: two ranges, in order
    assert len(far) == 2 and far[0][0] == 0 and far[1][0] <= offset + 2999 * row_bytes < far[1][0] + far[1][1]
    assert mapped.page_runs(offset, row_bytes, np.array([], dtype=np.int64), page) == []


def test_flat_index_scans_the_same_vectors_through_numpy_map(tmp_path):
    """A saved flat index is scanned through a numpy memory map of its file's tail: the same vectors as FAISS's
    own, and the same answers."""
    import faiss

    from attribution_core.attribute.calibration import Calibrator
    from attribution_core.data.store import write_store
    from attribution_core.data.synthetic import clustered_features
    from attribution_core.heads import identity_heads
    from attribution_core.index import load_index

    xb = clustered_features(500, 16, 10, seed=1)
    store = write_store(tmp_path / "s", xb, [f"{i}.jpg" for i in range(500)], "test")
    load_index(store, identity_heads(16), "flat", progress=False)
    index, built = load_index(store, identity_heads(16), "flat", progress=False)
    assert not built and isinstance(index.loaded.xb, np.memmap)
    own = faiss.rev_swig_ptr(index.index.get_xb(), 500 * 16).reshape(500, 16)
    np.testing.assert_array_equal(np.asarray(index.loaded.xb), own)
    found = index.search(xb[7], 5, Calibrator(16.1587, -38.5))
    assert found.I[0] == 7 and abs(found.D[0] - 1.0) < 1e-5


def test_scores_over_a_misaligned_map_need_no_private_copy(tmp_path):
    """A FAISS flat index keeps its vectors after a 45-byte header, so their memory map is misaligned: every score
    of one query and of a batch equals the aligned product, and scoring never copies the matrix (numpy's own
    product made a private copy of the whole map first: 5 GB for a 1M × 1280 index)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    xb = rng.normal(size=(40_000, 64)).astype(np.float32)  # 10 MB
    path = tmp_path / "index.bin"
    path.write_bytes(b"h" * 45 + xb.tobytes())
    mapped_xb = mapped.map_tail(path, xb.shape)
    assert not mapped_xb.flags.aligned
    xq = rng.normal(size=(3, 64)).astype(np.float32)
    tracemalloc.start()
    one = mapped.mapped_scores(mapped_xb, xq[:1])
    batch = mapped.mapped_scores(mapped_xb, xq, block=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(one, xq[:1] @ xb.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(batch, xq @ xb.T, rtol=1e-5, atol=1e-4)
    assert peak < xb.nbytes / 4, f"scoring allocated {peak / 1e6:.1f} MB for a {xb.nbytes / 1e6:.1f} MB matrix"
    assert mapped.mapped_scores(mapped_xb[:0], xq).shape == (3, 0)
