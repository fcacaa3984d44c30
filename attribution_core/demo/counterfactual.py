"""The counterfactual harness's base model as spaces (docs/method.md §8, §9; the registry's provider
``base_spaces``), so that the commands every model uses label it, train a student for it and query it.

``attribute lds`` and ``attribute counterfactual`` record their base model (its folder, fingerprint and training
set) in ``feats/counterfactual/base.json`` when it is the default configuration's (the one the reported tables
use; a smaller trial configuration records nothing). From that record: ``counterfactual_unlearning`` (unlearning
on the base model over its training set, the harness's settings) and, once ``attribute distill train --space
counterfactual_unlearning`` has written a student for that model (its default folder), ``counterfactual_distilled``,
which the harness compares as any other method (``--methods … counterfactual_distilled``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..attribute.spaces import SpaceSpec
from ..core.paths import project_root

UNLEARNING_SPACE = "counterfactual_unlearning"
DISTILLED_SPACE = "counterfactual_distilled"
TRAINING_SET = "counterfactual base model's training set"


def _cache() -> Path:
    return project_root() / "feats" / "counterfactual"


def student_dir(fingerprint: str) -> Path:
    """Where ``attribute distill train`` writes a student for the model ``fingerprint`` by default."""
    return project_root() / "feats" / "distill" / "student" / fingerprint


def base_spaces() -> list[SpaceSpec]:
    """The spaces of the recorded base model (none before the harness has trained one)."""
    path = _cache() / "base.json"
    if not path.is_file():
        return []
    try:
        record = json.loads(path.read_text())
        model, fingerprint = record["model"], record["fingerprint"]
        options = {"model": model, "captions": record["captions"], "images": record["images"]}
    except (OSError, ValueError, KeyError):
        return []  # a damaged record: the harness writes it again on its next run
    common = {"training_set": TRAINING_SET, "make_ready": "attribute lds --train-only"}
    specs = [
        SpaceSpec(
            name=UNLEARNING_SPACE,
            label="Unlearning (counterfactual base model)",
            method="unlearning",
            description="Attribution by unlearning on the counterfactual harness's base model (the model leave-K-out "
            "and the LDS retrain)",
            options=options,
            **common,
        )
    ]
    student = student_dir(fingerprint)
    if (student / "student.json").is_file():
        try:  # damaged: the space is listed not ready (its loader says why), no command fails for it
            backbone = str(json.loads((student / "student.json").read_text()).get("backbone", "efficientnet_lite0"))
        except (OSError, ValueError, AttributeError):
            backbone = ""
        specs.append(
            SpaceSpec(
                name=DISTILLED_SPACE,
                label="Distilled (counterfactual base model)",
                method="distilled",
                backbone=backbone,
                store=student / "store",
                description="The student trained on the base model's unlearning labels",
                options={"student": str(student), "model": model},
                **common,
            )
        )
    return specs
