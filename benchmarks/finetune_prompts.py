"""Does the fine-tune testbed's model follow its prompts? (docs/counterfactual.md, "The gen track is not evidence")

Generates every training caption and every held-out caption of the fine-tune testbed with the full-set fine-tune
(``--seeds`` each, the LDS's sampler) and reads back the two attributes a 16-pixel image can show: the background
(the mean of the border pixels, nearest of the 4 background colours) and the shape's colour (the mean of the pixels
farthest from the background, nearest of the 6 colours). Prints the accuracy of each against the caption, beside
the same reading of the training drawings themselves (what a perfect model would score: the reader's own ceiling)
and chance; writes a grid of the generations to ``benchmarks/results/finetune_prompts/``.

    python benchmarks/finetune_prompts.py [--seeds 1 2] [--guidance 2.0]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results" / "finetune_prompts"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from dataclasses import replace

    from PIL import Image

    from attribution_core.demo.shapes import BACKGROUNDS, COLOURS, held_out_combos, training_combos
    from attribution_core.demo.shapes_testbed import shapes_dir, training_file
    from attribution_core.diffusion.generation import FIRST_SAMPLER
    from attribution_core.diffusion.sample import generate
    from attribution_core.judges.counterfactual.config import LdsConfig
    from attribution_core.judges.counterfactual.lds_run import lds_cache
    from attribution_core.judges.counterfactual.run import counterfactual_training_set
    from attribution_core.registry import create_testbed

    colours, backgrounds = np.array(list(COLOURS.values())), np.array(list(BACKGROUNDS.values()))
    testbed = create_testbed("finetune")
    config = testbed.resolve(LdsConfig(testbed="finetune", device=args.device))
    data = counterfactual_training_set(config, testbed.resolution(config), testbed)
    model = testbed.retrainer(config, data, lds_cache()).model([], config.seed)
    sampler = replace(FIRST_SAMPLER, guidance=args.guidance)
    side = model.config.resolution

    def drawn(combo) -> np.ndarray:
        img = Image.open(shapes_dir() / training_file(combo, 0)).convert("RGB").resize((side, side), Image.BOX)
        return np.asarray(img)

    rows = []
    grid = []
    started = time.perf_counter()
    for split, combos in (("training captions", training_combos()), ("held-out captions", held_out_combos(False))):
        hits = {"background": [], "colour": []}
        for seed in args.seeds:
            x = generate(model, [c.caption for c in combos], [seed] * len(combos), sampler).cpu()
            images = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            grid.append(images[:16])
            for c, img in zip(combos, images, strict=True):
                bg, col = read_attributes(img, colours, backgrounds)
                hits["background"].append(bg == c.background)
                hits["colour"].append(col == c.colour)
        rows.append((f"generated, {split}", np.mean(hits["background"]), np.mean(hits["colour"])))
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
