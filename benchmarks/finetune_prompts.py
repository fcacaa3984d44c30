"""Does the fine-tune testbed's model follow its prompts? (docs/counterfactual.md, "The gen track is not evidence")

Generates every training caption and every held-out caption of the fine-tune testbed with the full-set fine-tune
(``--seeds`` each, the LDS's sampler) and reads back the two attributes a 16-pixel image can show: the background
(the mean of the border pixels, nearest of the 4 background colours) and the shape's colour (the mean of the pixels
farthest from the background, nearest of the 6 colours). Prints the accuracy of each against the caption, beside
the same reading of the training drawings themselves (what a perfect model would score: the reader's own ceiling)
and chance; writes a grid of the generations to ``benchmarks/results/finetune_prompts/``.

    python benchmarks/finetune_prompts.py [--seeds 1 2] [--guidance 2.0]

``--sweep`` chooses the fine-tune's schedule instead: each candidate
(``STEPS:WORD_LR_SCALE:TRAIN_TEXT[:LR[:BATCH[:WARMUP]]]``, TRAIN_TEXT 0 or 1, WARMUP by default a tenth of STEPS)
fine-tunes the full set (cached like the LDS's models) and is read on the TRAINING captions only (the held-out
captions are the LDS's queries and never choose a setting); the table goes to ``sweep_run.md`` (``sweep.md`` is the
committed account of the choice).

    python benchmarks/finetune_prompts.py --sweep 150:1:0 150:10:0 150:10:1 300:10:0
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results" / "finetune_prompts"
SPEC = "STEPS:WORD_LR_SCALE:TRAIN_TEXT[:LR[:BATCH[:WARMUP]]]"


def read_attributes(image: np.ndarray, colours: np.ndarray, backgrounds: np.ndarray) -> tuple[int, int]:
    """(background index, colour index) of an [H, W, 3] uint8 image."""
    x = image.astype(np.float64)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    bg = border.mean(0)
    far = np.linalg.norm(x - bg, axis=-1)
    shape = x[far >= np.quantile(far, 0.85)].mean(0)
    return int(np.argmin(np.linalg.norm(backgrounds - bg, axis=1))), int(
        np.argmin(np.linalg.norm(colours - shape, axis=1))
    )


def following(model, combos, seeds, sampler, colours, backgrounds, grid=None) -> tuple[float, float]:
    """Share of generations whose (background, colour) reads as captioned."""
    from attribution_core.diffusion.sample import generate

    hits = {"background": [], "colour": []}
    for seed in seeds:
        x = generate(model, [c.caption for c in combos], [seed] * len(combos), sampler).cpu()
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        if grid is not None:
            grid.append(images[:16])
        for c, img in zip(combos, images, strict=True):
            bg, col = read_attributes(img, colours, backgrounds)
            hits["background"].append(bg == c.background)
            hits["colour"].append(col == c.colour)
    return float(np.mean(hits["background"])), float(np.mean(hits["colour"]))


def sweep(candidates, config, data, testbed, sampler, seeds, colours, backgrounds) -> None:
    from dataclasses import replace

    from attribution_core.demo.diffusion import demo_model_dir
    from attribution_core.demo.shapes import training_combos
    from attribution_core.demo.shapes_testbed import WORDS
    from attribution_core.judges.counterfactual.finetuned import FinetuneRetrainer
    from attribution_core.judges.counterfactual.lds_run import lds_cache

    base = testbed.retrainer(config, data, lds_cache()).config
    lines = [
        "| steps | batch | warm-up | word lr × | text encoder | lr | guidance | background | colour | fine-tune s |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for spec in candidates:
        parts = spec.split(":")
        if len(parts) < 3 or parts[2] not in ("0", "1"):
            raise SystemExit(f"--sweep {spec}: expected {SPEC}, TRAIN_TEXT 0 or 1")
        steps, scale, text = int(parts[0]), float(parts[1]), parts[2] == "1"
        lr = float(parts[3]) if len(parts) > 3 else base.lr
        batch = int(parts[4]) if len(parts) > 4 else base.batch_size
        warmup = int(parts[5]) if len(parts) > 5 else max(1, steps // 10)  # the testbed's rule
        ft = replace(base, steps=steps, word_lr_scale=scale, train_text=text, lr=lr, batch_size=batch, warmup=warmup)
        retrainer = FinetuneRetrainer(data, lds_cache(), demo_model_dir(), WORDS, ft)
        started = time.perf_counter()
        model = retrainer.model([], config.seed)
        took = time.perf_counter() - started
        bg, col = following(model, training_combos(), seeds, sampler, colours, backgrounds)
        text_cell = "yes" if text else "no"
        cells = [steps, batch, warmup, f"{scale:g}", text_cell, f"{lr:g}", f"{sampler.guidance:g}"]
        cells += [f"{bg:.2f}", f"{col:.2f}"]
        lines.append("| " + " | ".join(map(str, cells)) + f" | {took:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", f"training captions only, seeds {list(seeds)}, guidance {sampler.guidance}, CPU, "
              f"{time.strftime('%Y-%m-%d')}; fine-tune time 0 = cached"]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sweep", nargs="+", metavar=SPEC)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from dataclasses import replace

    from PIL import Image

    from attribution_core.demo.shapes import BACKGROUNDS, COLOURS, held_out_combos, training_combos
    from attribution_core.demo.shapes_testbed import shapes_dir, training_file
    from attribution_core.diffusion.generation import FIRST_SAMPLER
    from attribution_core.judges.counterfactual.config import LdsConfig
    from attribution_core.judges.counterfactual.lds_run import lds_cache
    from attribution_core.judges.counterfactual.run import counterfactual_training_set
    from attribution_core.registry import create_testbed

    colours, backgrounds = np.array(list(COLOURS.values())), np.array(list(BACKGROUNDS.values()))
    testbed = create_testbed("finetune")
    config = testbed.resolve(LdsConfig(testbed="finetune", device=args.device))
    data = counterfactual_training_set(config, testbed.resolution(config), testbed)
    sampler = replace(FIRST_SAMPLER, guidance=args.guidance)
    if args.sweep:
        return sweep(args.sweep, config, data, testbed, sampler, args.seeds, colours, backgrounds)
    model = testbed.retrainer(config, data, lds_cache()).model([], config.seed)
    side = model.config.resolution

    def drawn(combo) -> np.ndarray:
        img = Image.open(shapes_dir() / training_file(combo, 0)).convert("RGB").resize((side, side), Image.BOX)
        return np.asarray(img)

    rows = []
    grid = []
    started = time.perf_counter()
    for split, combos in (("training captions", training_combos()), ("held-out captions", held_out_combos(False))):
        bg, col = following(model, combos, args.seeds, sampler, colours, backgrounds, grid)
        rows.append((f"generated, {split}", bg, col))
    reads = [read_attributes(drawn(c), colours, backgrounds) for c in training_combos()]
    rows.append(
        (
            "the training drawings (the reader's ceiling)",
            np.mean([r[0] == c.background for r, c in zip(reads, training_combos(), strict=True)]),
            np.mean([r[1] == c.colour for r, c in zip(reads, training_combos(), strict=True)]),
        )
    )
    rows.append(("chance", 1 / len(BACKGROUNDS), 1 / len(COLOURS)))
    lines = ["| images | background read as captioned | colour read as captioned |", "|---|---:|---:|"]
    lines += [f"| {name} | {b:.2f} | {c:.2f} |" for name, b, c in rows]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines += ["", f"model {model.fingerprint()}, seeds {args.seeds}, guidance {args.guidance}, {device}, "
              f"{time.perf_counter() - started:.0f} s, {time.strftime('%Y-%m-%d')}"]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    tiles = np.concatenate([np.concatenate(list(g), axis=1) for g in grid], axis=0)
    Image.fromarray(tiles).resize((tiles.shape[1] * 4, tiles.shape[0] * 4), Image.NEAREST).save(OUT / "grid.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
