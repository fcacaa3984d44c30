"""Distilled attribution against its teacher and the feature spaces, in the same run (docs/method.md §9): speed
per query, and agreement with full unlearning on the label store's held-out queries.

Agreement: FastGDA's mAP(L) — the top L of full unlearning's ranking of all 1,020 training images are the
positives, AP of a space's ranking of the whole set — for L = 10, 50, 100, over the held-out (validation) queries of
the label store (never trained on; their seeds are used by nothing else). The teacher is *full* unlearning, not the
candidates the labels were made with, so no space is favoured by having picked them (full scores are cached per
query under ``feats/distill/teacher/``). Speed: the distilled space's whole answer (image and text features, search,
calibrated influence) per query, warm, beside full unlearning's per query, timed in this run on ``--timed``
queries.

    python benchmarks/distilled.py [--labels DIR] [--timed 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

SPACES = (
    "demo_distilled",
    "demo_model_efficientnet_lite0_tuned",
    "demo_model_efficientnet_lite0",
    "demo_model_pixel",
)
TOPS = (10, 50, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", help="label store (default: the demo model's)")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--timed", type=int, default=3, help="queries full unlearning is timed on in this run")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from attribution_core.attribute.metrics import average_precision_at
    from attribution_core.attribute.rows import method_scores
    from attribution_core.core.images import load_rgb
    from attribution_core.core.paths import project_root
    from attribution_core.demo import build_demo
    from attribution_core.distill.labels import default_label_dir, read_labels
    from attribution_core.registry import create_attributor

    build_demo(progress=False)
    teacher = create_attributor("demo_unlearning", {"config": {"candidates": 0}}, device=args.device, progress=False)
    teacher.prepare()
    labels_dir = Path(args.labels) if args.labels else default_label_dir(teacher)
    held_out = [r for r in read_labels(labels_dir) if r["split"] == "validation"]
    if not held_out:
        raise SystemExit(f"{labels_dir}: no held-out labels; run `attribute distill label` first")
    cache = project_root() / "feats" / "distill" / "teacher" / teacher.model.fingerprint()
    cache.mkdir(parents=True, exist_ok=True)
    data = teacher.data
    queries, full, unlearning_s = [], [], []
    for i, r in enumerate(held_out):
        image = load_rgb(labels_dir / f"{r['index']:06d}.png")
        queries.append((image, r["prompt"]))
        path = cache / f"{r['index']:06d}.npy"
        if i < args.timed or not path.is_file():
            t0 = time.perf_counter()
            scores = teacher.scores([image], prompts=[r["prompt"]])[0]
            if i < args.timed:
                unlearning_s.append(time.perf_counter() - t0)
            np.save(path, scores)
        full.append(np.argsort(-np.load(path), kind="stable"))
    rows, speed = {}, {}
    for name in args.spaces:
        attributor = create_attributor(name, device=args.device, progress=False)
        attributor.prepare()
        aps = {top: [] for top in TOPS}
        for (image, prompt), order in zip(queries, full, strict=True):
            scores = method_scores(attributor, image, prompt, data)
            for top in TOPS:
                aps[top].append(average_precision_at(order, scores, top))
        rows[name] = {top: float(np.mean(v)) for top, v in aps.items()}
        attributor.attribute([queries[0][0]], k=10, prompts=[queries[0][1]])  # warm
        t0 = time.perf_counter()
        for image, prompt in queries:
            attributor.attribute([image], k=10, prompts=[prompt])
        speed[name] = (time.perf_counter() - t0) * 1000 / len(queries)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    unlearn_ms = float(np.mean(unlearning_s)) * 1000 if unlearning_s else float("nan")
    print(
        f"\n{len(held_out)} held-out queries of {labels_dir.name}, demo model, {len(data)} training images; "
        f"{device}, {torch.get_num_threads()} threads; teacher: full unlearning\n"
    )
    print("| space | " + " | ".join(f"mAP({t})" for t in TOPS) + " | ms per query | vs full unlearning |")
    print("|---|" + "---:|" * (len(TOPS) + 2))
    print(
        "| full unlearning (teacher, baseline) | " + " | ".join("1.000" for _ in TOPS) + f" | {unlearn_ms:,.0f} | 1x |"
    )
    for name, aps in rows.items():
        print(
            f"| {name} | " + " | ".join(f"{aps[t]:.3f}" for t in TOPS)
            + f" | {speed[name]:.1f} | {unlearn_ms / speed[name]:,.0f}x faster |"
        )  # fmt: skip


if __name__ == "__main__":
    main()
