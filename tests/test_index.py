"""FAISS indexes: exact flat search, ANN recall, and rebuilding (never trusting) a stale index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_core.attribute.calibration import Calibrator
from attribution_core.core.errors import AttributionError
from attribution_core.data.store import write_store
from attribution_core.data.synthetic import clustered_features
from attribution_core.heads import identity_heads, load_heads
from attribution_core.index import build_index, load_index

from .helpers import random_unit, released_heads


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    return clustered_features(n, d, n_clusters=50, seed=seed, spread=0.5)


def test_flat_is_exact_and_ivf_recalls(tmp_path) -> None:
    xb = clustered(5000, 32)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(5000)], "test")
    heads = identity_heads(32)
    flat, built = load_index(store, heads, "flat", progress=False)
    ivf, _ = load_index(store, heads, "ivf", progress=False)
    cal = Calibrator(16.1587, -38.5)
    recalls = []
    rng = np.random.default_rng(1)
    queries = xb[rng.integers(0, 5000, 20)] + 0.3 * random_unit(20, 32, seed=3)
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        truth = np.argsort(-(xb @ q))[:100]
        np.testing.assert_array_equal(flat.search(q, 100, cal).I, truth)
        recalls.append(len(set(ivf.search(q, 100, cal).I) & set(truth)) / 100)
    assert built and np.mean(recalls) >= 0.95


@pytest.mark.parametrize("kind", ["sq8", "fp16"])
@pytest.mark.parametrize(
    "calibrator",
    [Calibrator(16.1587, -38.5), Calibrator(60.0, -500.0), Calibrator(1.0, -50.0), Calibrator(8.0, 2.0)],
)  # narrow and wide mass windows, one that covers every image, and b >= 0 (all scores needed)
@pytest.mark.parametrize("first_scan", ["covers all", "grown"])
def test_compressed_exact_kinds_give_the_flat_answers(tmp_path, monkeypatch, kind, calibrator, first_scan) -> None:
    """Scanning 8-bit or float16 codes, then rescoring within the error bound, gives the float32 scan's top-K,
    scores and influences: whatever the calibrator's mass window (narrow, wide, or every image), and whether the
    first scan's candidates suffice or the scan must be grown."""
    from attribution_core.index import compressed, linear_scores

    if first_scan == "grown":
        monkeypatch.setattr(compressed, "CANDIDATES_PER_RESULT", 1)
        monkeypatch.setattr(compressed, "MIN_CANDIDATES", 8)
        monkeypatch.setattr(linear_scores, "CHUNK", 256)  # the whole store scored as one float32 run, not gathered
    xb = clustered(4000, 48, seed=2)
    heads = load_heads_from(tmp_path, 48)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(4000)], "test")
    flat, _ = load_index(store, heads, "flat", progress=False)
    compressed, built = load_index(store, heads, kind, progress=False)
    again, rebuilt = load_index(store, heads, kind, progress=False)  # the saved one passes its spot check
    assert built and not rebuilt
    queries = xb[[3, 900, 2500]] + 0.4 * random_unit(3, 48, seed=5)
    mapped = heads.synth_head.map_numpy(queries)
    for q in mapped:
        want = flat.search(q, 50, calibrator)
        for index in (compressed, again):
            got = index.search(q, 50, calibrator)
            np.testing.assert_array_equal(got.I, want.I)
            np.testing.assert_allclose(got.D, want.D, atol=1e-6)
            np.testing.assert_allclose(got.influence, want.influence, rtol=1e-4, atol=1e-12)
            assert got.remaining_influence == pytest.approx(want.remaining_influence, abs=1e-6)
            assert got.mass_count == want.mass_count
            if calibrator.b < 0 and want.mass_count < 4000:
                assert 50 <= index.rescored < 4000  # only the candidates within the bound
            elif calibrator.b < 0:
                assert index.rescored == 4000  # every image has mass: all scored, in order


@pytest.mark.parametrize("kind", ["sq8", "fp16"])
@pytest.mark.parametrize("d", [48, 40])  # FAISS scans 8-bit codes with integer SIMD only when d % 16 == 0
def test_compressed_scores_stay_within_the_error_bound(kind, d) -> None:
    """Every approximate score the scan gives is within δ(q) of the exact float32 score, for queries near the data
    and far from it (the bound the exact rescoring rests on)."""
    from attribution_core.index.compressed import build_compressed, scan_query

    xb = clustered(2000, d, seed=9)
    index, params = build_compressed(xb, kind)
    queries = np.concatenate([xb[:5] + 0.2 * random_unit(5, d, seed=1), random_unit(5, d, seed=2)])
    slack = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        q = q.astype(np.float32)
        q_scan, alpha, shift, delta = scan_query(kind, q, params)
        approx, rows = index.search(q_scan[None], 2000)
        gap = np.abs(approx[0].astype(np.float64) / alpha + shift - xb[rows[0]] @ q)
        assert gap.max() <= delta
        slack.append(gap.max() / delta)
    assert max(slack) > 0.05  # the bound is not vacuous: the worst row uses a real share of it


def test_compressed_index_scores_candidates_from_row_norms_and_rebuilds_when_they_are_damaged(
    tmp_path, caplog, monkeypatch
) -> None:
    """Under a linear head a compressed index keeps each store row's norm under the head beside it and scores a
    candidate as (x·Wᵀq + b·q)/‖Wx + b‖ (no d×d product per row): the same scores as mapping the row, for scattered
    rows and for the whole store in file order; a damaged norms file is noticed by the spot check on load and the
    index rebuilt."""
    from attribution_core.index import linear_scores
    from attribution_core.index.linear_scores import norms_path

    monkeypatch.setattr(linear_scores, "CHUNK", 300)  # the whole store is a run longer than one chunk

    xb = clustered(2000, 32, seed=6)
    heads = load_heads_from(tmp_path, 32)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(2000)], "test")
    index, _ = load_index(store, heads, "sq8", progress=False)
    rows = np.arange(0, 2000, 7)
    q = heads.synth_head.map_numpy(xb[[11]] + 0.1)[0]
    np.testing.assert_allclose(index.loaded.score_rows(rows, q), heads.real_head.map_numpy(xb[rows]) @ q, atol=1e-6)
    everything = np.arange(2000)
    np.testing.assert_allclose(index.loaded.score_rows(everything, q), heads.real_head.map_numpy(xb) @ q, atol=1e-6)
    norms = np.load(norms_path(index.path), mmap_mode="r+")
    norms[0] *= 2  # row 0 is spot-checked
    norms.flush()
    del norms
    _, built = load_index(store, heads, "sq8", progress=False)
    assert built and "row norms do not match" in caplog.text


def test_compressed_index_of_an_older_layout_is_rebuilt(tmp_path, caplog) -> None:
    """An 8-bit index whose record lacks the per-dimension layout (written before signed direct codes) is rebuilt,
    with a warning that says why, never searched with the wrong decoding."""
    import json

    xb = clustered(1000, 16)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(1000)], "test")
    heads = identity_heads(16)
    load_index(store, heads, "sq8", progress=False)
    meta_path = next((tmp_path / "s" / "index").glob("sq8-*.json"))
    record = json.loads(meta_path.read_text())
    for key in ("scale", "offset", "amax"):
        del record["params"][key]
    meta_path.write_text(json.dumps(record))
    index, built = load_index(store, heads, "sq8", progress=False)
    assert built and "older layout" in caplog.text
    q = xb[7]
    np.testing.assert_array_equal(index.search(q, 10, Calibrator(16.1587, -38.5)).I, np.argsort(-(xb @ q))[:10])


def test_ivfpq_on_disk_is_built_in_shards_resumes_and_rescores_exactly(tmp_path, monkeypatch) -> None:
    """IVF-PQ: trained once, filled shard by shard from the store, merged into memory-mapped on-disk lists; an
    interrupted build resumes at the first missing shard; listed scores are exact (rescored from the store)."""
    import faiss

    from attribution_core.index import ondisk

    xb = clustered(6000, 32, seed=4)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(6000)], "test")
    heads = identity_heads(32)
    params = {"factory": "IVF64,PQ8", "shard_rows": 2000, "nprobe": 64}
    real_write = faiss.write_index
    written = []

    def interrupt_after_first_shard(index, path):
        if "shard_00001" in str(path):
            raise KeyboardInterrupt
        written.append(str(path))
        return real_write(index, path)

    monkeypatch.setattr(ondisk.faiss, "write_index", interrupt_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, heads, "ivfpq", params, progress=False)
    monkeypatch.setattr(ondisk.faiss, "write_index", real_write)
    parts = sorted(p.name for p in (tmp_path / "s" / "index").glob("*.parts/*.faiss"))
    assert parts == ["shard_00000.faiss", "trained.faiss"]  # kept for the resumed build
    index = build_index(store, heads, "ivfpq", params, progress=False)
    assert index.ntotal == 6000
    assert isinstance(
        faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.index).invlists), faiss.OnDiskInvertedLists
    )
    assert not list((tmp_path / "s" / "index").glob("*.parts"))  # merged: shards removed
    flat, _ = load_index(store, heads, "flat", progress=False)
    cal = Calibrator(16.1587, -38.5)
    queries = xb[[10, 3000, 5999]] + 0.2 * random_unit(3, 32, seed=9)
    recalls = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        got, want = index.search(q, 20, cal), flat.search(q, 20, cal)
        np.testing.assert_allclose(got.D, xb[got.I] @ q, atol=1e-5)  # listed scores are exact, not PQ's
        recalls.append(len(set(got.I) & set(want.I)) / 20)
    assert np.mean(recalls) >= 0.9
    again, built = load_index(store, heads, "ivfpq", progress=False)
    assert not built and again.ntotal == 6000
    # nprobe and rerank are query-time: set on the saved index, never a rebuild; a build parameter rebuilds
    narrow, built = load_index(store, heads, "ivfpq", progress=False, params={"nprobe": 1, "rerank": 1})
    assert not built and faiss.extract_index_ivf(narrow.index).nprobe == 1 and narrow.loaded.params["rerank"] == 1
    spread = random_unit(5, 32, seed=3)  # directions whose neighbours lie in many lists, not in one cluster

    def recall(ix):
        return np.mean([len(set(ix.search(q, 20, cal).I) & set(flat.search(q, 20, cal).I)) / 20 for q in spread])

    assert recall(narrow) < recall(again)  # the knob acts: one of 64 lists finds less
    _, built = load_index(store, heads, "ivfpq", progress=False, params={"factory": "IVF32,PQ8", "shard_rows": 2000})
    assert built


def test_ivfpq_rescored_from_a_float16_copy(tmp_path, monkeypatch) -> None:
    """``rescore: float16``: a float16 copy of the mapped vectors is written beside the index (also across an
    interrupted build), laid out list by list so that a query's candidates lie close together in it; candidates
    are rescored from it (scores within 2^-11 of exact, the flat top-K found); a damaged copy rebuilds the index
    with the parameters it was built with; going back to the store removes the copy."""
    import faiss

    from attribution_core.data.mapped import page_runs
    from attribution_core.index import ondisk

    xb = clustered(6000, 32, seed=5)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(6000)], "test")
    heads = identity_heads(32)
    params = {"factory": "IVF64,PQ8", "shard_rows": 2000, "nprobe": 64, "rescore": "float16"}
    real_write = faiss.write_index

    def interrupt_at_second_shard(index, path):
        if "shard_00001" in str(path):
            raise KeyboardInterrupt
        return real_write(index, path)

    monkeypatch.setattr(ondisk.faiss, "write_index", interrupt_at_second_shard)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, heads, "ivfpq", params, progress=False)
    monkeypatch.setattr(ondisk.faiss, "write_index", real_write)
    index = build_index(store, heads, "ivfpq", params, progress=False)  # resumed: shard 0's rows were kept
    copy_path = ondisk.rescore_copy_path(index.path)
    copy, slots = np.load(copy_path), np.load(ondisk.slots_path(index.path))
    assert copy.dtype == np.float16 and copy.shape == (6000, 32)
    np.testing.assert_allclose(copy[slots].astype(np.float32), xb, atol=2**-11)
    np.testing.assert_array_equal(np.argsort(slots), ondisk.list_order(index.index))  # list after list
    # the store's rows are in no cluster order (as in a crawl): a query's candidates, read from the copy, take far
    # fewer separate reads (page runs) in list order than they would in store order
    ivf = faiss.extract_index_ivf(index.index)
    ivf.nprobe = 4
    _, found = index.index.search(xb[[7]], 200)
    rows = found[0][found[0] >= 0]
    in_list_order = len(page_runs(128, 64, slots[rows], page=512))
    in_store_order = len(page_runs(128, 64, rows, page=512))
    assert in_list_order * 3 < in_store_order, (in_list_order, in_store_order)
    ivf.nprobe = 64
    flat, _ = load_index(store, heads, "flat", progress=False)
    cal = Calibrator(16.1587, -38.5)
    queries = xb[[10, 3000, 5999]] + 0.2 * random_unit(3, 32, seed=9)
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        got, want = index.search(q, 20, cal), flat.search(q, 20, cal)
        np.testing.assert_allclose(got.D, xb[got.I] @ q, atol=2**-10)
        assert len(set(got.I) & set(want.I)) >= 18
        np.testing.assert_allclose(got.influence.sum() + got.remaining_influence, 1.0, atol=1e-5)
    _, built = load_index(store, heads, "ivfpq", progress=False)
    assert not built
    damaged = np.load(copy_path, mmap_mode="r+")
    damaged[slots[0]] = 0  # row 0: one of the spot-checked rows
    damaged.flush()
    del damaged
    rebuilt, built = load_index(store, heads, "ivfpq", progress=False)
    assert built  # the copy no longer matched the store; the rebuild keeps what was asked for at the first build
    assert rebuilt.meta.params["factory"] == "IVF64,PQ8" and rebuilt.meta.params["rescore"] == "float16"
    slots = np.load(ondisk.slots_path(index.path))
    np.testing.assert_allclose(np.load(copy_path)[slots[0]].astype(np.float32), xb[0], atol=2**-11)
    _, built = load_index(store, heads, "ivfpq", progress=False, params={"rescore": "store"})
    assert built and not copy_path.exists() and not ondisk.slots_path(index.path).exists()
    with pytest.raises(AttributionError, match="rescore 'float8'"):
        build_index(store, heads, "ivfpq", {"rescore": "float8"}, progress=False)


def load_heads_from(tmp_path, d: int):
    """Real (random) linear heads in the authors' layout, so rescoring goes through a head, not the identity."""
    path = tmp_path / "heads.pth"
    torch.save(released_heads(d, seed=7), path)
    return load_heads(path, d)


def test_index_is_reused_then_rebuilt_when_store_or_head_changes(tmp_path) -> None:
    xb = random_unit(300, 16)
    paths = [str(i) for i in range(300)]
    store = write_store(tmp_path / "s", xb, paths, "test")
    heads = identity_heads(16)
    _, built = load_index(store, heads, progress=False)
    assert built
    _, built = load_index(store, heads, progress=False)
    assert not built, "an up-to-date index is reused"
    xb2 = xb.copy()
    xb2[0] = -xb2[0]
    store2 = write_store(tmp_path / "s", xb2, paths, "test")  # same folder, new content
    index, built = load_index(store2, heads, progress=False)
    assert built, "changed store -> rebuilt"
    assert index.search(xb2[0], 1, Calibrator()).I[0] == 0
    torch.save(released_heads(16), tmp_path / "h.pth")
    tuned = load_heads(tmp_path / "h.pth", 16)
    index, built = load_index(store2, tuned, progress=False)
    assert built and index.meta.head == tuned.fingerprint()
    mapped = tuned.real_head.map_numpy(xb2)
    assert index.search(mapped[5], 1, Calibrator()).I[0] == 5


def test_rebuilt_when_index_file_is_tampered(tmp_path) -> None:
    store = write_store(tmp_path / "s", random_unit(100, 8), [str(i) for i in range(100)], "test")
    index = build_index(store, identity_heads(8), "flat", progress=False)
    meta_file = index.path.with_suffix(".json")
    meta_file.write_text(meta_file.read_text().replace(store.checksum, "0" * 64))
    _, built = load_index(store, identity_heads(8), progress=False)
    assert built


@pytest.mark.gpu
def test_flat_on_gpu_matches_cpu(tmp_path) -> None:
    xb = clustered(20000, 64)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(20000)], "test")
    cpu, _ = load_index(store, identity_heads(64), progress=False, device="cpu")
    gpu, _ = load_index(store, identity_heads(64), progress=False, device="cuda")
    cal = Calibrator(16.1587, -38.5)
    for q in xb[:10]:
        a, b = cpu.search(q, 100, cal), gpu.search(q, 100, cal)
        assert len(set(a.I) & set(b.I)) >= 99
        np.testing.assert_allclose(a.influence.sum(), b.influence.sum(), atol=1e-5)


def test_a_freshly_built_index_uses_the_requested_device(tmp_path) -> None:
    """``build_index(device=...)`` reaches the index: CUDA scoring when a GPU is visible, a one-line error when not."""
    store = write_store(tmp_path / "s", random_unit(50, 8), [str(i) for i in range(50)], "test")
    if torch.cuda.is_available():
        assert build_index(store, identity_heads(8), "flat", device="cuda").loaded.xb_gpu is not None
    else:
        with pytest.raises(AttributionError, match="no CUDA GPU is visible"):
            build_index(store, identity_heads(8), "flat", device="cuda")


def test_ivfpq_on_a_small_store_is_refused_at_once_or_built_with_a_factory_that_fits(tmp_path) -> None:
    """IVF-PQ's defaults train on about 10,000 rows or more: on a small store (300 rows took 70 s and printed a
    screenful of FAISS warnings) the build is refused at once, naming the kinds to use; a factory that fits the
    store builds; one with more centroids than rows is refused too."""
    import time

    xb = random_unit(200, 16)
    store = write_store(tmp_path / "s", xb, [f"{i}.jpg" for i in range(200)], "test")
    t0 = time.perf_counter()
    with pytest.raises(AttributionError, match=r"200 rows are too few for an ivfpq index .*use --kind flat"):
        build_index(store, identity_heads(16), "ivfpq", progress=False)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(AttributionError, match=r"200 rows cannot train IVF4,PQ4 \(it has 256 centroids"):
        build_index(store, identity_heads(16), "ivfpq", {"factory": "IVF4,PQ4"}, progress=False)
    index = build_index(store, identity_heads(16), "ivfpq", {"factory": "IVF4,PQ4x4"}, progress=False)
    assert index.ntotal == 200


def test_faiss_messages_stay_off_the_terminal(tmp_path, capfd, caplog, monkeypatch) -> None:
    """Training IVF-PQ on fewer rows than FAISS likes and loading its on-disk lists make FAISS print k-means warnings
    and notes about file names from C++; they go to the debug log, not the user's terminal."""
    import logging

    from attribution_core.index import ondisk

    # only this test's handler sees the debug records (another test's CLI run may have left a root handler whose
    # stream pytest has since closed)
    monkeypatch.setattr(ondisk.log, "propagate", False)
    monkeypatch.setattr(ondisk.log, "handlers", [caplog.handler])
    level = ondisk.log.level
    ondisk.log.setLevel(logging.DEBUG)  # setLevel, not the attribute: it clears the logger's cached answers
    try:
        store = write_store(tmp_path / "s", random_unit(1000, 16), [f"{i}.jpg" for i in range(1000)], "test")
        build_index(store, identity_heads(16), "ivfpq", {"factory": "IVF8,PQ4"}, progress=False)
        load_index(store, identity_heads(16), "ivfpq", progress=False)
    finally:
        ondisk.log.setLevel(level)
    out, err = capfd.readouterr()
    assert "WARNING clustering" not in out + err and "IO_FLAG" not in out + err, (out, err)
    assert "WARNING clustering" in caplog.text  # kept, at debug
