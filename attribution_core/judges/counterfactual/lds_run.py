"""The linear datamodeling score, end to end (docs/method.md §8, docs/counterfactual.md): train the base model and
the ``M`` subset models under every training seed once, make the reported and validation queries (generations of
the base model; a testbed's held-out images), measure every query's loss under every model (averaged over the
training seeds), and ask every method for its raw scores over the whole training set.

Everything is resumable: models are cached by subset and seed (the testbed's ``Retrainer``), and measured losses
and method scores are kept in the output folder as they are made, so an interrupted run picks up where it
stopped. ``train_lds_models`` trains the models and stops (the long part, for a background run). The tables are
made from what this returns (``lds_tables``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...attribute.interface import Sample
from ...attribute.rows import rows_held, scores_of_files
from ...core.errors import AttributionError
from ...core.fileio import atomic_path, atomic_write_json
from ...core.paths import project_root
from ...core.progress import tracked
from ...diffusion.data import TrainingSet, image_tensor
from ...diffusion.generation import FIRST_SAMPLER, Generation, save_generated
from ...diffusion.model import MODEL_INDEX, TextToImageModel
from ...diffusion.objective import fixed_draws, fixed_noise_losses
from ...diffusion.sample import generate
from .base_model import is_default_base, record_base
from .config import LdsConfig
from .lds_frozen import load_frozen
from .measures import LOSS_NOISE_SEED
from .rankings import Rankers, caption_scores, random_scores
from .run import Query, counterfactual_training_set
from .subsets import SUBSETS, draw_subsets, save_subsets
from .testbed import QuerySpec, Testbed

log = logging.getLogger(__name__)

LOSSES = "losses.jsonl"
SCORES = "scores.json"
QUERIES = "queries.json"
#: Baselines the harness computes itself (no attributor): seeded random scores, and the caption-only rule (how many
#: words a training caption shares with the query's prompt: what the prompt alone gives away).
RANDOM, CAPTION_ONLY = "random", "caption-only"
BASELINES = (RANDOM, CAPTION_ONLY)
#: Queries measured together in one forward pass.
LOSS_CHUNK = 16


@dataclass(frozen=True)
class LdsData:
    """What the LDS is computed from: subsets, each query's loss under each model, each method's raw scores."""

    member: np.ndarray  # [M, N] subset membership
    losses: dict[str, np.ndarray]  # query name -> [M] loss under each subset model, averaged over training seeds
    base_losses: dict[str, float]  # query name -> loss under the base model
    scores: dict[str, dict[str, np.ndarray]]  # method -> query name -> [N] raw scores
    reported: list[str]  # reported query names
    validation: list[str]  # validation query names
    clusters: dict[str, str]  # query name -> its cluster (attribute combination, photo)
    tracks: dict[str, str]  # query name -> "gen" or "val"
    seed_losses: dict[str, np.ndarray] | None = None  # query name -> [seeds, M]


def default_lds_output(testbed: str = "demo-photos") -> Path:
    """``benchmarks/results/lds`` for the photo testbed, ``benchmarks/results/lds_<name>`` for another."""
    name = "lds" if testbed == "demo-photos" else "lds_" + testbed.replace("-", "_")
    return project_root() / "benchmarks" / "results" / name


def lds_cache() -> Path:
    """Where the retrained models live (shared with leave-K-out: the base model is the same retrain)."""
    return project_root() / "feats" / "counterfactual"


def _prepare(config: LdsConfig, out: Path, testbed: Testbed, progress: bool):
    """The resolved configuration, the training set, the subsets (saved to ``out``), the retrainer and the base
    model (trained or found cached)."""
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
    return config, data, member, retrainer, base


def train_lds_models(
    config: LdsConfig, out: Path, testbed: Testbed, progress: bool = True
) -> tuple[TrainingSet, np.ndarray]:
    """Train (or find cached) the base model and every subset model under every training seed on ``testbed``'s
    training set (seed by seed, so an interrupted sweep already holds whole seeds); the subsets are saved to
    ``out``. (``run_lds`` does not need this first: it trains each model when it measures it.)"""
    config, data, member, retrainer, _ = _prepare(config, out, testbed, progress)
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


def query_digest(query: Query) -> str:
    """The query as the models read it (its prompt, its tensor's shape and values), hashed: a measured loss or a
    score is reused only for the same query, so a query made again differently (another base model, another seed,
    another caption) is measured again."""
    image = query.image.detach().cpu().float().contiguous()
    head = f"{query.prompt}\0{tuple(image.shape)}\0".encode()
    return hashlib.sha256(head + image.numpy().tobytes()).hexdigest()[:16]


def _read_jsonl(path: Path) -> list[dict]:
    """The rows of ``path``; a line cut short (a run killed mid-write, a copy taken mid-write) is skipped with a
    warning: what it held is measured again."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s, line %d: cut short; what it held is measured again", path.name, n)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append ``rows``, on a line of their own even after a line cut short."""
    cut = False
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as f:
            f.seek(-1, 2)
            cut = f.read(1) != b"\n"
    with path.open("a") as f:
        f.write(("\n" if cut else "") + "".join(json.dumps(r) + "\n" for r in rows))


def make_lds_queries(base: TextToImageModel, specs: list[QuerySpec], out: Path) -> list[Query]:
    """The queries as files under ``out`` (``<name>.png``): generations of ``base`` (carrying their generation
    record), and held-out images with their caption; each as the model reads it."""
    gen = [s for s in specs if s.path is None]
    images: dict[str, Image.Image] = {}
    for i in range(0, len(gen), 16):
        chunk = gen[i : i + 16]
        x = generate(base, [s.prompt for s in chunk], [int(s.seed or 0) for s in chunk], FIRST_SAMPLER).cpu()
        for s, xi in zip(chunk, x, strict=True):
            images[s.name] = Image.fromarray(((xi.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    queries = []
    for s in specs:
        png = out / f"{s.name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        if s.path is None:
            image = images[s.name]
            save_generated(image, Generation(s.prompt, int(s.seed or 0), base.fingerprint(), FIRST_SAMPLER), png)
        else:
            image = Image.open(s.path).convert("RGB")
            with atomic_path(png, ".png") as tmp:
                image.save(tmp, format="PNG")
        tensor = image_tensor(image, base.config.resolution)
        queries.append(Query(s.name, s.prompt, int(s.seed or 0), tensor, png, s.cluster, s.track))
    return queries


def query_losses(model: TextToImageModel, queries: list[Query], timesteps: int, draws: int) -> list[float]:
    """Each query's DDPM loss under ``model`` on the fixed noise and timesteps (``LOSS_CHUNK`` queries a pass)."""
    out: list[float] = []
    shape = model.sample_shape()
    t, noise = fixed_draws(model.config.num_train_timesteps, timesteps, draws, LOSS_NOISE_SEED, shape)
    with torch.no_grad():
        for i in range(0, len(queries), LOSS_CHUNK):
            chunk = queries[i : i + LOSS_CHUNK]
            x = model.encode_images(torch.stack([q.image for q in chunk]))
            out += fixed_noise_losses(model, x, [q.prompt for q in chunk], t, noise, torch.float64).tolist()
    return out


def _measure_losses(
    config: LdsConfig,
    testbed: Testbed,
    data: TrainingSet,
    member: np.ndarray,
    queries: list[Query],
    out: Path,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
    """Every query's loss under the base model and every subset model under every training seed (fixed noise and
    timesteps; a model's queries are measured together, always in the same order), cached in ``LOSSES`` by the
    model's key and the query's name and digest. A model is trained (or found cached) when it is measured, and one
    whose losses are all in ``LOSSES`` is not trained at all: ``LOSSES`` alone resumes a run on a new machine."""
    retrainer = testbed.retrainer(config, data, lds_cache())
    measure = [config.loss_timesteps, config.loss_draws]
    models = [("base", (), config.seed)] + [
        (str(j), tuple(np.flatnonzero(~member[j]).tolist()), s)
        for s in config.training_seeds
        for j in range(len(member))
    ]
    keys = {(name, seed): retrainer.key(removed, seed) for name, removed, seed in models}
    digests = {q.name: query_digest(q) for q in queries}
    have = {
        (r["key"], r["query"]): r["loss"]
        for r in _read_jsonl(out / LOSSES)
        if r.get("measure") == measure and r.get("query") in digests and r.get("digest") == digests[r["query"]]
    }
    todo = [(n, r, s) for n, r, s in models if any((keys[(n, s)], q.name) not in have for q in queries)]
    log.info("%d of %d models to measure (each trained first unless cached)", len(todo), len(models))
    for name, removed, seed in tracked(todo, "query losses", progress=progress, unit="model"):
        model = retrainer.model(removed, seed)
        key = keys[(name, seed)]
        rows = [
            {
                "model": name,
                "seed": seed,
                "key": key,
                "query": q.name,
                "digest": digests[q.name],
                "loss": v,
                "measure": measure,
            }
            for q, v in zip(queries, query_losses(model, queries, *measure), strict=True)
        ]
        have.update({(key, r["query"]): r["loss"] for r in rows})
        _append_jsonl(out / LOSSES, rows)
    seeds = config.training_seeds
    per_seed = {
        q.name: np.array([[have[(keys[(str(j), s)], q.name)] for j in range(len(member))] for s in seeds])
        for q in queries
    }
    base = {q.name: have[(keys[("base", config.seed)], q.name)] for q in queries}
    return {q: v.mean(axis=0) for q, v in per_seed.items()}, base, per_seed


def _method_scores(
    config: LdsConfig,
    base: TextToImageModel,
    data: TrainingSet,
    queries: list[Query],
    out: Path,
    progress: bool,
    testbed: Testbed,
) -> dict[str, dict[str, np.ndarray]]:
    """Every method's raw scores over the training set for every query, computed once and kept in ``SCORES``:
    ``{method: {query: [N]}}``. A method that holds the training set (unlearning on the base model, a space over the
    same files) scores it query by query; any other scores the training files as extra candidates."""
    path = out / SCORES
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("training_set") != list(data.paths) or saved.get("base") != base.fingerprint():
        saved = {"training_set": list(data.paths), "base": base.fingerprint()}  # another set or model: score again
    done = saved.setdefault("score", {})
    digests = saved.setdefault("digests", {})
    for q in queries:  # a query made again differently is scored again
        if digests.get(q.name) != query_digest(q):
            for method_scores in done.values():
                method_scores.pop(q.name, None)
            digests[q.name] = query_digest(q)
    rankers = Rankers(testbed, base, data, config.device)
    for method in config.methods:
        missing = [(i, q) for i, q in enumerate(queries) if q.name not in done.get(method, {})]
        if not missing:
            continue
        if method in BASELINES:
            for i, q in missing:
                s = (
                    random_scores(len(data), config.subset_seed * 1_000 + i)
                    if method == RANDOM
                    else caption_scores(q.prompt, data.captions)
                )
                done.setdefault(method, {})[q.name] = s.tolist()
            atomic_write_json(path, saved)
            continue
        attributor = rankers.attributor(method)
        rows = rows_held(attributor, data)
        if rows is None:  # the method never trained on these files: score them as extra candidates, all at once
            log.info("scoring %d queries with %s (training files as candidates)", len(missing), method)
            got = scores_of_files(attributor, [Sample(q.path, q.prompt) for _, q in missing], data)
            for (_, q), s in zip(missing, got, strict=True):
                done.setdefault(method, {})[q.name] = s.astype(np.float64).tolist()
            atomic_write_json(path, saved)
            continue
        for _, q in tracked(missing, f"{method} scores", progress=progress, unit="query"):
            image = Image.open(q.path).convert("RGB")
            s = attributor.scores([image], prompts=[q.prompt])[0][rows]
            done.setdefault(method, {})[q.name] = np.asarray(s, dtype=np.float64).tolist()
            atomic_write_json(path, saved)
    return {m: {q.name: np.asarray(done[m][q.name]) for q in queries} for m in config.methods}


TRACKS = ("reported", "validation")


def run_lds(config: LdsConfig, testbed: Testbed, out: Path | None = None, progress: bool = True) -> LdsData:
    """Run (or resume) one track of the LDS on ``testbed``: the validation queries (``--track validation``: every
    setting is chosen on them) or the reported ones; only that track's queries are made and measured, so a
    validation run has never seen a reported number. Returns what the tables are computed from."""
    if config.track not in TRACKS:
        raise AttributionError(f"--track must be one of {', '.join(TRACKS)}, not {config.track!r}")
    out = Path(out) if out else default_lds_output(config.testbed)
    if config.track == "reported":  # before any model is trained or any reported query is made
        load_frozen(testbed.resolve(config), out)
    config, data, member, _, base = _prepare(config, out, testbed, progress)
    validation = config.track == "validation"
    specs, others = testbed.lds_queries(config, validation), testbed.lds_queries(config, not validation)
    if {s.name for s in specs} & {s.name for s in others} or {s.cluster for s in specs} & {s.cluster for s in others}:
        raise AttributionError("the validation queries must differ from the reported ones (other subjects or seeds)")
    queries = make_lds_queries(base, specs, out / ("validation_queries" if validation else "queries"))
    atomic_write_json(
        out / ("validation_" + QUERIES if validation else QUERIES),
        [{"name": q.name, "prompt": q.prompt, "cluster": q.cluster, "track": q.track} for q in queries],
    )
    losses, base_losses, per_seed = _measure_losses(config, testbed, data, member, queries, out, progress)
    scores = _method_scores(config, base, data, queries, out, progress, testbed)
    names = [q.name for q in queries]
    return LdsData(
        member, losses, base_losses, scores, [] if validation else names, names if validation else [],
        clusters={q.name: q.cluster for q in queries}, tracks={q.name: q.track for q in queries},
        seed_losses=per_seed,
    )  # fmt: skip
