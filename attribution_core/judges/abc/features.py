"""Evaluating a feature space on AbC test cases: cached features of the test images, the distractor corpus without
the test case's exemplars, and the protocol per test case."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...attribute.calibration import Calibrator
from ...attribute.spaces import SpaceSpec, open_space_store
from ...backbones import Backbone
from ...core.errors import AttributionError
from ...core.paths import display_path, project_root
from ...data.extract import extract_features
from ...data.store import FeatureStore
from ...heads import Heads, identity_heads
from ..metrics import DEFAULT_KS, SpaceResult
from .protocol import evaluate_features
from .testcase import TestCase


def test_case_features(
    tc: TestCase, backbone: Backbone, root: Path, cache_root: Path | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """Raw backbone features of every image the test case names, extracted once and cached as a store
    (``feats/eval/<backbone>/<test case>-<root key>``, resumable like any extraction; images replaced since are
    embedded again). The cache is keyed by the test case's name and the folder its paths are relative to, so the
    same file evaluated under another ``--root`` gets its own features.

    Raises:
        AttributionError: images are missing (all reported at once, with their count), unreadable, or outside
            ``root``.
    """
    names = tc.image_paths()
    root = Path(root).resolve()
    outside = [p for p in names if Path(p).is_absolute() or not (root / p).resolve().is_relative_to(root)]
    outside = [p for p in outside if not (Path(os.path.abspath(root / p))).is_relative_to(root)]
    if outside:
        raise AttributionError(
            f"{display_path(tc.path)}: {len(outside)} image paths lead outside {display_path(root)} (e.g. "
            f"{outside[0]}); test-case paths are relative to --root"
        )
    missing = [p for p in names if not (root / p).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise AttributionError(
            f"{display_path(tc.path)}: {len(missing)} of {len(names)} images are missing under "
            f"{display_path(root)} (e.g. {shown}); get them with `bash dataset/download_dataset.sh exemplar` and "
            "`bash dataset/download_dataset.sh testset`, or pass --root"
        )
    root_key = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    out = (cache_root or project_root() / "feats" / "eval") / backbone.name / f"{tc.name}-{root_key}"
    report = extract_features([root], out, backbone, root=root, files=[root / p for p in names], progress=progress)
    if report.skipped:
        bad = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:3])
        raise AttributionError(f"{display_path(tc.path)}: {len(report.skipped)} images cannot be read ({bad})")
    store = FeatureStore.open(out)
    row = {p: i for i, p in enumerate(store.paths)}
    return {p: np.asarray(store.feats[row[Path(p).as_posix()]]) for p in names}


def corpus_rows_without(store: FeatureStore, root: Path, test_cases: Sequence[TestCase]) -> np.ndarray:
    """Boolean mask [N] of the store's rows that are not exemplars of any of the test cases (matched by file)."""
    exemplars = {str((root / p).resolve()) for tc in test_cases for m in tc.models for p in m.exemplar}
    image_root = Path(store.meta.image_root) if store.meta.image_root else None
    files = [str((image_root / p).resolve()) if image_root else p for p in store.paths]
    return np.array([f not in exemplars for f in files], dtype=bool)


def evaluate_feature_space(
    spec: SpaceSpec,
    backbone: Backbone,
    heads: Heads,
    calibrator: Calibrator,
    test_cases: Sequence[TestCase],
    root: Path,
    ks: Sequence[int] = DEFAULT_KS,
    no_head: bool = False,
    progress: bool = True,
    influence: bool = False,
    scores_top: int = 0,
    **_: Any,
) -> list[SpaceResult]:
    """The protocol for one loaded feature space (its spec, backbone, heads, calibrator) on each test case; with
    ``influence``, also the mean calibrated influence on the true exemplars; ``scores_top``: records keep scores
    (``protocol.kept_scores``). ``no_head``: the raw backbone."""
    use_head = spec.mapper is not None and not no_head
    heads = heads if use_head else identity_heads(backbone.dim)
    name = spec.name if use_head or spec.mapper is None else f"{spec.name} (no head)"
    cal = calibrator if influence else None
    store = open_space_store(spec, corpus=True)  # AbC: exemplars are never part of the distractor corpus
    store.check_backbone(backbone.name, backbone.dim)
    corpus = heads.real_head.map_numpy(store.feats)

    def real(x: np.ndarray) -> np.ndarray:
        return heads.real_head.map_numpy(x)

    def synth(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return heads.synth_head(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()

    out = []
    for tc in test_cases:
        feats = test_case_features(tc, backbone, root, progress=progress)
        keep = corpus_rows_without(store, root, [tc])
        xb = corpus if keep.all() else corpus[keep]  # exemplars are appended per query, never counted twice
        out.append(evaluate_features(tc, xb, real, synth, feats, name, ks, progress, cal, scores_top))
    return out
