"""The unlearning method (AbU) as a registered Attributor: forget the query, rank training images by how much
their loss rises (docs/method.md §6).

A space of this method names its model and training set in ``options``::

    {"model": MODEL_DIR, "captions": CAPTIONS.jsonl, "images": IMAGE_ROOT, "prefix": "corpus/", "config": {...}}

Influence: with a calibrator fitted on ground truth (``attribute calibrate``; the space's ``calibrator``), the
calibrated soft assignment over each image's loss rise relative to the query's largest (docs/method.md §6: rises
differ in scale from query to query, their ratios do not); without one, the query's share of the total loss rise,
p_i = max(Δ_i, 0) / Σ_j max(Δ_j, 0), which is nearly flat. With ``candidates`` (``candidates.py``) only a fast
space's top N are scored after unlearning; the others score −inf, get no share, and the result says how many were
scored.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribute.calibration import Calibrator, soft_influence
from ..attribute.interface import Attributor, Capabilities, Query, Ranking, TrainingRecord, ranking_from_scores
from ..attribute.spaces import SpaceSpec, space_calibrator
from ..core.config import parse_options
from ..core.device import resolve_device
from ..core.errors import AttributionError
from ..core.images import load_rgb
from ..core.paths import display_path
from ..core.progress import CancelFlag, ProgressCallback, Tracker, check_cancelled
from ..diffusion.customize import apply_customization
from ..diffusion.data import TrainingSet, image_tensor, load_training_set
from ..diffusion.generation import prompt_of
from ..diffusion.load import in_model_space, load_model
from ..diffusion.model import TextToImageModel, cross_attention_kv
from ..registry import register_method
from .caches import cached_fisher, cached_losses
from .candidates import CandidatePicker
from .config import UnlearningConfig, UnlearningOptions
from .scores import relative_rise, scores_from_losses, share_of_rise, training_losses, unlearn


@register_method
class UnlearningAttributor(Attributor):
    """AbU: Fisher-preconditioned unlearning of the query, then the training images' loss rise."""

    method = "unlearning"
    score_kind = "delta_loss"
    capabilities = Capabilities(interactive=False, needs_prompt=True, uses_prompt=True, batchable=False)
    Options = UnlearningOptions
    description = "unlearn the generated image from the diffusion model; rank training images by their loss rise"

    def __init__(
        self,
        spec: SpaceSpec,
        model: TextToImageModel,
        data: TrainingSet | Callable[[], TrainingSet],
        config: UnlearningConfig,
        calibrator: Calibrator | None = None,
        progress: bool = False,
    ):
        """``data``: the training set, or how to load it (then loaded by :meth:`prepare`, or when first needed);
        ``calibrator``: fitted on ground truth (None: each image's share of the loss rise); ``progress``: bars (with
        ETA) on the terminal for the one-time Fisher and "before" losses."""
        self.spec = spec
        self.progress = progress
        self.calibrator = calibrator
        self.name = spec.name
        self.model = model
        self.config = config
        self._data = data if isinstance(data, TrainingSet) else None
        self._load_data = None if isinstance(data, TrainingSet) else data
        self._fisher: dict[str, torch.Tensor] | None = None
        self._before: np.ndarray | None = None
        self._picker = (
            CandidatePicker(config.candidate_space, config.candidates, config.device) if config.candidates else None
        )

    @property
    def data(self) -> TrainingSet:
        """The training set, as the model denoises it (VAE latents for Stable Diffusion)."""
        if self._data is None:
            self._data = self._load_data()
        return self._data

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        options = cls.options_of(spec)
        out = []
        if not (options.model / "model_index.json").is_file():
            out.append(f"diffusion model {display_path(options.model)}")
        if not options.captions.is_file():
            out.append(display_path(options.captions))
        if isinstance(spec.calibrator, Path) and not spec.calibrator.is_file():
            out.append(display_path(spec.calibrator))
        return tuple(out)

    @classmethod
    def load(
        cls, spec: SpaceSpec, *, device: str = "auto", progress: bool = True, **options: Any
    ) -> UnlearningAttributor:
        """The model (the training set is read, and encoded for a latent model, by ``prepare`` with the Fisher and
        the "before" losses).

        Settings over the space's own come as ``create_attributor(space, {"config": {...}})``, like any method's.
        """
        space = cls.options_of(spec)
        settings = dataclasses.asdict(space.config)
        if device != "auto":
            settings["device"] = device
        config = parse_options(UnlearningConfig, settings, None, f"space {spec.name!r}: unlearning settings")
        model = load_model(space.model, resolve_device(config.device))

        def training_set() -> TrainingSet:
            data = load_training_set(space.captions, space.images, model.config.resolution, space.prefix)
            return in_model_space(model, data)

        calibrator = space_calibrator(spec) if isinstance(spec.calibrator, Path) else None
        return cls(spec, model, training_set, config, calibrator, progress=progress)

    @property
    def options(self) -> UnlearningOptions:
        """The space's parsed options (its model folder, training set, settings)."""
        return self.options_of(self.spec)

    def calibrated_scores(self, scores: np.ndarray) -> np.ndarray:
        """Loss rises relative to the query's largest: what the calibrator reads (module docstring)."""
        return relative_rise(scores)

    def training_paths(self) -> list[Path]:
        return [self.data.root / p for p in self.data.paths]

    def candidate_scores(self, queries, candidates, progress=False, cancel=None) -> np.ndarray:
        """Loss rises [nq, n_rows + n_extra] of the chosen training rows and the extra images (each captioned as
        given) when each query is unlearned from the model, or from its variant (a customised model's folder): the
        Fisher stays the base model's over the training set (a customisation changes the k/v weights a little), the
        "before" losses are the variant's own (cached)."""
        where = candidates.where or "the candidate set"
        if candidates.variant is None and candidates.generated_by_variant:
            raise AttributionError(
                f"{where} names no customised model; attribution by unlearning needs the model that generated the "
                "images"
            )
        self.prepare()  # the base model's Fisher over the training set (cached)
        model = self.model
        if candidates.variant is not None:
            model = apply_customization(load_model(self.options.model, self.model.device), candidates.variant)
        for s in [*queries, *candidates.extra]:
            if s.text is None:
                raise AttributionError(f"{where}: no prompt or caption for {s.path}; unlearning needs it")
        rows = np.asarray(candidates.rows, dtype=np.int64)
        images = [self.data.images[rows]]
        if candidates.extra:
            pixels = torch.stack([image_tensor(load_rgb(s.path), model.config.resolution) for s in candidates.extra])
            images.append(model.encode_images(pixels).cpu())
        scored = TrainingSet(
            torch.cat(images),
            [self.data.captions[r] for r in rows] + [str(s.text) for s in candidates.extra],
            [self.data.paths[r] for r in rows] + [str(s.path) for s in candidates.extra],
            self.data.root,
        )
        before = cached_losses(model, scored, self.config, progress)
        kv = cross_attention_kv(model.unet)  # what unlearning changes, restored after each query
        original = {k: v.detach().clone() for k, v in kv.items()}
        out = []
        for q in queries:
            check_cancelled(cancel)
            pixels = image_tensor(load_rgb(q.path), model.config.resolution)
            query = model.encode_images(pixels[None])[0].cpu()
            try:
                unlearn(model, query, str(q.text), self.fisher, len(self.data), self.config)
                after = training_losses(model, scored, self.config)
            finally:
                with torch.no_grad():
                    for k, p in kv.items():
                        p.copy_(original[k])
            out.append(scores_from_losses(before, after))
        return np.stack(out) if out else np.zeros((0, len(candidates)))

    @property
    def fisher(self) -> dict[str, torch.Tensor]:
        """The diagonal Fisher of the base model over the training set (call :meth:`prepare` first)."""
        assert self._fisher is not None, "call prepare() first"
        return self._fisher

    def prepare(self, on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> None:
        """The training set, the Fisher and the "before" losses (cached beside the model, so only the first run
        computes them)."""
        if self._data is None:
            for _ in Tracker(False, on_progress, cancel).track([None], "load the training set"):
                self._data = self._load_data()
        if self._fisher is None:
            self._fisher = cached_fisher(self.model, self.data, self.config, self.progress, on_progress, cancel)
        if self._before is None:
            self._before = cached_losses(self.model, self.data, self.config, self.progress, on_progress, cancel)

    def __len__(self) -> int:
        return len(self.data)

    def training_record(self, row: int) -> TrainingRecord:
        return TrainingRecord(self.data.root / self.data.paths[row], self.data.captions[row])

    @property
    def prepared(self) -> bool:
        return self._data is not None and self._fisher is not None and self._before is not None

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        if not 0 <= row < len(self.data):
            raise IndexError(row)
        return self.data.root / self.data.paths[row], self.data.root

    def scores_of(
        self,
        query: torch.Tensor,
        prompt: str,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Δloss [N] of every training image for one query [3, r, r] in the model's space, and the timings (ms).

        Args:
            rows: score only these training rows after unlearning (candidates); the others score −inf.
        """
        self.prepare(on_progress, cancel)
        data, before = self.data, self._before
        if rows is not None and len(rows) < len(data):
            keep = np.zeros(len(data), dtype=bool)
            keep[rows] = True
            data, before = data.subset(keep), np.concatenate([before[rows], before[len(keep) + rows]])
        kv = cross_attention_kv(self.model.unet)
        original = {k: v.detach().clone() for k, v in kv.items()}
        t0 = time.perf_counter()
        try:
            unlearn(self.model, query, prompt, self._fisher, len(self.data), self.config, False, on_progress, cancel)
            t1 = time.perf_counter()
            after = training_losses(
                self.model, data, self.config, False, on_progress, cancel, stage="score after unlearning"
            )
        finally:
            with torch.no_grad():
                for k, p in kv.items():
                    p.copy_(original[k])
        t2 = time.perf_counter()
        timings = {"unlearn": (t1 - t0) * 1000, "score": (t2 - t1) * 1000}
        if data is self.data:
            return scores_from_losses(before, after), timings
        scores = np.full(len(self.data), -np.inf)
        scores[rows] = scores_from_losses(before, after)
        return scores, timings

    def whole_set_scores(self, queries, on_progress=None, cancel=None) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The loss rise of every training image when each query is unlearned [nq, N] (one query at a time)."""
        scores, timings = [], []
        for q in queries:
            check_cancelled(cancel)
            t0 = time.perf_counter()
            rows = self._picker.rows(q.image, q.prompt, self.data) if self._picker else None
            picked = {"candidates": (time.perf_counter() - t0) * 1000} if rows is not None else {}
            pixels = image_tensor(q.image, self.model.config.resolution)[None]
            score, t = self.scores_of(self.model.encode_images(pixels)[0].cpu(), q.prompt, on_progress, cancel, rows)
            scores.append(score)
            timings.append({**picked, **t})
        return np.stack(scores), timings

    def rank(self, queries, ks, on_progress=None, cancel=None) -> list[Ranking]:
        """The template's ranking, listing no more images than were scored (candidates), and saying how many."""
        scores, timings = self.whole_set_scores(queries, on_progress, cancel)
        out = []
        for s, k, t, q in zip(scores, ks, timings, queries, strict=True):
            scored = int(np.isfinite(s).sum())
            extras = {**self.extras(q), **({"scored": scored} if scored < len(s) else {})}
            ranking = ranking_from_scores(s, min(k, scored), self.influence(s), t, extras)
            ranking.calibrator = self.calibrator
            out.append(ranking)
        return out

    def influence(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated soft assignment over relative loss rises, or each image's share of the total rise without
        a calibrator or when nothing rose (module docstring); unscored candidates get none."""
        relative = relative_rise(scores)
        scored = np.isfinite(relative)
        if self.calibrator is None or not (relative[scored] > 0).any():
            return share_of_rise(np.where(scored, scores, 0.0))
        out = np.zeros(len(scores))
        out[scored] = soft_influence(relative[scored], self.calibrator)
        return out

    def extras(self, query: Query) -> dict[str, Any]:
        truncates = getattr(self.model.tokenizer, "truncates", None)  # the demo model's tokenizer says so
        cut = bool(truncates and query.prompt and truncates(query.prompt))
        return {
            "prompt": query.prompt,
            **({"prompt_truncated": True} if cut else {}),  # the model read only the prompt's first tokens
            "model": self.model.fingerprint(),
            "settings": dataclasses.asdict(self.config),
        }


__all__ = ["UnlearningAttributor", "prompt_of"]  # prompt_of: diffusion/generation.py, re-exported for callers
