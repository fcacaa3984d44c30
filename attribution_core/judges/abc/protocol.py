"""The AbC protocol (docs/method.md §2), once, for every method: for each synthesized image of a customised model,
the candidates are the training set without the test case's exemplars ∪ that model's exemplars (each captioned with
the model's customisation prompt, when it names one); the method scores them through the method-neutral
``Attributor.candidate_scores`` (under the customised model, for methods that read one), and each exemplar's rank
is 1 + the number of candidates scoring strictly above it. Recall@K and mAP per prompt type; with ``influence``,
the mean share the method's own influence rule puts on the true exemplars; with ``scores_top``, each record keeps
the exemplars' and the highest corpus scores as the calibrator reads them (calibration on ground truth).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...attribute.interface import Attributor, Candidates, Sample
from ...attribute.metrics import ranks_in_scores
from ...core.errors import AttributionError
from ...core.paths import display_path
from ...data.testcase import CustomModel, TestCase, check_test_case_files
from ..metrics import DEFAULT_KS, SpaceResult, metrics_by_type

#: The file a customised model's folder records its prompt in (``diffusion.customize.META_FILE``).
CUSTOMIZATION_FILE = "customization.json"


def customization_prompt(root: Path, model: CustomModel) -> str | None:
    """The prompt ``model``'s exemplars were learnt under (None when the test case names no customised model)."""
    if not model.customized:
        return None
    meta = root / model.customized / CUSTOMIZATION_FILE
    try:
        return str(json.loads(meta.read_text())["prompt"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AttributionError(f"{display_path(meta)}: cannot read the customisation prompt ({exc})") from None


def corpus_rows(attributor: Attributor, root: Path, test_cases: Sequence[TestCase]) -> np.ndarray:
    """The method's distractor rows [n] (``Attributor.distractor_rows``: all its training rows unless its space
    names a separate corpus) that are not exemplars of any of the test cases (matched by file)."""
    exemplars = {str((root / p).resolve()) for tc in test_cases for m in tc.models for p in m.exemplar}
    paths = attributor.training_paths()
    allowed = attributor.distractor_rows()
    rows = range(len(paths)) if allowed is None else allowed.tolist()
    return np.array([i for i in rows if str(Path(paths[i]).resolve()) not in exemplars], dtype=np.int64)


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


def evaluate_space(
    attributor: Attributor,
    tc: TestCase,
    root: Path,
    name: str | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    influence: bool = False,
    scores_top: int = 0,
    progress: bool = True,
) -> SpaceResult:
    """The protocol for one loaded method (any registered one) on one test case.

    Args:
        name: the row's name (default: the space's).
        influence: also ``<type>-influence``, the mean share of the method's influence on the true exemplars.
        scores_top: each record also keeps its exemplars' scores and its ``scores_top`` highest corpus scores.
    """
    root = Path(root).resolve()
    check_test_case_files(tc, root)
    name = name or attributor.name
    captions = [customization_prompt(root, m) for m in tc.models]  # by model (class ids may repeat)
    samples = [Sample(root / p, captions[i]) for i, m in enumerate(tc.models) for p in m.exemplar]
    samples += [Sample(root / p, m.prompts.get(p)) for m in tc.models for ps in m.synth.values() for p in ps]
    attributor.warm(samples, root, tc.name)
    rows = corpus_rows(attributor, root, [tc])
    types, ranks, masses, dump = [], [], [], []
    for i, m in enumerate(tc.models):
        paths = [(t, p) for t, ps in m.synth.items() for p in ps]
        if not paths:
            continue
        candidates = Candidates(
            rows,
            tuple(Sample(root / p, captions[i]) for p in m.exemplar),
            root / m.customized if m.customized else None,
            generated_by_variant=True,
            where=f"{display_path(tc.path)}: model {m.class_id}",
        )
        queries = [Sample(root / p, m.prompts.get(p)) for _, p in paths]
        scores = attributor.candidate_scores(queries, candidates, progress)
        for (ptype, path), s in zip(paths, scores, strict=True):
            r = ranks_in_scores(s, len(rows))
            types.append(ptype)
            ranks.append(r)
            if influence:
                masses.append(float(attributor.influence(np.asarray(s, dtype=np.float64))[len(rows) :].sum()))
            record = {"test_case": tc.name, "space": name, "model": m.class_id, "type": ptype, "synth": path}
            record["ranks"] = r.tolist()
            if scores_top:
                calibrated = attributor.calibrated_scores(np.asarray(s, dtype=np.float64))
                record.update(kept_scores(calibrated[len(rows) :], calibrated[: len(rows)], scores_top))
            dump.append(record)
    metrics = metrics_by_type(tc.prompt_types, types, ranks, ks, masses if influence else None)
    return SpaceResult(name, metrics, dump)
