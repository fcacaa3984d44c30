"""``dataset/json/test_demo_diffusion.json``: AbC ground truth made the way AbC makes it, with the demo diffusion
model: customise it on each model's exemplars (Custom Diffusion, a new token per model), then *generate* images
with the customised model. Every generated image is influenced by its model's exemplars by construction.

Written once, on its first need (``attribute evaluate``/``calibrate`` on it, or ``attribute demo --with-test-case``;
resumable per model; about 25 s per model on 2 cores), in the AbC test-case
format plus, per entry, ``prompts`` (each generated image's prompt) and ``customized`` (the delta's folder).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..core.fileio import atomic_write_json
from ..core.images import load_rgb
from ..core.paths import project_root
from ..core.progress import Progress, ProgressCallback
from ..diffusion.customize import CustomizeConfig, customize, save_customization
from ..diffusion.data import image_tensor, tensor_image
from ..diffusion.generation import FIRST_SAMPLER, Generation, save_generated
from ..diffusion.load import load_model
from ..diffusion.sample import generate
from .diffusion import demo_model_dir, demo_training_set, diffusion_json
from .layout import demo_dir, demo_json

log = logging.getLogger(__name__)

#: Which demo models are customised: quadrants 2 and 3 of each exemplar photo (10 models), the validation and
#: held-out splits, so the demo's tuned heads (trained on quadrants 0-1) never saw these exemplars.
QUADRANTS = (2, 3)
#: Prompt types and their templates; each is generated with SEEDS.
PROMPTS = {"object": "a photo of {token}", "view": "a photo of {token}, close-up, flipped"}
SEEDS = (0, 1, 2, 3)


def token_of(class_id: str) -> str:
    return f"<{class_id}>"


def build_diffusion_test_case(progress: bool = True, on_progress: ProgressCallback | None = None) -> Path:
    """Customise, generate and write the test case (models already done are kept)."""
    root = project_root()
    entries = [e for e in json.loads(demo_json().read_text()) if int(e["class_id"].rsplit("_q", 1)[1]) in QUADRANTS]
    base = load_model(demo_model_dir())
    base_fp = base.fingerprint()
    regularization = demo_training_set(base.config.resolution)
    out_entries = []
    for n, entry in enumerate(entries):
        model_id = entry["class_id"]
        folder = demo_dir() / "customized" / model_id
        synth_dir = demo_dir() / "diffusion_synth" / model_id
        token = token_of(model_id)
        prompts = {t: p.format(token=token) for t, p in PROMPTS.items()}
        paths = {t: [synth_dir / f"{t}_{s:02d}.png" for s in SEEDS] for t in PROMPTS}
        done = (folder / "customization.json").is_file() and all(p.is_file() for v in paths.values() for p in v)
        record = json.loads((folder / "customization.json").read_text()) if done else {}
        if record.get("base_model") == base_fp and record.get("exemplars") == entry["exemplar"]:
            log.debug("%s: already customised", model_id)
        else:
            model = load_model(demo_model_dir())
            exemplars = torch.stack(
                [image_tensor(load_rgb(root / p), model.config.resolution) for p in entry["exemplar"]]
            )
            customize(model, exemplars, token, prompts["object"], regularization, CustomizeConfig(), progress)
            save_customization(
                model, token, base_fp, folder, {"exemplars": entry["exemplar"], "prompt": prompts["object"]}
            )
            settings = FIRST_SAMPLER
            for t, prompt in prompts.items():
                images = generate(model, [prompt] * len(SEEDS), list(SEEDS), settings)
                for x, seed, path in zip(images, SEEDS, paths[t], strict=True):
                    save_generated(tensor_image(x), Generation(prompt, seed, model.fingerprint(), settings), path)
        rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
        out_entries.append(
            {
                "exemplar": entry["exemplar"],
                "synth": {t: [rel(p) for p in v] for t, v in paths.items()},
                "class_id": model_id,
                "category": entry["category"],
                "prompts": {rel(p): prompts[t] for t, v in paths.items() for p in v},
                "customized": rel(folder),
            }
        )
        if on_progress:
            on_progress(Progress("customise and generate (diffusion test case)", n + 1, len(entries)))
    atomic_write_json(diffusion_json(), out_entries)
    return diffusion_json()
