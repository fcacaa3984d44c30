"""IVF-PQ at scale: 10,000,000 x 512 clustered features on one machine (`attribute index --kind ivfpq`).

Steps, each resumable (the work folder keeps what is done):
  1. a 10M x 512 float32 store (20 GB on disk), written block by block in constant memory;
  2. the on-disk IVF-PQ index, built by the library in shards (a child process: its build time and peak RSS);
  3. queries, for each ``--rerank`` (candidates rescored exactly per result wanted), in a fresh child process that
     drops the store's pages from the page cache and opens the store and the index memory-mapped: RSS (anonymous
     and file-backed) and p50/p95 latency of top-K + calibrated influence, candidates rescored from the store;
     and once more for the largest rerank with the rows' prefetch switched off (the library's gather before it
     read scattered rows one page fault at a time: the control); with the float16 copy, once more reading a copy
     in store order instead of the library's inverted-list order (the previous layout: the control, written
     from the list-ordered copy into ``--dir``/control the first time, 10 GB more at 10M);
  4. the exact answer (every score of every query, computed here in chunks): recall@K, error of the listed
     influences and of the remaining influence;
then a table projected to 100M and 1B images from the measured per-vector costs.

    python benchmarks/ivfpq_scale.py                         # 10M (about 25 GB of disk in --dir)
    python benchmarks/ivfpq_scale.py --n 1000000 --dir /tmp/ivfpq1m
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np
from _memory import peak_rss_mb, rss_mb  # benchmarks/_memory.py

from attribution_core.attribute.calibration import Calibrator
from attribution_core.data.store import FeatureStore, write_store
from attribution_core.data.synthetic import clustered_blocks, perturbed
from attribution_core.index import open_index
from attribution_core.index.search import _result, _top_k  # the exact path's own selection and influence

RELEASED_CLIP = Calibrator(inv_tau=16.1587, bias=-38.5)
DEFAULT_NPROBE = 64
CHOSEN_RECALL = 0.99  # the smallest validated nprobe reaching this recall is the one reported (goal: 0.95)


def params_of(args) -> dict:
    return {"factory": args.factory, "nprobe": args.nprobe, "shard_rows": args.shard_rows, "rescore": args.rescore[0]}


def phase_build(args) -> dict:
    peak = {"RssAnon": 0.0, "VmRSS": 0.0}
    done = threading.Event()

    def sample() -> None:  # peak anonymous memory: file-backed pages of the memory-mapped store are page cache
        while not done.wait(0.5):
            now = rss_mb()
            peak.update({k: max(peak[k], now[k]) for k in peak})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    index, built = open_index(Path(args.dir) / "store", kind="ivfpq", params=params_of(args), progress=True)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {
        "seconds": seconds,
        "built": built,
        "peak_anon_mb": peak["RssAnon"],
        "peak_rss_mb": peak_rss_mb(),
        "ntotal": index.ntotal,
    }


def variant_name(
    rescore: str, rerank: int, prefetch: bool = True, warm: bool = False, nprobe: int = 0, store_order: bool = False
) -> str:
    name = f"{rescore} rerank {rerank}" + (f" nprobe {nprobe}" if nprobe else "")
    return (
        name
        + ("" if prefetch else " no-prefetch")
        + (" store-order" if store_order else "")
        + (" warm" if warm else "")
    )


def variants(args, rescore: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, extra arguments) of each query phase over the index rescored from ``rescore``: every rerank from
    disk; the float32 store once more without the rows' prefetch (the control, on fewer queries: each is slow);
    the float16 copy once more with the copy read into the page cache first (it fits; the float32 store does not)."""
    top = max(args.rerank)
    out = [(variant_name(rescore, r), ("--rerank", str(r))) for r in args.rerank]
    if rescore == "store":
        out.append((variant_name(rescore, top, prefetch=False), ("--rerank", str(top), "--no-prefetch")))
    else:
        out.append((variant_name(rescore, top, store_order=True), ("--rerank", str(top), "--store-order")))
        out.append((variant_name(rescore, top, warm=True), ("--rerank", str(top), "--warm")))
    return out


def use_store_order_copy(work: Path) -> Path:
    """The control for the float16 copy's layout: make the library read a copy in store order (row r at position
    r, as it was written before the inverted-list layout), written once from the list-ordered copy."""
    from attribution_core.index import ondisk

    (listed,) = (work / "store" / "index").glob("*.rescore.npy")
    faiss_path = listed.with_name(listed.name.replace(".rescore.npy", ".faiss"))
    control = work / "control" / "rescore_store_order.npy"
    if not control.is_file():
        source = np.load(listed, mmap_mode="r")
        slots = np.load(ondisk.slots_path(faiss_path))
        control.parent.mkdir(exist_ok=True)
        tmp = control.with_suffix(".tmp.npy")
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=source.shape)
        for i in range(0, len(source), 65536):
            target[i : i + 65536] = ondisk.gather_rows(source, slots[i : i + 65536])
        target.flush()
        del target
        tmp.replace(control)
    in_store_order = np.load(control, mmap_mode="r")
    from attribution_core.index.kinds import ivfpq  # where the library calls it

    ivfpq.read_rescore_copy = lambda path, n, d: ondisk.RescoreCopy(in_store_order, None)
    return control


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (clean pages only; no root needed), so every query phase starts
    with the store on disk, as after a reboot or beside other work: the measurement does not depend on what an
    earlier phase left cached."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_into_cache(path: Path) -> None:
    """Read a file whole, so that its pages are in the page cache (as a server that has answered for a while)."""
    with open(path, "rb") as f:
        while f.read(1 << 26):
            pass


def phase_choose(args) -> dict:
    """nprobe chosen on validation queries (never the reported ones): recall@K and p50 of each candidate nprobe,
    the float16 copy in the page cache."""
    work = Path(args.dir)
    xq, truth = np.load(work / "validation.npy"), np.load(work / "validation_exact.npy")
    for copy in (work / "store" / "index").glob("*.rescore.npy"):
        read_into_cache(copy)
    index, built = open_index(work / "store", kind="ivfpq", params=params_of(args), progress=False)
    assert not built, "the index should have been built by the build phase"
    index.set_params(rerank=max(args.rerank))
    index.search(xq[0], args.k, RELEASED_CLIP)  # warm-up
    out = {}
    for nprobe in args.choose_nprobe:
        index.set_params(nprobe=nprobe)
        times, recalls = [], []
        for q, t in zip(xq, truth, strict=True):
            t0 = time.perf_counter()
            found = index.search(q, args.k, RELEASED_CLIP)
            times.append((time.perf_counter() - t0) * 1000)
            recalls.append(len(set(found.I.tolist()) & set(t.tolist())) / args.k)
        out[str(nprobe)] = {"recall": float(np.mean(recalls)), "p50_ms": float(np.median(times))}
    return out


def phase_query(args) -> dict:
    if args.no_prefetch:  # the measurement's own control: the library's row gather without its prefetch
        import attribution_core.data.mapped as mapped

        mapped.prefetch_rows = lambda array, rows: None
    work = Path(args.dir)
    xq = np.load(work / "queries.npy")
    if args.no_prefetch:
        xq = xq[: args.control_queries]
    copies = list((work / "store" / "index").glob("*.rescore.npy"))
    if args.store_order:
        copies.append(use_store_order_copy(work))
    evict(work / "store" / "feats.npy")
    for copy in copies:
        evict(copy)
        if args.warm:
            read_into_cache(copy)
    before = rss_mb()
    t0 = time.perf_counter()
    params = {**params_of(args), "rerank": args.rerank[0]}
    index, built = open_index(work / "store", kind="ivfpq", params=params, progress=False)
    open_s = time.perf_counter() - t0
    assert not built, "the index should have been built by the build phase"
    opened = rss_mb()
    index.search(xq[0], args.k, RELEASED_CLIP)  # warm-up
    times, rows, infl, remaining = [], [], [], []
    for q in xq:
        t = time.perf_counter()
        found = index.search(q, args.k, RELEASED_CLIP)
        times.append((time.perf_counter() - t) * 1000)
        rows.append(found.I)
        infl.append(found.influence)
        remaining.append(found.remaining_influence)
    nprobe = args.nprobe if args.nprobe != DEFAULT_NPROBE else 0
    name = variant_name(args.rescore[0], args.rerank[0], not args.no_prefetch, args.warm, nprobe, args.store_order)
    np.savez(
        work / f"ann-{name.replace(' ', '_')}.npz",
        rows=np.stack(rows),
        infl=np.stack(infl),
        remaining=np.array(remaining),
    )
    after = rss_mb()
    return {
        "open_s": open_s,
        "p50_ms": float(np.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "rss_before": before,
        "rss_opened": opened,
        "rss_after": after,
        "peak_rss_mb": peak_rss_mb(),
    }


def child(args, phase: str, extra: tuple[str, ...] = (), name: str | None = None) -> dict:
    """Run a phase in a fresh process (its own peak RSS), keeping its answer in the work folder."""
    out = Path(args.dir) / f"{(name or phase).replace(' ', '_')}.json"
    if not out.is_file():
        cmd = [sys.executable, __file__, *sys.argv[1:], *extra, "--phase", phase, "--out", str(out)]
        subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def exact_answers(store: FeatureStore, xq: np.ndarray, k: int, chunk: int = 500_000):
    """Every score of every query, in chunks of the memory-mapped store, then the exact path's top-K and influence."""
    scores = np.empty((len(xq), len(store)), dtype=np.float32)
    for i in range(0, len(store), chunk):
        scores[:, i : i + chunk] = xq @ np.asarray(store.feats[i : i + chunk]).T
    out = []
    for s in scores:
        top = _top_k(s, k)
        m = float(s[top[0]])
        out.append(_result(s[top], top, s[s > RELEASED_CLIP.threshold(m)], m, RELEASED_CLIP, len(store)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--factory", default="IVF4096,PQ64", help="FAISS factory string (default IVF4096,PQ64)")
    ap.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE)
    ap.add_argument(
        "--choose-nprobe",
        type=int,
        nargs="+",
        default=[8, 16, 32, 64],
        help="nprobe candidates tried on validation queries (float16 copy, largest rerank)",
    )
    ap.add_argument("--shard-rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/attribution_ivfpq_10m", help="work folder (kept: the run resumes)")
    ap.add_argument(
        "--rerank", type=int, nargs="+", default=[2, 4, 10], help="candidates rescored per result (query time)"
    )
    ap.add_argument(
        "--rescore", nargs="+", default=["store", "float16"], help="where candidates are rescored from (build time)"
    )
    ap.add_argument("--control-queries", type=int, default=20, help="queries of the no-prefetch control")
    ap.add_argument("--no-prefetch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store-order", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=("build", "query", "choose"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.dir)
    if args.phase:
        result = {"build": phase_build, "query": phase_query, "choose": phase_choose}[args.phase](args)
        Path(args.out).write_text(json.dumps(result))
        return

    work.mkdir(parents=True, exist_ok=True)
    n, d = args.n, args.d
    print(
        f"# {n:,} x {d}, {args.factory}, nprobe {args.nprobe}, K={args.k}, {args.queries} queries, "
        f"{platform.processor() or platform.machine()}, faiss {faiss.__version__}",
        flush=True,
    )
    t0 = time.perf_counter()
    if not (work / "store" / "meta.json").is_file():
        blocks = clustered_blocks(n, d, n_clusters=max(10, n // 1000), seed=0, spread=0.6, block=250_000)
        write_store(work / "store", blocks, [f"{i:09d}.jpg" for i in range(n)], "synthetic")
    store = FeatureStore.open(work / "store")
    t_data = time.perf_counter() - t0
    if not (work / "queries.npy").is_file():
        rows = np.sort(np.random.default_rng(1).choice(n, args.queries, replace=False))
        np.save(work / "queries.npy", perturbed(np.asarray(store.feats[rows]), 0.3, seed=1))
    xq = np.load(work / "queries.npy")
    if not (work / "validation_exact.npy").is_file():  # validation queries: other rows, other noise
        report_rows = np.sort(np.random.default_rng(1).choice(n, args.queries, replace=False))
        candidates = np.random.default_rng(2).choice(n, 2 * args.queries, replace=False)
        rows = np.sort(candidates[~np.isin(candidates, report_rows)][: args.queries])
        xv = perturbed(np.asarray(store.feats[rows]), 0.3, seed=2)
        np.save(work / "validation.npy", xv)
        np.save(work / "validation_exact.npy", np.stack([e.I for e in exact_answers(store, xv, args.k)]))
    print(f"# store ready in {t_data:.0f} s", flush=True)

    builds, queries = {}, {}
    for rescore in args.rescore:  # each source its own build (a build parameter): the later replaces the earlier
        builds[rescore] = child(args, "build", ("--rescore", rescore), name=f"build-{rescore}")
        for name, extra in variants(args, rescore):
            queries[name] = child(args, "query", ("--rescore", rescore, *extra), name=f"query-{name}")
    last = args.rescore[-1]  # the index now on disk
    chosen_by = child(args, "choose", ("--rescore", last), name=f"choose-{last}")
    good = [int(p) for p, r in chosen_by.items() if r["recall"] >= CHOSEN_RECALL]
    chosen = min(good) if good else max(args.choose_nprobe)
    top = str(max(args.rerank))
    if chosen != args.nprobe:
        for warm, store_order in ((False, False), (False, True), (True, False)):
            name = variant_name(last, int(top), warm=warm, nprobe=chosen, store_order=store_order)
            flags = (*(("--warm",) if warm else ()), *(("--store-order",) if store_order else ()))
            extra = ("--rescore", last, "--rerank", top, "--nprobe", str(chosen), *flags)
            queries[name] = child(args, "query", extra, name=f"query-{name}")
    build = builds[args.rescore[0]]  # the projection below scales this build
    t0 = time.perf_counter()
    exact = exact_answers(store, xq, args.k)
    t_exact = (time.perf_counter() - t0) * 1000 / len(xq)

    quality = {}
    for name in queries:
        ann = np.load(work / f"ann-{name.replace(' ', '_')}.npz")
        recall = np.mean([len(set(a) & set(e.I)) / args.k for a, e in zip(ann["rows"], exact, strict=False)])
        listed_err, remaining_err = [], []
        for a_rows, a_infl, a_rem, e in zip(ann["rows"], ann["infl"], ann["remaining"], exact, strict=False):
            truth = dict(zip(e.I.tolist(), e.influence.tolist(), strict=True))
            listed_err.append(
                max(abs(p - truth.get(r, 0.0)) for r, p in zip(a_rows.tolist(), a_infl.tolist(), strict=True))
            )
            remaining_err.append(abs(float(a_rem) - e.remaining_influence))
        quality[name] = (recall, max(listed_err), max(remaining_err))

    disk = {p.name: p.stat().st_size for p in (work / "store").rglob("*") if p.is_file()}
    store_gb = disk.get("feats.npy", 0) / 1e9
    index_gb = sum(v for k, v in disk.items() if k.endswith((".faiss", ".ivfdata"))) / 1e9
    copy_gb = sum(v for k, v in disk.items() if k.endswith(".rescore.npy")) / 1e9

    def row(label: str, cell, goal: str = "") -> None:
        print(f"| {label} | " + " | ".join(cell(queries[name], *quality[name]) for name in queries) + f" | {goal} |")

    print()
    for rescore, b in builds.items():
        print(
            f"build, rescore from {rescore} (train + fill shards + merge, incl. reading the store): "
            f"{b['seconds'] / 60:.1f} min; peak RSS anonymous {b['peak_anon_mb'] / 1024:.2f} GB (total incl. the "
            f"store's page cache {b['peak_rss_mb'] / 1024:.1f} GB; goal: never the whole dataset in RAM)"
        )
    print(
        f"disk: store (float32) {store_gb:.1f} GB, index (codes + ids + lists) {index_gb:.2f} GB, float16 "
        f"rescoring copy {copy_gb:.1f} GB"
    )
    print(f"baseline: exact scores of the whole store, per query (batched, here): {t_exact:.0f} ms")
    print(
        "each column: a fresh process; the store's and the float16 copy's pages dropped from the page cache first "
        "(warm: the copy then read whole into it; store-order: the control copy in store order); "
        "the no-prefetch control on the first "
        f"{args.control_queries} queries\n"
    )
    print(f"nprobe chosen on {len(np.load(work / 'validation.npy'))} validation queries ({last}, warm, rerank {top}):")
    for p, r in chosen_by.items():
        print(f"  nprobe {p}: recall@{args.k} {r['recall']:.3f}, p50 {r['p50_ms']:.1f} ms")
    print(f"  chosen: {chosen} (the smallest with recall ≥ {CHOSEN_RECALL})\n")
    print("| 10M IVF-PQ (measured) | " + " | ".join(queries) + " | goal |")
    print("|---|" + "---:|" * len(queries) + "---|")
    row("open store + index (s)", lambda q, *_: f"{q['open_s']:.2f}")
    row(
        f"query-time RSS after {len(xq)} queries, GB: anonymous / file-backed",
        lambda q, *_: f"{q['rss_after']['RssAnon'] / 1024:.2f} / {q['rss_after']['RssFile'] / 1024:.2f}",
        "≤ 2 GB",
    )
    row(
        f"latency p50 / p95, ms (top-{args.k} + influence, rescored)",
        lambda q, *_: f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}",
        "≤ 20 ms",
    )
    row(f"recall@{args.k} vs exact", lambda q, recall, *_: f"{recall:.3f}", "≥ 0.95")
    row("max error of a listed influence (share of the total)", lambda q, r, le, re: f"{le * 100:.3f} %", "≤ 1 %")
    row("max error of the remaining influence", lambda q, r, le, re: f"{re * 100:.3f} %", "≤ 1 %")

    per_vec_index = index_gb * 1e9 / n
    per_vec_build_s = build["seconds"] / n
    print()
    print(
        "| projected | store float32 (float16) | index on disk | RAM at query time | build (this 2-core machine) | "
        "query |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for big in (100_000_000, 1_000_000_000):
        scale = big / n
        nlist = int(4096 * math.sqrt(scale))
        print(
            f"| {big / 1e6:,.0f}M | {store_gb * scale / 1e3:.1f} TB ({store_gb * scale / 2e3:.1f} TB) | "
            f"{per_vec_index * big / 1e9:.0f} GB | coarse centroids {nlist * d * 4 / 1e6:.0f} MB + the lists' pages "
            f"touched + the path table | {per_vec_build_s * big / 3600 * math.sqrt(scale):.0f} h (assignment grows "
            f"with nlist ∝ √N) | nprobe·N/nlist codes: ×{math.sqrt(scale):.1f} the 10M scan at the same nprobe |"
        )


if __name__ == "__main__":
    main()
