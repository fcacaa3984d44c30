"""The unlearning method (AbU) as a registered Attributor: forget the query, rank training images by how much
their loss rises (docs/method.md §6).

A space of this method names its model and training set in ``options``::

    {"model": MODEL_DIR, "captions": CAPTIONS.jsonl, "images": IMAGE_ROOT, "prefix": "corpus/", "config": {...}}

Influence is the query's share of the total loss rise: p_i = max(Δ_i, 0) / Σ_j max(Δ_j, 0). Unlike similarity
scores, loss changes have a meaning of their own (a training image whose loss did not rise was not forgotten with
the query and gets no share); the demo has no ground truth on this model to fit a calibrator with, so this
documented normalisation is used rather than a fitted temperature.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..attribute import Attribution, AttributionResult, Attributor, QueryImage, check_k, query_names
from ..device import resolve_device
from ..diffusion.data import TrainingSet, image_tensor, load_training_set
from ..diffusion.generation import generation_of, read_generation
from ..diffusion.load import in_model_space, load_model
from ..diffusion.model import TextToImageModel, cross_attention_kv
from ..errors import AttributionError
from ..evaluate.metrics import SpaceResult
from ..evaluate.testcase import TestCase
from ..images import QUERY_MAX_SIDE, load_rgb
from ..paths import display_path
from ..progress import CancelFlag, ProgressCallback, check_cancelled
from ..registry import register_method
from ..spaces import SpaceSpec
from .caches import cached_fisher, cached_losses
from .config import UnlearningConfig
from .evaluate import evaluate_unlearning_space
from .scores import influence_of, scores_from_losses, training_losses, unlearn


@register_method
class UnlearningAttributor(Attributor):
    """AbU: Fisher-preconditioned unlearning of the query, then the training images' loss rise."""

    method = "unlearning"
    score_kind = "delta_loss"
    needs_prompt = True
    description = "unlearn the generated image from the diffusion model; rank training images by their loss rise"

    def __init__(self, spec: SpaceSpec, model: TextToImageModel, data: TrainingSet, config: UnlearningConfig):
        self.spec = spec
        self.name = spec.name
        self.model = model
        self.data = data
        self.config = config
        self._fisher: dict[str, torch.Tensor] | None = None
        self._before: np.ndarray | None = None

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        out = []
        model = Path(spec.options.get("model", ""))
        if not (model / "model_index.json").is_file():
            out.append(f"diffusion model {display_path(model)}")
        captions = Path(spec.options.get("captions", ""))
        if not captions.is_file():
            out.append(display_path(captions))
        return tuple(out)

    @classmethod
    def load(
        cls, spec: SpaceSpec, *, device: str = "auto", progress: bool = True, **options: Any
    ) -> UnlearningAttributor:
        settings = {**spec.options.get("config", {}), **options.get("unlearning", {})}
        config = UnlearningConfig(
            **{**settings, "device": device if device != "auto" else settings.get("device", "auto")}
        )
        model = load_model(spec.options["model"], resolve_device(config.device))
        data = load_training_set(
            Path(spec.options["captions"]),
            Path(spec.options["images"]),
            model.config.resolution,
            spec.options.get("prefix", ""),
        )
        return cls(spec, model, in_model_space(model, data), config)

    @classmethod
    def evaluate(cls, spec: SpaceSpec, test_cases: Sequence[TestCase], root: Path, **options: Any) -> list[SpaceResult]:
        return evaluate_unlearning_space(spec, test_cases, root, **options)

    def prepare(self, on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> None:
        """The Fisher and the "before" losses (cached beside the model, so only the first run computes them)."""
        if self._fisher is None:
            self._fisher = cached_fisher(self.model, self.data, self.config, False, on_progress, cancel)
        if self._before is None:
            self._before = cached_losses(self.model, self.data, self.config, False, on_progress, cancel)

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        if not 0 <= row < len(self.data):
            raise IndexError(row)
        return self.data.root / self.data.paths[row], self.data.root

    def scores(
        self,
        query: torch.Tensor,
        prompt: str,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Δloss [N] of every training image for one query [3, r, r], and the timings (ms)."""
        self.prepare(on_progress, cancel)
        kv = cross_attention_kv(self.model.unet)
        original = {k: v.detach().clone() for k, v in kv.items()}
        t0 = time.perf_counter()
        try:
            unlearn(self.model, query, prompt, self._fisher, len(self.data), self.config, False, on_progress, cancel)
            t1 = time.perf_counter()
            after = training_losses(
                self.model, self.data, self.config, False, on_progress, cancel, stage="score after unlearning"
            )
        finally:
            with torch.no_grad():
                for k, p in kv.items():
                    p.copy_(original[k])
        t2 = time.perf_counter()
        return scores_from_losses(self._before, after), {"unlearn": (t1 - t0) * 1000, "score": (t2 - t1) * 1000}

    def attribute(
        self,
        images: Sequence[QueryImage],
        k: int = 100,
        names: Sequence[str] | None = None,
        *,
        prompts: Sequence[str | None] | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[AttributionResult]:
        k = min(check_k(k), len(self.data))
        names = query_names(images, names)
        prompts = list(prompts) if prompts is not None else [None] * len(images)
        out = []
        for image, name, prompt in zip(images, names, prompts, strict=True):
            check_cancelled(cancel)
            prompt = prompt or prompt_of(image)
            if not prompt:
                raise AttributionError(
                    f"{name}: attribution by unlearning needs the prompt the image was generated from; pass "
                    "--prompt TEXT (images made by `attribute diffusion sample` carry it in their metadata)"
                )
            img = image if isinstance(image, Image.Image) else load_rgb(image, max_side=QUERY_MAX_SIDE)
            query = self.model.encode_images(image_tensor(img, self.model.config.resolution)[None])[0].cpu()
            score, timings = self.scores(query, prompt, on_progress, cancel)
            influence = influence_of(score)
            order = np.argsort(-score, kind="stable")[:k]
            results = [
                Attribution(
                    r + 1,
                    str(self.data.root / self.data.paths[i]),
                    float(score[i]),
                    float(influence[i]),
                    int(i),
                    self.data.captions[i],
                )
                for r, i in enumerate(order)
            ]
            out.append(
                AttributionResult(
                    name,
                    self.name,
                    results,
                    float(max(0.0, 1.0 - influence[order].sum())),
                    timings_ms=timings,
                    mass_count=int(np.count_nonzero(influence > 0)),
                    method=self.method,
                    score_kind=self.score_kind,
                    extras={
                        "prompt": prompt,
                        "model": self.model.fingerprint(),
                        "settings": dataclasses.asdict(self.config),
                    },
                )
            )
        return out


def prompt_of(image: QueryImage) -> str | None:
    """The prompt recorded in a generated PNG's metadata (a file or an opened image), if any."""
    if isinstance(image, Image.Image):
        generation = generation_of(image)
    else:
        generation = read_generation(Path(image)) if Path(image).suffix.lower() == ".png" else None
    return generation.prompt if generation else None
