"""What training needs, from files: a backbone, features of each split, and corpus features without the splits'
exemplars (the negatives)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...backbones import Backbone, create_backbone
from ...data.store import FeatureStore, resolve_store
from ...judges.abc.features import corpus_rows_without, test_case_features
from ...judges.abc.testcase import read_test_case
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
    splits = [
        FeatureSplit.from_test_case(tc, test_case_features(tc, backbone, root, progress=progress)) for tc in cases
    ]
    return backbone, splits, corpus
