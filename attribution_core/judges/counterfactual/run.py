"""The leave-K-out counterfactual check, end to end (docs/method.md §7): train the base model, generate the
queries, rank the training set with every method, retrain without each top-K, and measure what each removal did.

Everything is resumable: retrains are cached by removed set (``retrain``), rankings and measured rows are
appended to files in the output folder as they are made, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ...backbones import create_backbone
from ...core.fileio import atomic_write_json
from ...core.paths import project_root
from ...core.progress import tracked
from ...diffusion.data import TrainingSet, image_tensor, tensor_image
from ...diffusion.generation import FIRST_SAMPLER, Generation, save_generated
from ...diffusion.sample import generate
from .base_model import is_default_base, record_base
from .config import BaseModelConfig, CounterfactualConfig
from .measures import QueryEffect, query_effect
from .rankings import Rankers, random_ranking
from .retrain import removal_key, retrain_without
from .testbed import Testbed

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
RANKINGS = "rankings.json"


@dataclass(frozen=True)
class Query:
    name: str  # "coins-s1"
    prompt: str
    seed: int
    image: torch.Tensor  # [3, r, r] in [-1, 1], as saved (8-bit PNG)


def counterfactual_training_set(config: BaseModelConfig, resolution: int, testbed: Testbed) -> TrainingSet:
    """The first ``views_per_photo`` views of each of ``config.photos`` (every subject when empty), with captions."""
    config = testbed.resolve(config)
    return testbed.training_set(tuple(config.photos), config.views_per_photo, resolution)


def make_queries(
    model, pairs: Sequence[tuple[str, int]], out: Path, testbed: Testbed, file_by_seed: bool = False
) -> list[Query]:
    """Generate the queries ``(photo, seed)`` with the base model, saved as PNGs carrying their generation record
    (``<photo>.png``, or ``<photo>-s<seed>.png`` with ``file_by_seed``)."""
    out.mkdir(parents=True, exist_ok=True)
    queries = []
    for photo, seed in pairs:
        prompt = testbed.prompt(photo)
        x = generate(model, [prompt], [seed], FIRST_SAMPLER)[0].cpu()
        image = tensor_image(x)
        name = f"{photo}-s{seed}"
        png = out / f"{name if file_by_seed else photo}.png"
        save_generated(image, Generation(prompt, seed, model.fingerprint(), FIRST_SAMPLER), png)
        queries.append(Query(name, prompt, seed, image_tensor(image, model.config.resolution)))
    return queries


def default_output(config: CounterfactualConfig) -> Path:
    """``benchmarks/results/counterfactual[_unpaired][_validation]``: one folder per protocol and query set."""
    name = "counterfactual" + ("" if config.paired else "_unpaired") + ("_validation" if config.validation else "")
    return project_root() / "benchmarks" / "results" / name


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_counterfactual(
    config: CounterfactualConfig, testbed: Testbed, out: Path | None = None, progress: bool = True
) -> list[dict]:
    """Run (or resume) the check on ``testbed``; returns one row per (method, query, K[, draw]) with the measured
    changes.

    Rows: ``method, query, k, draw, removed, d_loss, d_mse, d_similarity`` (each Δ: retrained minus base, the
    similarity as base minus retrained, so larger always means the removal hurt the query more).
    """
    out = Path(out) if out else default_output(config)
    out.mkdir(parents=True, exist_ok=True)
    default_base = is_default_base(config, testbed)
    config = testbed.resolve(config)
    cache = project_root() / "feats" / "counterfactual"
    model_config, train = config.model_config(), config.train_config()
    data = counterfactual_training_set(config, model_config.resolution, testbed)
    atomic_write_json(out / "config.json", {**config.to_dict(), "training_images": len(data)})
    base = retrain_without(data, [], cache, model_config, train, progress)
    folder = cache / removal_key([], data, model_config, train)
    if default_base:
        record_base(cache, folder, base.fingerprint(), data.paths, data.captions, data.root)
    queries = make_queries(base, testbed.parse_queries(config.query_specs()), out, testbed)
    backbone = create_backbone("efficientnet_lite0", device=config.device)
    effect = {}

    def measure(model, q: Query) -> QueryEffect:
        return query_effect(model, q.image, q.prompt, q.seed, backbone, config.loss_timesteps, config.loss_draws)

    base_effect = {q.name: measure(base, q) for q in queries}
    rankings = _rankings(config, base, data, queries, out / RANKINGS, testbed)
    rows = _read_rows(out / RESULTS)
    done = {(r["method"], r["query"], r["k"], r["draw"]) for r in rows}
    jobs = [
        (method, q, k, draw)
        for k in config.ks
        for method in config.methods
        for draw in (range(config.random_draws) if method == "random" else [0])
        for q in queries
        if (method, q.name, k, draw) not in done
    ]
    for method, q, k, draw in tracked(jobs, "leave-K-out", progress=progress, unit="measure"):
        ranking = rankings[f"random/{draw}"] if method == "random" else rankings[f"{method}/{q.name}"]
        removed = ranking[:k]
        key = (method, k, draw, tuple(removed))
        if key not in effect:  # random removals are shared by every query: one retrain per draw and K
            effect[key] = retrain_without(data, removed, cache, model_config, train, progress, config.paired)
        e, b = measure(effect[key], q), base_effect[q.name]
        row = {
            "method": method,
            "query": q.name,
            "k": k,
            "draw": draw,
            "removed": [data.paths[i] for i in removed],
            "d_loss": e.loss - b.loss,
            "d_mse": e.mse - b.mse,
            "d_similarity": b.similarity - e.similarity,
        }
        with (out / RESULTS).open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        if len(effect) > 4:  # keep memory flat: retrained models are cached on disk
            effect.pop(next(iter(effect)))
    return rows


def _rankings(
    config: CounterfactualConfig, base, data: TrainingSet, queries: list[Query], path: Path, testbed: Testbed
) -> dict:
    """Each method's top-max(K) for each query (random: per draw), computed once and kept in ``path``."""
    kmax = max(config.ks)
    saved = json.loads(path.read_text()) if path.is_file() else {}
    rankers = Rankers(testbed, base, data, config.device)
    for draw in range(config.random_draws):
        saved.setdefault(f"random/{draw}", random_ranking(len(data), draw)[:kmax].tolist())
    for method in config.methods:
        for q in queries:
            key = f"{method}/{q.name}"
            if method == "random" or key in saved:
                continue
            log.info("ranking the training set for %s with %s", q.name, method)
            order = rankers.ranking(method, tensor_image(q.image), q.prompt, data)
            saved[key] = order[:kmax].tolist()
            atomic_write_json(path, saved)
    atomic_write_json(path, {**saved, "settings": rankers.settings()})
    return saved
