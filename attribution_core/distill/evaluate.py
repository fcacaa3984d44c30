"""The AbC protocol for a distilled space (docs/method.md §2, §9): the student embeds each synthesized image with
its prompt (the test case's ``prompts``) and each exemplar with the caption it was learnt under (its customised
model's prompt, ``customization.json``), as the training side embeds a training image with its caption; the
distractor corpus is the space's store without the test case's exemplars. A test case without prompts or
customised models is evaluated on image features alone (the text part is zero), as a query without a prompt is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..attribute.calibration import Calibrator
from ..attribute.interface import Query
from ..attribute.spaces import SpaceSpec, open_space_store
from ..core.errors import AttributionError
from ..core.images import load_rgb
from ..core.paths import display_path
from ..diffusion.customize import META_FILE
from ..judges.abc.features import corpus_rows_without
from ..judges.abc.protocol import evaluate_features
from ..judges.abc.testcase import CustomModel, TestCase
from ..judges.metrics import DEFAULT_KS, SpaceResult


def customization_prompt(root: Path, model: CustomModel) -> str | None:
    """The prompt ``model``'s exemplars were learnt under (None when the test case names no customised model)."""
    if not model.customized:
        return None
    meta = root / model.customized / META_FILE
    try:
        return str(json.loads(meta.read_text())["prompt"])
    except (OSError, ValueError, KeyError) as exc:
        raise AttributionError(f"{display_path(meta)}: cannot read the customisation prompt ({exc})") from None


def test_case_embeddings(
    tc: TestCase, root: Path, embed: Callable[[Sequence[Query]], np.ndarray]
) -> dict[str, np.ndarray]:
    """The student's embedding of every exemplar and synthesized image of ``tc``, by its path in the test case."""
    missing = [p for p in tc.image_paths() if not (root / p).is_file()]
    if missing:
        raise AttributionError(
            f"{display_path(tc.path)}: {len(missing)} images are missing under {display_path(root)} "
            f"(e.g. {missing[0]}); pass --root, or build the demo test case with `attribute demo`"
        )
    out: dict[str, np.ndarray] = {}
    for m in tc.models:
        caption = customization_prompt(root, m)
        pairs = [(p, caption) for p in m.exemplar]
        pairs += [(p, m.prompts.get(p)) for paths in m.synth.values() for p in paths]
        queries = [Query(p, load_rgb(root / p), text) for p, text in pairs]
        out.update(zip([p for p, _ in pairs], embed(queries), strict=True))
    return out


def evaluate_distilled_space(
    spec: SpaceSpec,
    embed: Callable[[Sequence[Query]], np.ndarray],
    calibrator: Calibrator,
    test_cases: Sequence[TestCase],
    root: Path,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = True,
    influence: bool = False,
    scores_top: int = 0,
    **_: Any,
) -> list[SpaceResult]:
    """The protocol for a loaded distilled space (``embed``: its query side) on each test case (options as for a
    feature space: ``influence`` adds the calibrated mass on the exemplars, ``scores_top`` keeps scores)."""
    store = open_space_store(spec)
    out = []
    for tc in test_cases:
        feats = test_case_embeddings(tc, Path(root), embed)
        keep = corpus_rows_without(store, Path(root), [tc])
        corpus = np.asarray(store.feats)[keep]

        def same(x: np.ndarray) -> np.ndarray:
            return np.asarray(x, dtype=np.float32)

        cal = calibrator if influence else None
        out.append(evaluate_features(tc, corpus, same, same, feats, spec.name, ks, progress, cal, scores_top))
    return out
