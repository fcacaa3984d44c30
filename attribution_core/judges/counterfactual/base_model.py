"""The harness's base model, recorded for the rest of the house (docs/method.md §8, §9): ``attribute lds`` and
``attribute counterfactual`` write ``base.json`` (its folder, fingerprint and training set) into their retrain cache
when they train the default configuration's base model; the spaces built on that record are listed by
``demo.counterfactual`` (a judge registers nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from ...core.fileio import atomic_write_json, atomic_write_text
from .testbed import Testbed

#: The settings that make a base model (the query's loss measure and the device do not).
MODEL_FIELDS = ("testbed", "photos", "views_per_photo", "steps", "batch_size", "ema_decay", "seed", "paired")


def is_default_base(config: object, testbed: Testbed) -> bool:
    """Whether ``config`` (a ``BaseModelConfig``) trains the default configuration's base model on ``testbed``."""
    from .config import BaseModelConfig

    config, default = testbed.resolve(config), testbed.resolve(BaseModelConfig())
    return all(getattr(config, f) == getattr(default, f) for f in MODEL_FIELDS)


def record_base(
    cache: Path, folder: Path, fingerprint: str, paths: list[str], captions: list[str], images: Path
) -> None:
    """Record the harness's base model in its retrain ``cache`` (``paths``: its training images relative to
    ``images``); the spaces come from the record in the default cache, ``feats/counterfactual``."""
    lines = "".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in zip(paths, captions, strict=True))
    captions_file = Path(cache) / "base_captions.jsonl"
    atomic_write_text(captions_file, lines)
    record = {"model": str(folder), "fingerprint": fingerprint, "captions": str(captions_file), "images": str(images)}
    atomic_write_json(Path(cache) / "base.json", record)
