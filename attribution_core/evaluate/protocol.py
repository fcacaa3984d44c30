"""The AbC protocol for one space, given features: queries and exemplars -> ranks -> metrics per prompt type."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..calibration import Calibrator
from .metrics import DEFAULT_KS, SpaceResult, metrics_by_type
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
) -> SpaceResult:
    """Run the protocol for one space (with a calibrator: also ``<type>-influence``, the mean calibrated
    influence the synthesized images put on their own exemplars).

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
    return SpaceResult(space, metrics, dump)
