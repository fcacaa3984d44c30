"""The fine-tune testbed's distilled student, ``shapes_distilled`` (docs/counterfactual.md; FastGDA, docs/method.md §9):
labels, training and its agreement with its teacher, with the baselines measured in the same run.

Labels: generations of the fine-tuned model from the 64 *training* combinations' captions (3 seeds each by default),
attributed by whole-set unlearning on the fine-tuned model; every 8th training combination is held out as the
student's validation (the LDS's held-out combinations are never labelled). Resumable: one file per query.

Table: FastGDA's mAP(L) on the validation combinations' queries (the teacher's top L of 256 are the positives; AP of
each row's ranking of all 256) for the student, its raw backbone cosine, the caption-only rule (expected AP over
random orders of its ties) and random scores; and seconds per query of the student and of unlearning, timed here.
Written to ``benchmarks/results/shapes_distill/``.

    python benchmarks/shapes_distill.py [--queries 192] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "results" / "shapes_distill"


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=192, help="labelled queries (64 combinations x 3 seeds)")
    parser.add_argument("--timed", type=int, default=2, help="validation queries unlearning is timed on in this run")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from PIL import Image

    from attribution_core.demo import build_demo
    from attribution_core.demo.shapes_distilled import build_student, distilled_attributor, label_root
    from attribution_core.judges.counterfactual.config import LdsConfig
    from attribution_core.judges.counterfactual.lds_run import lds_cache
    from attribution_core.judges.counterfactual.run import counterfactual_training_set
    from attribution_core.registry import create_testbed

    build_demo(progress=True)
    testbed = create_testbed("finetune")
    config = testbed.resolve(LdsConfig(testbed="finetune", device=args.device))
    data = counterfactual_training_set(config, testbed.resolution(config), testbed)
    retrainer = testbed.retrainer(config, data, lds_cache())
    base = retrainer.model([], config.seed, progress=True)
    unlearning = testbed.attributor("unlearning", base, data, args.device)
    started = time.perf_counter()
    report = build_student(unlearning, lds_cache() / retrainer.key([], config.seed), args.queries, device=args.device)
    built_s = time.perf_counter() - started

    labels = sorted(label_root(base).glob("[0-9]*.json"))
    validation = [r for r in (json.loads(p.read_text()) for p in labels) if r["split"] == "validation"]
    held_out = validation[: max(1, args.timed)]
    student = distilled_attributor(base, data, args.device)
    timing = {}
    for name, attributor in (("shapes_distilled", student), ("unlearning", unlearning)):
        image = Image.open(label_root(base) / f"{held_out[0]['index']:06d}.png").convert("RGB")
        attributor.scores([image], prompts=[held_out[0]["prompt"]])  # warm
        t0 = time.perf_counter()
        for r in held_out:
            image = Image.open(label_root(base) / f"{r['index']:06d}.png").convert("RGB")
            attributor.scores([image], prompts=[r["prompt"]])
        timing[name] = (time.perf_counter() - t0) / len(held_out)

    tops = sorted({int(t) for row in report.average_precision.values() for t in row})
    lines = [
        f"mAP(L) on {report.validation_queries} held-out queries ({len({r['prompt'] for r in validation})} validation "
        f"combinations), student trained on {report.train_queries}; {len(data)} training images",
        "",
        "| ranking | " + " | ".join(f"mAP({t})" for t in tops) + " |",
        "|---|" + "---:|" * len(tops),
    ]
    for name, row in report.average_precision.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[t]:.3f}" for t in tops) + " |")
    lines += [
        "",
        "| method | seconds per query |",
        "|---|---:|",
        *(f"| {name} | {s:.3f} |" for name, s in timing.items()),
        "",
        f"machine: {_device_name(args.device)}; labelling and training in this run: {built_s:.0f} s; "
        f"{time.strftime('%Y-%m-%d')}",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    (OUT / "report.json").write_text(
        json.dumps(
            {
                "average_precision": report.average_precision,
                "train_queries": report.train_queries,
                "validation_queries": report.validation_queries,
                "seconds_per_query": timing,
            },
            indent=1,
        )
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
