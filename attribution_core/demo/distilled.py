"""The demo's distilled space and the demo model's calibrated unlearning (docs/method.md §6, §9).

What ships with the package (``attribution_core/demo/distilled/``): the student trained on the demo model's
labels (``student.safetensors``, ``student.json`` with its training record and validation table) and its
calibrator fitted on the diffusion test case's ground truth (``calibrator.safetensors``); and
``attribution_core/demo/calibration/unlearning.safetensors``, unlearning's calibrator fitted the same way.
``attribute demo`` writes the training side's student embeddings as the distilled space's store (keyed by the
student's weights, so new weights get a new store). ``attribute distill label``, ``attribute distill train`` and
``attribute calibrate`` reproduce the files (docs/demo.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from ..attribute.spaces import DEFAULT_CALIBRATOR, SpaceSpec
from ..core.paths import project_root
from ..data.store import FeatureStore
from .layout import CAPTIONS, CORPUS_SET, DEMO_GENERATOR, demo_corpus_store, demo_dir

DISTILLED_SPACE = "demo_distilled"


def distilled_dir() -> Path:
    """The shipped student's folder."""
    return Path(__file__).resolve().parent / "distilled"


def unlearning_calibrator_path() -> Path:
    """Unlearning's calibrator for the demo model, fitted on the diffusion test case's ground truth."""
    return Path(__file__).resolve().parent / "calibration" / "unlearning.safetensors"


def _student_key() -> str:
    weights = distilled_dir() / "student.safetensors"
    if not weights.is_file():
        return "none"
    stat = weights.stat()
    return _weights_hash(str(weights), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _weights_hash(path: str, mtime_ns: int, size: int) -> str:
    """The weights' hash, computed once per version of the file (spaces are listed often)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def distilled_store() -> Path:
    """Where ``attribute demo`` writes the shipped student's training-side embeddings."""
    return project_root() / "feats" / "demo" / "distilled" / _student_key() / "store"


def distilled_space(model: Path) -> SpaceSpec | None:
    """The distilled space over the demo corpus (None when no student ships)."""
    folder = distilled_dir()
    if not (folder / "student.json").is_file():
        return None
    try:  # a damaged student.json makes this space not ready (its loader says why), never every command fail
        backbone = str(json.loads((folder / "student.json").read_text())["backbone"])
    except (OSError, ValueError, KeyError, TypeError):
        backbone = ""
    calibrator = folder / "calibrator.safetensors"
    return SpaceSpec(
        name=DISTILLED_SPACE,
        label="Distilled (demo diffusion model)",
        method="distilled",
        backbone=backbone,
        store=distilled_store(),
        calibrator=calibrator if calibrator.is_file() else DEFAULT_CALIBRATOR,  # fitted by `attribute calibrate`
        demo=True,
        make_ready="attribute demo",
        description="Unlearning's rankings learnt by a small model over image and prompt features (FastGDA), for "
        "the demo text-to-image model's training set; milliseconds per query",
        training_set=CORPUS_SET,
        generator=DEMO_GENERATOR,
        options={"student": str(folder), "model": str(model)},
    )


def build_distilled_store(model: Path, device: str = "cpu") -> bool:
    """Write the shipped student's store if it is missing (True when written). The image side reuses the corpus
    store's backbone features; the text side runs the model's text encoder over the captions."""
    from ..diffusion.data import read_captions
    from ..diffusion.load import load_model
    from ..distill.attributor import load_student
    from ..distill.features import text_features
    from ..distill.student import embed, joint_features
    from ..distill.train import write_student_store

    spec = distilled_space(model)
    if spec is None or (distilled_store() / "meta.json").is_file():
        return False
    student, meta = load_student(distilled_dir(), device)
    images = FeatureStore.open(demo_corpus_store(meta["backbone"]))
    captions = read_captions(demo_dir() / CAPTIONS)
    paths = list(images.paths)
    texts = [captions[p] for p in paths]
    joint = joint_features(np.asarray(images.feats), text_features(load_model(model, device), texts))
    write_student_store(distilled_store(), embed(student, joint), meta["backbone"], paths, texts, demo_dir())
    return True
