"""The LDS's tables under one rule for every method (docs/counterfactual.md): the primary table reads each method's
raw whole-set scores (an additive prediction, as in the field), the second one shared transform of them (a softmax
of the standardised scores, its temperature chosen per method on the validation queries: unlearning included).
Both carry the baselines (random, caption-only) and the empirical ceiling, per track (gen, val), with intervals that
resample query clusters and subset models, and the pre-registered comparisons with adjusted intervals.

Validation before report: the validation track chooses every setting (temperatures, the ceiling's ridge) and writes
them with the configuration's hash to ``frozen.json``; the reported track refuses to start without it (unless told
``--no-validation``, which its report then says) and records the hash and the commit it ran at.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import AttributionError
from .lds_frozen import Choices
from .lds_run import LdsData
from .lds_stats import (
    bootstrap_lds,
    ceiling_effects,
    choose_ridge,
    choose_temperature,
    compare,
    effects_from_scores,
    interval,
    shared_transform,
)

CEILING = "ceiling"
RULES = {"raw": "raw whole-set score", "shared": "shared transform (softmax of standardised scores, per-method τ)"}
#: The comparisons named before the reported run (docs/counterfactual.md); those whose methods ran are tested, with
#: the family size (comparisons × tracks) in the correction.
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


def effects(data: LdsData, queries: list[str], rule: str, choices: Choices | None) -> dict[str, dict]:
    """Every method's predicted effects per query under ``rule``, and the ceiling's."""
    out = {}
    for method, scores in data.scores.items():
        if rule == "raw":
            tau = {q: scores[q] for q in queries}
        else:
            t = choices.temperatures.get(method, 1e9) if choices else 1e9
            tau = {q: shared_transform(scores[q], t) for q in queries}
        out[method] = effects_from_scores(data.member, tau)
    ridge = choices.ridge if choices else 1.0
    out[CEILING] = {q: ceiling_effects(data.member, data.losses[q], ridge) for q in queries}
    return out


@dataclass(frozen=True)
class TrackTable:
    rule: str
    track: str
    queries: int
    clusters: int
    rows: list[dict]  # method, mean, low, high, minus_caption, minus_ceiling
    comparisons: list[dict]  # a, b, mean, low, high, p, p_holm, verdict
    per_query: dict[str, dict[str, float]]  # method -> query -> LDS


def tables(
    data: LdsData, queries: list[str], choices: Choices | None, resamples: int = 2000, seed: int = 0
) -> list[TrackTable]:
    """Both rules' tables for every track of ``queries``."""
    tracks = sorted({data.tracks[q] for q in queries})
    present = [p for p in PREREGISTERED if p[0] in data.scores and p[1] in data.scores]
    family = max(1, len(present) * len(tracks))
    out = []
    for rule in RULES:
        for track in tracks:
            qs = [q for q in queries if data.tracks[q] == track]
            clusters = [data.clusters[q] for q in qs]
            boot = bootstrap_lds(effects(data, qs, rule, choices), data.losses, qs, clusters, resamples, seed)
            index = {m: i for i, m in enumerate(boot.methods)}
            rows = []
            for m, i in index.items():
                low, high = interval(boot.draws[:, i])
                row = {"method": m, "mean": float(boot.point[i]), "low": low, "high": high}
                for ref, key in (("caption-only", "minus_caption"), (CEILING, "minus_ceiling")):
                    if ref in index and ref != m:
                        row[key] = float(boot.point[i] - boot.point[index[ref]])
                rows.append(row)
            rows.sort(key=lambda r: -r["mean"])
            per_query = {m: dict(zip(qs, boot.per_query[i].tolist(), strict=True)) for m, i in index.items()}
            comparisons = compare(boot, present, family)
            out.append(TrackTable(rule, track, len(qs), len(set(clusters)), rows, comparisons, per_query))
    return out
