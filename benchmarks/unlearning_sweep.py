"""Choosing the unlearning step size on *validation* queries only (never on what the README reports).

Validation queries: the demo model's samples for "a photo of <photo>" with seed 100, for 4 of the 17 corpus
photos (the reported queries use other prompts and seeds). Proxy of attribution quality (no retraining
here): precision@10 by photo, the share of the 10
highest-scoring training images that are views of the prompted photo (random: 1/17 = 6%). Also shown: how much the
prompted photo's views' losses rose against the mean rise over the training set.

    python benchmarks/unlearning_sweep.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

PHOTOS = ("coins", "clock", "grass", "horse")
SEEDS = (100,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    parser.add_argument("--steps", type=int, nargs="+", default=[10])
    args = parser.parse_args()
    from attribution_core.demo import build_demo
    from attribution_core.demo.synthesis import PHOTO_NOUNS
    from attribution_core.diffusion import SamplerSettings, generate, image_tensor, tensor_image
    from attribution_core.registry import create_attributor

    build_demo(progress=False)
    attributor = create_attributor("demo_unlearning", device="cpu")
    base_config = attributor.config
    photo_of = np.array([p.split("/")[1] for p in attributor.data.paths])
    prompts = [f"a photo of {PHOTO_NOUNS[p]}" for p in PHOTOS for _ in SEEDS]
    seeds = [s for _ in PHOTOS for s in SEEDS]
    wanted = [p for p in PHOTOS for _ in SEEDS]
    images = generate(attributor.model, prompts, seeds, SamplerSettings())
    queries = [image_tensor(tensor_image(x), attributor.model.config.resolution) for x in images]
    attributor.prepare()
    print("| lr | steps | precision@10 by photo | loss rise of the photo's views / mean rise | s per query |")
    print("|---:|---:|---:|---:|---:|")
    for lr in args.lrs:
        for steps in args.steps:
            attributor.config = dataclasses.replace(base_config, lr=lr, steps=steps)
            precision, ratio, seconds = [], [], []
            for query, prompt, photo in zip(queries, prompts, wanted, strict=True):
                t0 = time.perf_counter()
                scores, _ = attributor.scores_of(query, prompt)
                seconds.append(time.perf_counter() - t0)
                top = np.argsort(-scores)[:10]
                precision.append(float(np.mean(photo_of[top] == photo)))
                ratio.append(float(scores[photo_of == photo].mean() / max(1e-12, abs(scores.mean()))))
            print(f"| {lr:g} | {steps} | {np.mean(precision):.2f} | {np.mean(ratio):.1f} | {np.mean(seconds):.0f} |")


if __name__ == "__main__":
    main()
