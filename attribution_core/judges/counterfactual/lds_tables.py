"""The LDS's tables under one rule for every method (docs/counterfactual.md): the primary table reads each method's
raw whole-set scores (an additive prediction, as in the field) against the measured loss; the second applies one
shared transform to the scores (a softmax of the standardised scores, its temperature chosen per method on the
validation queries: unlearning included); the third reads the raw scores against the *query-specific* loss (what
every query of the track shares removed: a subset model that is worse at the whole track rewards any
query-agnostic score). Every table carries the baselines (random, caption-only), the cross-validated linear
datamodel and the noise ceiling of the training seeds, per track (gen, val), with intervals that resample query
clusters and subset models, and the pre-registered comparisons with adjusted intervals.

Validation before report: the validation track chooses every setting (temperatures, the datamodel's ridge) and
writes them with the configuration's hash to ``frozen.json``; the reported track refuses to start without it
(unless told ``--no-validation``, which its report then says) and records the hash and the commit it ran at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.errors import AttributionError
from .lds_frozen import Choices
from .lds_run import LdsData
from .lds_stats import (
    bootstrap_lds,
    choose_ridge,
    choose_temperature,
    compare,
    datamodel_effects,
    effects_from_scores,
    holm,
    interval,
    noise_ceiling,
    shared_transform,
    specific_losses,
)

DATAMODEL = "datamodel (CV)"
RULES = {"raw": "raw whole-set score", "shared": "shared transform (softmax of standardised scores, per-method τ)"}
TARGETS = {"loss": "measured loss", "specific": "query-specific loss (the other clusters' mean loss subtracted)"}
#: The tables, in order: (rule, target). The first is the primary one; the comparisons of each are corrected over
#: its tracks.
KINDS = (("raw", "loss"), ("shared", "loss"), ("raw", "specific"))
#: The comparisons named before the reported run (docs/counterfactual.md); those whose methods ran are tested, the
#: correction always counting the whole family (all of them × tracks), so adding a method later widens nothing.
PREREGISTERED = (
    ("unlearning", "caption-only"),
    ("unlearning", "demo_pixel"),
    ("unlearning", "demo_efficientnet_lite0_tuned"),
    ("unlearning", "demo_efficientnet_lite0"),
    ("demo_efficientnet_lite0_tuned", "demo_pixel"),
    ("shapes_distilled", "unlearning"),
)


def choose(data: LdsData) -> Choices:
    """Choose the temperatures and the ridge on the validation queries."""
    queries = data.validation
    if len(queries) < 2:
        raise AttributionError("choosing settings needs at least 2 validation queries")
    temps = {m: choose_temperature(data.member, data.losses, s, queries) for m, s in data.scores.items()}
    return Choices(temps, choose_ridge(data.member, data.losses, queries))


def effects(
    data: LdsData, queries: list[str], rule: str, choices: Choices | None, losses: dict | None = None
) -> dict[str, dict]:
    """Every method's predicted effects per query under ``rule``, and the datamodel's (fitted on ``losses``, by
    default the measured ones)."""
    out = {}
    for method, scores in data.scores.items():
        if rule == "raw":
            tau = {q: scores[q] for q in queries}
        else:
            t = choices.temperatures.get(method, 1e9) if choices else 1e9
            tau = {q: shared_transform(scores[q], t) for q in queries}
        out[method] = effects_from_scores(data.member, tau)
    ridge = choices.ridge if choices else 1.0
    losses = losses if losses is not None else data.losses
    out[DATAMODEL] = {q: datamodel_effects(data.member, losses[q], ridge) for q in queries}
    return out


def track_losses(data: LdsData, queries: list[str], target: str) -> tuple[dict, dict | None]:
    """The losses a table reads for one track's ``queries`` (measured, or query-specific) and the same per training
    seed ([S, M] per query; None when one seed was measured)."""
    clusters = [data.clusters[q] for q in queries]
    seeds = data.seed_losses
    if target == "loss":
        return {q: data.losses[q] for q in queries}, seeds
    specific = specific_losses(data.losses, queries, clusters)
    if not seeds:
        return specific, None
    n = len(next(iter(seeds.values())))
    per_seed = [specific_losses({q: seeds[q][k] for q in queries}, queries, clusters) for k in range(n)]
    return specific, {q: np.stack([p[q] for p in per_seed]) for q in queries}


@dataclass(frozen=True)
class TrackTable:
    rule: str
    track: str
    queries: int
    clusters: int
    rows: list[dict]  # method, mean, low, high, minus_caption, minus_datamodel
    comparisons: list[dict]  # a, b, mean, low, high, p, p_holm, verdict
    per_query: dict[str, dict[str, float]]  # method -> query -> LDS
    target: str = "loss"
    noise_ceiling: float = float("nan")  # mean over the track's queries (NaN: one training seed)


def tables(
    data: LdsData, queries: list[str], choices: Choices | None, resamples: int = 2000, seed: int = 0
) -> list[TrackTable]:
    """Every kind of table (``KINDS``) for every track of ``queries``."""
    tracks = sorted({data.tracks[q] for q in queries})
    present = [p for p in PREREGISTERED if p[0] in data.scores and p[1] in data.scores]
    family = len(PREREGISTERED) * len(tracks)
    out = []
    for rule, target in KINDS:
        kind: list[TrackTable] = []
        for track in tracks:
            qs = [q for q in queries if data.tracks[q] == track]
            clusters = [data.clusters[q] for q in qs]
            losses, seed_losses = track_losses(data, qs, target)
            effect = effects(data, qs, rule, choices, losses)
            boot = bootstrap_lds(effect, losses, qs, clusters, resamples, seed)
            index = {m: i for i, m in enumerate(boot.methods)}
            rows = []
            for m, i in index.items():
                low, high = interval(boot.draws[:, i])
                row = {"method": m, "mean": float(boot.point[i]), "low": low, "high": high}
                for ref, key in (("caption-only", "minus_caption"), (DATAMODEL, "minus_datamodel")):
                    if ref in index and ref != m:
                        row[key] = float(boot.point[i] - boot.point[index[ref]])
                rows.append(row)
            rows.sort(key=lambda r: -r["mean"])
            per_query = {m: dict(zip(qs, boot.per_query[i].tolist(), strict=True)) for m, i in index.items()}
            ceiling = float(np.mean([noise_ceiling(seed_losses[q]) for q in qs])) if seed_losses else float("nan")
            kind.append(TrackTable(rule, track, len(qs), len(set(clusters)), rows, compare(boot, present, family),
                                   per_query, target, ceiling))  # fmt: skip
        holm([c for t in kind for c in t.comparisons], family)  # Holm over every track's comparisons at once
        out += kind
    return out
