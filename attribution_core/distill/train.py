"""``attribute distill train`` (docs/method.md §9): a student from a label store, checked on its held-out queries.

Reads the labels (``labels.read_labels``), the unlearning space they came from (its model's text encoder, its
training images and captions), embeds both sides with the chosen backbone, trains the student on the training
labels and reports FastGDA's AP(L) on the validation labels beside the backbone's raw cosine (the same features
without the student), the caption-only rule and random scores. Writes ``student.safetensors`` and ``student.json``
(architecture, backbone, the model and labels it was trained for, the validation table; safetensors holds tensors
only, nothing runs on load) and ``store/``, the training images' student embeddings: the feature store a
distilled space searches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from ..attribute.baselines import caption_scores, random_scores
from ..attribute.interface import Attributor
from ..attribute.metrics import average_precision_at
from ..backbones import create_backbone
from ..core.errors import AttributionError
from ..core.fileio import atomic_path, atomic_write_json
from ..core.images import load_rgb
from ..core.paths import display_path
from ..data.store import write_store
from .features import student_inputs
from .labels import read_labels
from .student import RankingLabel, StudentConfig, embed, train_student

log = logging.getLogger(__name__)

STUDENT_WEIGHTS = "student.safetensors"
STUDENT_CONFIG = "student.json"
STUDENT_STORE = "store"  # the training side's student embeddings: a distilled space's feature store


@dataclass(frozen=True)
class DistillReport:
    """What training gave: the labels used and AP(L) on the held-out queries, student against raw features."""

    train_queries: int
    validation_queries: int
    average_precision: dict[str, dict[int, float]]  # "student" / "backbone cosine" / baselines -> L -> mean AP(L)


def write_student_store(
    path: Path, embeddings: np.ndarray, backbone: str, paths: Sequence[str], captions: Sequence[str], root: Path
) -> None:
    """The training side's student embeddings as the feature store a distilled space searches."""
    write_store(
        path, embeddings, list(paths), f"student:{backbone}", image_root=root,
        captions=dict(zip(paths, captions, strict=True)),
    )  # fmt: skip


def _labels_for(labels: list[dict], features: np.ndarray) -> list[RankingLabel]:
    return [RankingLabel(f, np.asarray(r["rows"], dtype=np.int64)) for r, f in zip(labels, features, strict=True)]


def distill(
    attributor: Attributor,
    labels_dir: Path,
    out: Path,
    backbone: str = "efficientnet_lite0",
    config: StudentConfig | None = None,
    tops: tuple[int, ...] = (10, 50),
    device: str = "cpu",
    progress: bool = True,
) -> DistillReport:
    """Train a student on ``labels_dir`` for ``attributor``'s model and training set; its files go to ``out``."""
    config = config or StudentConfig()
    labels = read_labels(labels_dir)
    fingerprint = attributor.model.fingerprint()
    if not labels:
        raise AttributionError(f"{labels_dir}: no labels; make them with `attribute distill label`")
    if any(r["model"] != fingerprint for r in labels):
        raise AttributionError(f"{labels_dir}: labels of another model than {attributor.name!r}'s ({fingerprint})")
    train = [r for r in labels if r["split"] == "train"]
    held_out = [r for r in labels if r["split"] == "validation"]
    if not train or not held_out:
        raise AttributionError(f"{labels_dir}: needs training and validation labels ({len(train)} / {len(held_out)})")
    data = attributor.data
    net = create_backbone(backbone, device=device)
    files = [data.root / p for p in data.paths]
    training = student_inputs(net, attributor.model, files, data.captions)
    queries = {}
    for split, rows in (("train", train), ("validation", held_out)):
        pngs = [load_rgb(labels_dir / f"{r['index']:06d}.png") for r in rows]
        queries[split] = student_inputs(net, attributor.model, pngs, [r["prompt"] for r in rows])
    student = train_student(_labels_for(train, queries["train"]), training, config, device, progress)
    e_train, e_query = embed(student, training), embed(student, queries["validation"])
    image_dim = net.dim  # the joint features are [image ⊕ text]
    raw_train, raw_query = training[:, :image_dim], queries["validation"][:, :image_dim]
    teacher = [np.asarray(r["rows"]) for r in held_out]

    def mean_ap(scores: list[np.ndarray], top: int) -> float:
        return float(np.mean([average_precision_at(t, s, top) for t, s in zip(teacher, scores, strict=True)]))

    rankings = {  # every row scores the whole training set for each held-out query
        "student": [e_train @ q for q in e_query],
        "backbone cosine": [raw_train @ q for q in raw_query],
        "caption-only": [caption_scores(r["prompt"], data.captions) for r in held_out],
        "random": [random_scores(len(data), int(r["index"])) for r in held_out],
    }
    ap = {name: {top: mean_ap(scores, top) for top in tops} for name, scores in rankings.items()}
    report = DistillReport(len(train), len(held_out), ap)
    out.mkdir(parents=True, exist_ok=True)
    write_student_store(out / STUDENT_STORE, e_train, backbone, data.paths, data.captions, data.root)
    with atomic_path(out / STUDENT_WEIGHTS, ".safetensors") as tmp:
        # float16 on disk (half the size; loading casts back to float32)
        save_file({k: v.detach().cpu().half().contiguous() for k, v in student.state_dict().items()}, str(tmp))
    atomic_write_json(
        out / STUDENT_CONFIG,
        {
            "in_dim": int(training.shape[1]),
            "image_dim": int(image_dim),
            "backbone": backbone,
            "model": fingerprint,
            "space": attributor.name,
            "labels": display_path(labels_dir),
            "student": dataclasses.asdict(config),
            "report": json.loads(json.dumps(dataclasses.asdict(report))),
        },
    )
    return report
