"""Calibrated influence fitted on ground truth (docs/method.md §3, §6, §9): the customised models of a test case
know which images made their outputs (their exemplars), so the calibrator's temperature and bias can be fitted,
for any method, to put a generated image's mass on them — as AbC fits its calibrator.

Every method answers the same question for each synthesized image of a test case: its scores over the distractor
corpus ∪ its model's exemplars (``Attributor.ground_truth``). The models are split into a fit half and a held-out
half (alternating in sorted order, so both halves hold every category the test case has twice); the calibrator is
fitted on the fit half with the paper's loss, and the held-out half reports, for the method's influence as it is
and as calibrated: the mean mass on the true exemplars and the calibrator loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..attribute.calibration import Calibrator, calibration_loss, fit_calibrator, soft_influence


@dataclass(frozen=True)
class GroundTruthQuery:
    """One synthesized image of a test case: its scores over its model's exemplars (first) and the corpus."""

    model: str  # the customised model's class id
    prompt_type: str
    path: str  # the synthesized image, as the test case names it
    scores: np.ndarray  # [count + N]: the exemplars' scores first, then every corpus image's
    count: int  # exemplars

    @property
    def exemplars(self) -> np.ndarray:
        return self.scores[: self.count]


def split_by_model(queries: Sequence[GroundTruthQuery]) -> tuple[list[GroundTruthQuery], list[GroundTruthQuery]]:
    """(fit, held-out): models alternate in sorted order; every query of a model goes where its model goes."""
    models = sorted({q.model for q in queries})
    fit = set(models[0::2])
    return [q for q in queries if q.model in fit], [q for q in queries if q.model not in fit]


def selected_scores(queries: Sequence[GroundTruthQuery], top: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The calibrator loss's input: per query its exemplars' scores, then its highest corpus scores, all rows one
    width (the most exemplars + ``top``, or what the shortest query holds)."""
    counts = np.array([q.count for q in queries])
    width = min(int(counts.max()) + top, min(len(q.scores) for q in queries))
    rows = []
    for q in queries:
        rest = np.sort(q.scores[q.count :])[::-1][: width - q.count]
        rows.append(np.concatenate([q.exemplars, rest]))
    return np.stack(rows).astype(np.float64), counts


def held_out_loss(queries: Sequence[GroundTruthQuery], calibrator: Calibrator, top: int = 1000) -> float:
    """The calibrator loss (the paper's, docs/method.md §3) of ``calibrator`` on ``queries``."""
    s, c = selected_scores(queries, top)
    with torch.no_grad():
        loss = calibration_loss(
            torch.from_numpy(s), torch.from_numpy(c).double(), torch.tensor(calibrator.inv_tau, dtype=torch.float64),
            torch.tensor(calibrator.bias, dtype=torch.float64),
        )  # fmt: skip
    return float(loss)


def exemplar_mass(queries: Sequence[GroundTruthQuery], influence: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean share ``influence`` (scores over exemplars ∪ corpus -> shares summing to 1) puts on the true exemplars."""
    return float(np.mean([influence(q.scores)[: q.count].sum() for q in queries]))


@dataclass(frozen=True)
class GroundTruthFit:
    """A calibrator fitted on one half of the models, and what it does on the other half."""

    calibrator: Calibrator
    fit_queries: int
    held_out_queries: int
    mass_before: float  # the method's influence as it was
    mass_after: float  # with the fitted calibrator
    loss_before: float | None  # None when the method's influence was not a calibrator's
    loss_after: float


def fit_on_ground_truth(
    queries: Sequence[GroundTruthQuery],
    influence: Callable[[np.ndarray], np.ndarray],
    before: Calibrator | None = None,
    top: int = 1000,
    progress: bool = False,
) -> GroundTruthFit:
    """Fit a calibrator on the fit half of ``queries`` (scores as the method calibrates them) and report both halves'
    sizes and, on the held-out half, the exemplar mass and loss of ``influence`` (the method as it was; ``before``
    its calibrator, if it had one) against the fitted calibrator."""
    fit, held_out = split_by_model(queries)
    if not fit or not held_out:
        raise ValueError("fitting on ground truth needs at least two customised models (one to fit, one held out)")
    calibrator = fit_calibrator(*selected_scores(fit, top), progress=progress)
    return GroundTruthFit(
        calibrator,
        len(fit),
        len(held_out),
        exemplar_mass(held_out, influence),
        exemplar_mass(held_out, lambda s: soft_influence(s, calibrator)),
        held_out_loss(held_out, before, top) if before is not None else None,
        held_out_loss(held_out, calibrator, top),
    )


def ground_truth_queries(records: Sequence[dict]) -> list[GroundTruthQuery]:
    """The queries of an evaluation run made with ``scores_top`` (its per-image records, ``SpaceResult.ranks``)."""
    out = []
    for r in records:
        if "exemplar_scores" not in r:
            raise ValueError("these records keep no scores: evaluate with scores_top > 0")
        ex = np.asarray(r["exemplar_scores"], dtype=np.float64)
        scores = np.concatenate([ex, np.asarray(r["corpus_top"], dtype=np.float64)])
        out.append(GroundTruthQuery(r["model"], r["type"], r["synth"], scores, len(ex)))
    return out
