"""Attribution-by-unlearning cost on the demo model: one-time caches and per-query seconds, beside a feature-space
query measured in the same run, and the projected cost at 10x and 100x the training set.

    python benchmarks/unlearning.py                 # 3 queries, default settings, CPU
    python benchmarks/unlearning.py --device cuda   # the same on a GPU

Caches are timed fresh (a temporary cache folder), so the table shows what a first run costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

PROMPTS = ("a photo of coins", "a photo of a clock, close-up", "a photo of grass, flipped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=3)
    args = parser.parse_args()
    os.environ["ATTRIBUTION_CACHE"] = tempfile.mkdtemp()
    from attribution_core.demo import build_demo, demo_model_dir
    from attribution_core.diffusion import SamplerSettings, generate_image, image_tensor, load_model
    from attribution_core.registry import create_attributor
    from attribution_core.unlearning import UnlearningConfig
    from attribution_core.unlearning.caches import cache_folder

    build_demo(progress=False)
    attributor = create_attributor("demo_unlearning", device=args.device)
    cfg: UnlearningConfig = attributor.config
    folder = cache_folder(attributor.model, attributor.data)
    for f in folder.glob("*"):
        f.unlink()  # time the caches from scratch
    t0 = time.perf_counter()
    from attribution_core.unlearning.caches import cached_fisher, cached_losses

    cached_fisher(attributor.model, attributor.data, cfg)
    t1 = time.perf_counter()
    cached_losses(attributor.model, attributor.data, cfg)
    t2 = time.perf_counter()
    fisher_s, before_s = t1 - t0, t2 - t1
    model = load_model(demo_model_dir(), args.device)
    rows = []
    for prompt in PROMPTS[: args.queries]:
        image, _ = generate_image(model, prompt, 0, SamplerSettings())
        _, timings = attributor.scores_of(image_tensor(image, model.config.resolution), prompt)
        rows.append((prompt, timings["unlearn"] / 1000, timings["score"] / 1000))
    feature = create_attributor("demo_efficientnet_lite0_tuned", device=args.device, progress=False)
    image, _ = generate_image(model, PROMPTS[0], 0, SamplerSettings())
    feature.attribute([image.resize((224, 224))], 100)
    t3 = time.perf_counter()
    feature.attribute([image.resize((224, 224))], 100)
    feature_ms = (time.perf_counter() - t3) * 1000

    n = len(attributor.data)
    unlearn = sum(r[1] for r in rows) / len(rows)
    score = sum(r[2] for r in rows) / len(rows)
    device = (
        torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    )
    print(
        f"demo model {model.fingerprint()} ({sum(p.numel() for p in model.unet.parameters()):,} UNet parameters), "
        f"N = {n} training images (+ flips); device: {device}"
    )
    print(f"settings: {cfg}")
    print("\n| query prompt | unlearn (s) | score all (s) | per query (s) |\n|---|---:|---:|---:|")
    for prompt, u, s in rows:
        print(f"| {prompt} | {u:.1f} | {s:.1f} | {u + s:.1f} |")
    print(f"| **mean** | {unlearn:.1f} | {score:.1f} | **{unlearn + score:.1f}** |")
    print(f"\nbaseline in the same run: a tuned EfficientNet feature-space query: {feature_ms:.0f} ms")
    print("\n| training set | Fisher, once (s) | losses before, once (s) | per query (s) |\n|---|---:|---:|---:|")
    for scale in (1, 10, 100):
        tag = "measured" if scale == 1 else "projected"
        print(
            f"| {scale * n:,} ({tag}) | {fisher_s * scale:.0f} | {before_s * scale:.0f} | "
            f"{unlearn + score * scale:.0f} |"
        )


if __name__ == "__main__":
    main()
