"""The AbC protocol for one space, given features: queries and exemplars -> ranks -> metrics per prompt type."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...attribute.calibration import Calibrator
from ..metrics import DEFAULT_KS, SpaceResult, metrics_by_type
from .ranking import exemplar_influence, exemplar_ranks
from .testcase import TestCase


def evaluate_features(
    tc: TestCase,
    corpus: np.ndarray,
    encode_real: Callable[[np.ndarray], np.ndarray],
    encode_synth: Callable[[np.ndarray], np.ndarray],
    image_feats: dict[str, np.ndarray],
    space: str,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = False,
    calibrator: Calibrator | None = None,
    scores_top: int = 0,
) -> SpaceResult:
    """Run the protocol for one space (with a calibrator: also ``<type>-influence``, the mean calibrated
    influence the synthesized images put on their own exemplars; with ``scores_top``: each image's record also
    keeps its exemplars' scores and its ``scores_top`` highest corpus scores, for fitting on ground truth).

    Args:
        corpus: [N, d] unit-norm corpus features, already through the real head.
        encode_real / encode_synth: raw [n, d] -> unit-norm head-mapped [n, d].
        image_feats: raw feature [d] of every exemplar and synthesized image, by JSON path.
    """
    queries, ex_scores, meta = [], [], []
    for m in tc.models:
        ex = encode_real(np.stack([image_feats[p] for p in m.exemplar]))
        for ptype, paths in m.synth.items():
            if not paths:
                continue
            q = encode_synth(np.stack([image_feats[p] for p in paths]))
            queries.append(q)
            for row, path in zip(q, paths, strict=True):
                ex_scores.append(ex @ row)
                meta.append((m.class_id, ptype, path))
    xq = np.concatenate(queries) if queries else np.zeros((0, corpus.shape[1]), np.float32)
    ranks = exemplar_ranks(xq, corpus, ex_scores, progress=progress)
    mass = exemplar_influence(xq, corpus, ex_scores, calibrator) if calibrator is not None else None
    metrics = metrics_by_type(tc.prompt_types, [t for _, t, _ in meta], ranks, ks, mass)
    dump = [
        {"test_case": tc.name, "space": space, "model": cid, "type": t, "synth": p, "ranks": r.tolist()}
        for r, (cid, t, p) in zip(ranks, meta, strict=True)
    ]
    if scores_top:
        for record, q, ex in zip(dump, xq, ex_scores, strict=True):
            record.update(kept_scores(ex, corpus @ q, scores_top))
    return SpaceResult(space, metrics, dump)


def kept_scores(exemplar_scores: np.ndarray, corpus_scores: np.ndarray, top: int) -> dict[str, list[float]]:
    """What a ground-truth record keeps of one query: its exemplars' scores and its ``top`` highest corpus scores
    (finite ones: unscored candidates are left out), best first."""
    corpus_scores = np.asarray(corpus_scores, dtype=np.float64)
    corpus_scores = corpus_scores[np.isfinite(corpus_scores)]
    best = corpus_scores if top >= len(corpus_scores) else np.partition(corpus_scores, len(corpus_scores) - top)[-top:]
    return {
        "exemplar_scores": np.asarray(exemplar_scores, dtype=np.float64).tolist(),
        "corpus_top": np.sort(best)[::-1].tolist(),
    }
