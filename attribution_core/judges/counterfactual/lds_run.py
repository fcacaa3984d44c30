"""The linear datamodeling score, end to end (docs/method.md §8): train the base model and the ``M`` subset models
once, generate the reported and validation queries, measure every query's loss under every model, ask every
method for its scores over the whole training set, and compute each method's LDS per query.

Everything is resumable: models are cached by subset (``subsets``), and measured losses and method scores are
kept in the output folder as they are made, so an interrupted run picks up where it stopped. ``train_only``
trains the models and stops (the long part, for a background run).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.errors import AttributionError
from ...core.fileio import atomic_write_json
from ...core.paths import project_root
from ...core.progress import tracked
from ...diffusion.data import TrainingSet, tensor_image
from ...diffusion.model import MODEL_INDEX, TextToImageModel
from .base_model import is_default_base, record_base
from .config import LdsConfig
from .lds import LdsTable, lds_table
from .measures import query_loss
from .rankings import Rankers, random_scores
from .retrain import removal_key, retrain_without
from .run import Query, counterfactual_training_set, make_queries
from .subsets import SUBSETS, draw_subsets, save_subsets, subset_models
from .testbed import Testbed

log = logging.getLogger(__name__)

LOSSES = "losses.jsonl"
SCORES = "scores.json"
#: What a method's attribution tau can be: its raw score, or its influence (the share it reports).
TAUS = ("score", "influence")
BASE = "base"


@dataclass(frozen=True)
class LdsData:
    """What the LDS is computed from: subsets, each query's loss under each model, each method's scores."""

    member: np.ndarray  # [M, N] subset membership
    losses: dict[str, np.ndarray]  # query name -> [M] loss under each subset model
    base_losses: dict[str, float]  # query name -> loss under the base model
    scores: dict[str, dict[str, np.ndarray]]  # method -> query name -> [N] tau (the configured kind)
    reported: list[str]  # reported query names
    validation: list[str]  # validation query names
    every_tau: dict[str, dict[str, dict[str, np.ndarray]]] | None = None  # tau -> method -> query -> [N]

    def table(self, validation: bool = False, resamples: int = 10_000, tau: str | None = None) -> LdsTable:
        """The LDS table of the reported queries (or of the validation ones), for the configured tau (or ``tau``)."""
        scores = self.scores if tau is None else self.every_tau[tau]
        return lds_table(self.member, self.losses, scores, self.validation if validation else self.reported, resamples)


def default_lds_output() -> Path:
    return project_root() / "benchmarks" / "results" / "lds"


def lds_cache() -> Path:
    """Where the retrained models live (shared with leave-K-out: the base model is the same retrain)."""
    return project_root() / "feats" / "counterfactual"


def train_lds_models(
    config: LdsConfig, out: Path, testbed: Testbed, progress: bool = True
) -> tuple[TrainingSet, np.ndarray]:
    """Train (or find cached) the base model and every subset model under every training seed on ``testbed``'s
    training set (seed by seed, so an interrupted sweep already holds whole seeds); the subsets are saved to
    ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    default_base = is_default_base(config, testbed)
    config = testbed.resolve(config)
    data = counterfactual_training_set(config, testbed.resolution(config), testbed)
    member = draw_subsets(len(data), config.subsets, config.alpha, config.subset_seed)
    save_subsets(member, data, out / SUBSETS)
    atomic_write_json(out / "config.json", {**config.to_dict(), "training_images": len(data)})
    retrainer = testbed.retrainer(config, data, lds_cache())
    base = retrainer.model([], config.seed, progress)
    if default_base:
        folder = lds_cache() / retrainer.key([], config.seed)
        record_base(lds_cache(), folder, base.fingerprint(), data.paths, data.captions, data.root)
    jobs = [(j, s) for s in config.training_seeds for j in range(len(member))]
    todo = [
        (j, s)
        for j, s in jobs
        if not (lds_cache() / retrainer.key(np.flatnonzero(~member[j]), s) / MODEL_INDEX).is_file()
    ]
    log.info("%d of %d subset models to train (%d seeds)", len(todo), len(jobs), len(config.training_seeds))
    for j, s in tracked(jobs, "subset models", progress=progress, unit="model"):
        retrainer.model(np.flatnonzero(~member[j]), s)
    return data, member


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _measure_losses(
    config: LdsConfig,
    data: TrainingSet,
    member: np.ndarray,
    base: TextToImageModel,
    queries: list[Query],
    out: Path,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every query's loss under the base model and every subset model (fixed noise and timesteps), cached."""
    model_config, train = config.model_config(), config.train_config()
    keys = {BASE: removal_key([], data, model_config, train, config.paired)}
    for j in range(len(member)):
        keys[str(j)] = removal_key(np.flatnonzero(~member[j]), data, model_config, train, config.paired)
    have = {(r["model"], r["query"]): r["loss"] for r in _read_jsonl(out / LOSSES) if keys.get(r["model"]) == r["key"]}

    def measure(name: str, model: TextToImageModel) -> None:
        rows = []
        for q in queries:
            if (name, q.name) not in have:
                loss = query_loss(model, q.image, q.prompt, config.loss_timesteps, config.loss_draws)
                have[(name, q.name)] = loss
                rows.append({"model": name, "key": keys[name], "query": q.name, "loss": loss})
        with (out / LOSSES).open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    measure(BASE, base)
    todo = [j for j in range(len(member)) if any((str(j), q.name) not in have for q in queries)]
    for j in tracked(todo, "query losses", progress=progress, unit="model"):
        model = retrain_without(
            data, np.flatnonzero(~member[j]), lds_cache(), model_config, train, False, config.paired
        )
        measure(str(j), model)
    losses = {q.name: np.array([have[(str(j), q.name)] for j in range(len(member))]) for q in queries}
    return losses, {q.name: have[(BASE, q.name)] for q in queries}


def _method_scores(
    config: LdsConfig,
    base: TextToImageModel,
    data: TrainingSet,
    queries: list[Query],
    out: Path,
    progress: bool,
    testbed: Testbed,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Every method's raw scores and influence over the training set for every query (``TAUS``), computed once and
    kept in ``SCORES``: ``{tau: {method: {query: [N]}}}``."""
    path = out / SCORES
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("training_set") != list(data.paths) or set(saved) - {"training_set", *TAUS}:
        saved = {"training_set": list(data.paths)}  # another training set, or an older layout: score again
    for tau in TAUS:
        saved.setdefault(tau, {})
    rankers = Rankers(testbed, base, data, config.device)
    jobs = [(m, i, q) for m in config.methods for i, q in enumerate(queries) if q.name not in saved["score"].get(m, {})]
    for method, i, q in tracked(jobs, "method scores", progress=progress, unit="query"):
        if method == "random":  # random scores rank nothing: their "influence" is the scores themselves
            s = f = random_scores(len(data), config.subset_seed * 1_000 + i)
        else:
            s, f = rankers.scores(method, tensor_image(q.image), q.prompt, data)
        saved["score"].setdefault(method, {})[q.name] = s.tolist()
        saved["influence"].setdefault(method, {})[q.name] = f.tolist()
        atomic_write_json(path, saved)
    return {t: {m: {q: np.asarray(v) for q, v in saved[t][m].items()} for m in config.methods} for t in TAUS}


def run_lds(config: LdsConfig, testbed: Testbed, out: Path | None = None, progress: bool = True) -> LdsData:
    """Run (or resume) the LDS on ``testbed``; returns what it is computed from (``LdsData.table`` makes the
    tables)."""
    out = Path(out) if out else default_lds_output()
    if config.tau not in TAUS:
        raise AttributionError(f"--tau must be one of {', '.join(TAUS)}, not {config.tau!r}")
    data, member = train_lds_models(config, out, testbed, progress)
    config = testbed.resolve(config)
    base = retrain_without(data, [], lds_cache(), config.model_config(), config.train_config(), progress)
    reported = make_queries(base, config.queries(), out / "queries", testbed, file_by_seed=True)
    validation = make_queries(base, config.queries(validation=True), out / "validation_queries", testbed, True)
    if {q.name for q in reported} & {q.name for q in validation}:
        raise AttributionError("the validation seeds must differ from the reported seeds")
    queries = reported + validation
    losses, base_losses = _measure_losses(config, data, member, base, queries, out, progress)
    every = _method_scores(config, base, data, queries, out, progress, testbed)
    names = [q.name for q in reported], [q.name for q in validation]
    return LdsData(member, losses, base_losses, every[config.tau], *names, every)
