"""Scan kernels for the exact path: how long one query takes to score every vector, per storage and library.

The exact search (docs/method.md §3) is a full scan; this measures candidate kernels for it on the same
clustered vectors, one query at a time, the numpy float32 matrix-vector product (what the flat kind did before
``mapped_scores``) as the baseline in the same run:

  - FAISS's float32 inner-product kernel on two threads (``attribution_core.data.mapped.mapped_scores``: the flat kind);
  - both again over a memory map of the vectors after a 45-byte header, as a saved FAISS flat index holds them
    (misaligned: numpy then copies the whole matrix before each product);
  - FAISS scalar-quantiser scans (``IndexScalarQuantizer``: float16, bfloat16, 8-bit, signed 8-bit direct);
  - torch's CPU matrix-vector product in float32, float16 and bfloat16.

Only the scan is timed (FAISS's includes its top-256 selection); the error bound and the exact rescoring that an
exact kind adds on top are not (``benchmarks/search.py`` times the whole exact query). The signed 8-bit direct
kernel multiplies integer codes by an integer query (FAISS truncates a float query's components): here it only
times that kernel; the library's sq8 kind quantises the query itself and bounds the error
(attribution_core/index/compressed.py).

    python benchmarks/scan_kernels.py [--n 1000000] [--d 512] [--queries 20]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch

from attribution_core.data.mapped import map_tail, mapped_scores
from attribution_core.data.synthetic import clustered_features, perturbed

QTYPES = ("QT_fp16", "QT_bf16", "QT_8bit", "QT_8bit_direct_signed")


def p50_ms(run: Callable[[int], object], queries: int) -> float:
    run(0)  # warm-up: page faults, thread pools
    times = []
    for i in range(1, queries):
        t0 = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    xb = clustered_features(args.n, args.d, max(10, args.n // 1000), seed=0)
    xq = perturbed(xb[: args.queries], 0.3, seed=1)
    rows = {}
    rows["numpy float32 xb @ q (baseline: the flat kind before)"] = p50_ms(lambda i: xb @ xq[i], args.queries)
    rows["FAISS float32 inner products, 2 threads (mapped_scores: the flat kind)"] = p50_ms(
        lambda i: mapped_scores(xb, xq[i : i + 1]), args.queries
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.bin"
        with open(path, "wb") as f:
            f.write(b"\0" * 45)  # a FAISS flat index's header length: the vectors start misaligned
            f.write(xb.tobytes())
        mapped = map_tail(path, xb.shape)
        mapped_scores(mapped, xq[:1])  # read the file into the page cache once
        rows["numpy float32 xb @ q, misaligned memory map (page cache)"] = p50_ms(
            lambda i, m=mapped: m @ xq[i], min(args.queries, 6)
        )
        rows["mapped_scores, misaligned memory map (page cache)"] = p50_ms(
            lambda i, m=mapped: mapped_scores(m, xq[i : i + 1]), args.queries
        )
    for name in QTYPES:
        qtype = getattr(faiss.ScalarQuantizer, name, None)
        if qtype is None:
            continue
        index = faiss.IndexScalarQuantizer(args.d, qtype, faiss.METRIC_INNER_PRODUCT)
        codes_in = xb * 127 / np.abs(xb).max() if name == "QT_8bit_direct_signed" else xb  # integer range
        index.train(codes_in[:200_000])
        index.add(codes_in)
        rows[f"FAISS {name} scan + top-256"] = p50_ms(lambda i, ix=index: ix.search(xq[i : i + 1], 256), args.queries)
        del index
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xt = torch.from_numpy(xb).to(dtype)
        qt = torch.from_numpy(xq).to(dtype)
        rows[f"torch {str(dtype).removeprefix('torch.')} matrix-vector"] = p50_ms(
            lambda i, x=xt, q=qt: x @ q[i], args.queries
        )
        del xt
    base = next(iter(rows.values()))
    print(
        f"# {args.n:,} x {args.d}, one query at a time, p50 of {args.queries - 1}; "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, faiss {faiss.__version__}, "
        f"torch {torch.__version__}\n"
    )
    print("| kernel | p50 ms | vs baseline |")
    print("|---|---:|---:|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}× |")


if __name__ == "__main__":
    main()
