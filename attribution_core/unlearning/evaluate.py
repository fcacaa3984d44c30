"""The AbC protocol for attribution by unlearning (docs/method.md §2, §6), on test cases whose entries name their
customised model (``customized``) and each generated image's prompt (``prompts``), as
``test_demo_diffusion.json`` does.

For each synthesized image of customised model m, the candidates are the training corpus ∪ m's exemplars (each
exemplar captioned with m's customisation prompt). Every candidate is scored by its loss rise when the image is
unlearned from m; an exemplar's rank is 1 + the number of candidates scoring strictly above it. The Fisher is the
base model's over the corpus (the customisation changes only the k/v weights a little); the "before" losses are
m's own. Recall@K and mAP per prompt type, as for feature spaces.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribute.spaces import SpaceSpec
from ..core.errors import AttributionError
from ..core.images import load_rgb
from ..core.paths import display_path
from ..diffusion.customize import apply_customization
from ..diffusion.data import TrainingSet, image_tensor
from ..diffusion.load import load_model
from ..diffusion.model import cross_attention_kv
from ..judges.abc.protocol import kept_scores
from ..judges.abc.testcase import TestCase
from ..judges.metrics import DEFAULT_KS, SpaceResult, metrics_by_type
from .caches import cached_losses
from .config import UnlearningConfig
from .scores import relative_rise, scores_from_losses, training_losses, unlearn

log = logging.getLogger(__name__)


def exemplar_ranks_of(scores: np.ndarray, n_corpus: int) -> np.ndarray:
    """Sorted 1-based ranks of the exemplars (rows ``n_corpus:`` of ``scores``) among all candidates."""
    ex = scores[n_corpus:]
    return np.sort(1 + (scores[None, :] > ex[:, None]).sum(axis=1))


def evaluate_unlearning_space(
    spec: SpaceSpec,
    device: torch.device,
    corpus: TrainingSet,
    config: UnlearningConfig,
    fisher: dict[str, torch.Tensor],
    test_cases: Sequence[TestCase],
    root: Path,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = True,
    max_per_type: int | None = None,
    scores_top: int = 0,
    **_: Any,
) -> list[SpaceResult]:
    """Run the protocol with a loaded unlearning space on each test case (``max_per_type``: synthesized images per
    model and prompt type, to bound the time; all by default; ``scores_top``: records keep the relative loss rises
    the calibrator reads, ``protocol.kept_scores``)."""
    out = []
    for tc in test_cases:
        types, ranks, dump = [], [], []
        for m in tc.models:
            if not m.customized:
                raise AttributionError(
                    f"{display_path(tc.path)}: model {m.class_id} names no customised model "
                    "('customized'); unlearning needs the model that generated the images"
                )
            folder = root / m.customized
            model = apply_customization(load_model(spec.options["model"], device), folder)
            prompt = json.loads((folder / "customization.json").read_text())["prompt"]
            pixels = torch.stack([image_tensor(load_rgb(root / p), model.config.resolution) for p in m.exemplar])
            ex = model.encode_images(pixels).cpu()
            candidates = TrainingSet(
                torch.cat([corpus.images, ex]),
                corpus.captions + [prompt] * len(m.exemplar),
                corpus.paths + list(m.exemplar),
                corpus.root,
            )
            before = cached_losses(model, candidates, config, progress)
            kv = cross_attention_kv(model.unet)  # what unlearning changes, restored after each query
            original = {k: v.detach().clone() for k, v in kv.items()}
            for ptype, paths in m.synth.items():
                for path in paths[:max_per_type]:
                    if path not in m.prompts:
                        raise AttributionError(f"{display_path(tc.path)}: no prompt for {path} ('prompts')")
                    pixels = image_tensor(load_rgb(root / path), model.config.resolution)
                    query = model.encode_images(pixels[None])[0].cpu()
                    unlearn(model, query, m.prompts[path], fisher, len(corpus), config)
                    after = training_losses(model, candidates, config)
                    with torch.no_grad():
                        for k, p in kv.items():
                            p.copy_(original[k])
                    rise = scores_from_losses(before, after)
                    r = exemplar_ranks_of(rise, len(corpus))
                    types.append(ptype)
                    ranks.append(r)
                    record = {
                        "test_case": tc.name,
                        "space": spec.name,
                        "model": m.class_id,
                        "type": ptype,
                        "synth": path,
                        "ranks": r.tolist(),
                    }
                    if scores_top:
                        relative = relative_rise(rise)
                        record.update(kept_scores(relative[len(corpus) :], relative[: len(corpus)], scores_top))
                    dump.append(record)
                    log.info("%s %s: exemplar ranks %s", m.class_id, path, r.tolist())
        out.append(SpaceResult(spec.name, metrics_by_type(tc.prompt_types, types, ranks, ks), dump))
    return out
