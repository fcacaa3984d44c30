"""Settings of ``attribute distill label`` (the CLI's flags are generated from these fields) and a distilled
space's options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import REQUIRED, option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ..features.attributor import FeatureOptions

#: First generation seed of the labelling queries: far above every seed a reported query, test case or benchmark
#: uses (all below 1,000), so no label is ever a query the student is judged on.
LABEL_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class LabelConfig:
    """What to label and how (docs/method.md §9)."""

    space: str = option("demo_unlearning", "the unlearning space whose model generates and attributes the queries")
    queries: int = option(
        1000, "labelled queries (query i uses seed base + i; more queries extend the store)", minimum=1
    )
    candidates: int = option(200, "training images scored per query: the candidate space's top N", minimum=1)
    candidate_space: str = option("", "the fast space that picks the candidates (default: the unlearning space's own)")
    validation_every: int = option(10, "every n-th query is held out for validation (never trained on)", minimum=2)
    seed_base: int = option(LABEL_SEED_BASE, "generation seed of query 0")
    caption_share: float = option(
        0.5, "share of queries whose prompt is a training caption; the rest combine a caption's subject with "
        "other captions' modifiers"
    , minimum=0, maximum=1)  # fmt: skip
    engine: str = option("local", "local (this process) or ray (one task per query on a pool of workers)")
    workers: int = option(2, "Ray workers, each holding the model (engine ray)", minimum=1)
    address: str = option("", "a running Ray cluster to join (engine ray; default: a local Ray instance)")
    gpus_per_worker: float = option(0.0, "GPUs per Ray worker (engine ray)", minimum=0)
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)


@dataclass(frozen=True, kw_only=True)
class DistilledOptions(FeatureOptions):
    """What a distilled space names in ``options`` (besides a feature space's index settings): the student's folder
    (from ``attribute distill train``) and the diffusion model whose text encoder reads the prompts."""

    student: Path = option(REQUIRED, "the student's folder (student.safetensors, student.json, store/)", path=True)
    model: Path = option(REQUIRED, "the diffusion model whose text encoder reads prompts (model_index.json)", path=True)
