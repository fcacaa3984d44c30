"""Cold start with a 1,000,000-image store: what a fresh process (the explorer's first run, a service worker, a
CLI query) pays before its first answer, and the memory that opening the store and its index adds.

A 1M x 1280 store (EfficientNet-Lite0's dimension; synthetic clustered features, 5 GB) and its flat index are
made once in the work folder. Then, each in a fresh process:
  - baseline: load the features into RAM and build a FAISS flat index from them (as the original demo loaded
    its ``.pth`` features), then answer one query;
  - this library: ``create_attributor`` on a space over that store (store and index memory-mapped, the real
    EfficientNet-Lite0 backbone loaded), then ``attribute`` one real photograph; with the flat index (a 5 GB scan)
    and with the sq8 index (exact over 8-bit codes: a 1.3 GB scan, then ~1,000 rows rescored from the store).
Reported: seconds to ready and to the first answer, and resident memory split into anonymous (a private copy)
and file-backed (shared page cache, reclaimable). Each index kind runs twice: right after the baseline (whose
10 GB private copy pushes mapped pages out of the page cache, so its first scan reads much of the index from disk)
and again (the files cached, as after any earlier use). Streamlit's own server start (about 2 s here) is not included.

    python benchmarks/cold_start.py [--n 1000000] [--dir /tmp/attribution_cold_1m]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from _memory import rss_mb  # benchmarks/_memory.py

D = 1280
KINDS = ("flat", "sq8")


def query_image():
    import skimage.data
    from PIL import Image

    return Image.fromarray(skimage.data.astronaut())


def phase_baseline(work: Path) -> dict:
    t0 = time.perf_counter()
    before = rss_mb()
    import faiss
    import numpy as np
    import torch

    from attribution_core.backbones import create_backbone

    feats = np.load(work / "store" / "feats.npy")  # a private copy, as torch.load of a .pth gives
    index = faiss.IndexFlatIP(feats.shape[1])
    index.add(feats)
    backbone = create_backbone("efficientnet_lite0", device="cpu")
    ready = time.perf_counter() - t0
    x = backbone.embed(torch.stack([backbone.preprocess(query_image().convert("RGB"))]))
    index.search(x / np.linalg.norm(x, axis=1, keepdims=True), 10)
    return {"ready_s": ready, "first_s": time.perf_counter() - t0, "before": before, "after": rss_mb()}


def phase_library(work: Path, kind: str) -> dict:
    t0 = time.perf_counter()
    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.registry import create_attributor

    before = rss_mb()  # after the imports (torch and the library): what opening the space adds is measured
    spec = SpaceSpec(name="bench_1m", label="1M", backbone="efficientnet_lite0", store=work / "store")
    attributor = create_attributor(spec, device="cpu", progress=False, index_kind=kind)
    attributor.prepare()  # the store and its index opened: what "ready" has always measured
    ready = time.perf_counter() - t0
    opened = rss_mb()
    result = attributor.attribute([query_image()], k=10)[0]
    return {
        "mass_count": result.mass_count,
        "ready_s": ready,
        "first_s": time.perf_counter() - t0,
        "before": before,
        "opened": opened,
        "after": rss_mb(),
    }


def child(work: Path, phase: str, kind: str = "flat") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--kind", kind, "--dir", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/attribution_cold_1m")
    ap.add_argument("--phase", choices=("baseline", "library"), help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="flat", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.dir)
    if args.phase:
        print(json.dumps(phase_baseline(work) if args.phase == "baseline" else phase_library(work, args.kind)))
        return

    from attribution_core.data.store import write_store
    from attribution_core.data.synthetic import clustered_blocks
    from attribution_core.index import open_index

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "store" / "meta.json").is_file():
        blocks = clustered_blocks(args.n, D, n_clusters=max(10, args.n // 1000), seed=0, spread=0.6)
        write_store(work / "store", blocks, [f"{i:07d}.jpg" for i in range(args.n)], "efficientnet_lite0")
    for kind in KINDS:
        open_index(work / "store", kind=kind, progress=False)  # built once, reused
    print(f"# {args.n:,} x {D} store, {platform.processor() or platform.machine()}; each row a fresh process")
    rows = []
    for kind in KINDS:
        baseline = child(work, "baseline")
        if kind == KINDS[0]:
            rows.append(("baseline: features loaded into RAM + flat index built", baseline))
        lib_cold = child(work, "library", kind)  # right after the baseline's 10 GB private copy: pages evicted
        lib_warm = child(work, "library", kind)  # again: the mapped files now in the page cache
        rows.append((f"library, {kind} index: store + index memory-mapped, after the baseline", lib_cold))
        rows.append((f"library, {kind} index: the same again", lib_warm))
    print()
    print("| cold start, fresh process | ready (s) | first answer (s) | RSS after (MiB) | anonymous | file-backed |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows:
        a = r["after"]
        print(
            f"| {label} | {r['ready_s']:.1f} | {r['first_s']:.1f} | {a['VmRSS']:.0f} | {a['RssAnon']:.0f} | "
            f"{a['RssFile']:.0f} |"
        )
    for label, r in rows[1:]:
        opened, before = r["opened"], r["before"]
        print(
            f"{label}: opening the space adds {opened['RssAnon'] - before['RssAnon']:.0f} MiB of anonymous memory; "
            f"{r['mass_count']:,} images carry influence for the query"
        )
    print("(after the imports; goal for store + index: ≤ 200 MiB)")


if __name__ == "__main__":
    main()
