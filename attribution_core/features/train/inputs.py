"""What training needs, from files: a backbone, features of each split, and corpus features without the splits'
exemplars (the negatives)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...backbones import Backbone, create_backbone
from ...data.store import FeatureStore, resolve_store
from ...data.testcase import TestCase, check_test_case_files, read_test_case
from ..files import file_features
from .heads import FeatureSplit


def training_inputs(
    backbone_name: str,
    feats: Path | str,
    split_files: Sequence[Path | str],
    root: Path,
    weights: Path | str | None = None,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Backbone, list[FeatureSplit], np.ndarray]:
    """Backbone, features of each split (AbC test-case files), and the corpus [N, d] without their exemplars.

    Args:
        feats: the corpus store (or a released ``.pth``) of other training images.
        root: the folder the split files' image paths are relative to.
    """
    backbone = create_backbone(backbone_name, weights, device)
    cases = [read_test_case(p) for p in split_files]
    store = FeatureStore.open(resolve_store(Path(feats), backbone_name))
    store.check_backbone(backbone.name, backbone.dim)
    corpus = np.asarray(store.feats[corpus_rows_without(store, root, cases)])
    splits = [FeatureSplit.from_test_case(tc, test_case_features(tc, backbone, root, progress)) for tc in cases]
    return backbone, splits, corpus


def test_case_features(tc: TestCase, backbone: Backbone, root: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """Raw features of every image the test case names, by its path in the test case (cached: ``file_features``)."""
    root = Path(root).resolve()
    check_test_case_files(tc, root)  # missing images or paths outside root: one line saying how to get them
    feats = file_features([root / p for p in tc.image_paths()], backbone, root, tc.name, progress=progress)
    return {p: feats[str(root / p)] for p in tc.image_paths()}


def corpus_rows_without(store: FeatureStore, root: Path, test_cases: Sequence[TestCase]) -> np.ndarray:
    """Boolean mask [N] of the store's rows that are not exemplars of any of the test cases (matched by file)."""
    exemplars = {str((root / p).resolve()) for tc in test_cases for m in tc.models for p in m.exemplar}
    image_root = Path(store.meta.image_root) if store.meta.image_root else None
    files = [str((image_root / p).resolve()) if image_root else p for p in store.paths]
    return np.array([f not in exemplars for f in files], dtype=bool)
