"""Unlearning on candidates against full unlearning, in the same run: what scoring only a fast space's top N
after unlearning costs in agreement, and what it saves, on the demo model (docs/method.md §6).

For each query (the demo model's samples of four photos, seeds 300-303 by default: used by no reported query,
test case or other benchmark; ``--seed 400`` gives the validation queries the candidate space was chosen on), full
unlearning scores all 1,020 training images; ``--candidates N`` scores the top N of each ``--candidate-space``.
Agreement with the full run: precision@10 (shared share of the two top 10s) and the Spearman correlation
of the full run's top 100 as both runs rank them (an image outside the candidates ranks last). Caches (Fisher,
"before" losses) are built before timing, as a served model has them.

    python benchmarks/unlearning_candidates.py [--candidates 50 100 200] [--candidate-space demo_model_pixel ...]
        [--seed 300] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from attribution_core.demo.diffusion import CANDIDATE_SPACE

PHOTOS = ("coins", "clock", "horse", "brick")


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every row (ties and unscored rows: their stable order, unscored last)."""
    order = np.argsort(-np.where(np.isfinite(scores), scores, -np.inf), kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--candidate-space", nargs="+", default=[CANDIDATE_SPACE])
    parser.add_argument("--seed", type=int, default=300, help="first query seed (one per photo)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from attribution_core.demo import build_demo
    from attribution_core.demo.synthesis import PHOTO_NOUNS
    from attribution_core.diffusion import generate
    from attribution_core.diffusion.data import tensor_image
    from attribution_core.registry import create_attributor

    build_demo(progress=False)
    full = create_attributor("demo_unlearning", device=args.device, progress=False)
    full.prepare()
    runs = {
        (space, n): create_attributor(
            "demo_unlearning", {"config": {"candidates": n, "candidate_space": space}}, device=args.device
        )
        for space in args.candidate_space
        for n in args.candidates
    }
    for a in runs.values():
        a.prepare()
    queries = []
    for i, photo in enumerate(PHOTOS):
        prompt = f"a photo of {PHOTO_NOUNS[photo]}"
        queries.append((prompt, tensor_image(generate(full.model, [prompt], [args.seed + i])[0].cpu())))
    rows = {n: {"p10": [], "rho": [], "s": []} for n in ["full", *runs]}
    for prompt, image in queries:
        t0 = time.perf_counter()
        base = full.scores([image], prompts=[prompt])[0]
        rows["full"]["s"].append(time.perf_counter() - t0)
        top10, top100 = set(np.argsort(-base)[:10]), np.argsort(-base)[:100]
        for n, attributor in runs.items():
            t0 = time.perf_counter()
            scores = attributor.scores([image], prompts=[prompt])[0]
            rows[n]["s"].append(time.perf_counter() - t0)
            rows[n]["p10"].append(
                len(top10 & set(np.argsort(-np.where(np.isfinite(scores), scores, -np.inf))[:10])) / 10
            )
            rows[n]["rho"].append(float(spearmanr(_ranks(base)[top100], _ranks(scores)[top100]).statistic))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    print(
        f"\n{len(queries)} queries, demo model, {len(full)} training images; "
        f"seeds {args.seed}-{args.seed + len(queries) - 1}; {device}, {torch.get_num_threads()} threads\n"
    )
    print("| scored after unlearning | precision@10 vs full | Spearman of full's top 100 | s per query | vs full |")
    print("|---|---:|---:|---:|---:|")
    base_s = float(np.mean(rows["full"]["s"]))
    for n, r in rows.items():
        name = f"all {len(full)} (full unlearning, baseline)" if n == "full" else f"top {n[1]} of {n[0]}"
        p10 = "1.00" if n == "full" else f"{np.mean(r['p10']):.2f}"
        rho = "1.00" if n == "full" else f"{np.mean(r['rho']):.2f}"
        s = float(np.mean(r["s"]))
        print(f"| {name} | {p10} | {rho} | {s:.1f} | {base_s / s:.1f}x faster |")


if __name__ == "__main__":
    main()
