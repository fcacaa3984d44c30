"""One Attributor interface; the feature-based method (AbC) now, unlearning-based (AbU) later.

attributor = FeatureAttributor.load(get_space("demo_efficientnet_lite0"))
result = attributor.attribute([image], k=100)[0]   # top-100 + calibrated influence over the whole corpus
"""

from __future__ import annotations

import csv
import io
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .backbones import Backbone, create_backbone
from .calibration import Calibrator, load_calibrator
from .heads import Heads, identity_heads, load_heads
from .images import load_rgb
from .index import AttributionIndex, load_index
from .spaces import SpaceSpec, require_ready
from .store import FeatureStore, resolve_store


@dataclass(frozen=True)
class Attribution:
    """One attributed training image."""

    rank: int  # 1-based
    path: str  # the training image's file (image_root / stored path)
    score: float  # cosine similarity in the space
    influence: float  # calibrated share of the whole corpus
    row: int  # row in the store


@dataclass
class AttributionResult:
    """The answer for one query image in one space."""

    query: str
    space: str
    results: list[Attribution]
    remaining_influence: float  # the mass outside ``results``; influences + remaining == 1
    calibrator: Calibrator
    timings_ms: dict[str, float] = field(default_factory=dict)  # embed / search / influence
    mass_count: int = 0  # corpus images that carry any influence

    def to_dict(self) -> dict:
        """The CLI's ``--json`` object."""
        return {
            "query": self.query,
            "space": self.space,
            "results": [
                {"rank": a.rank, "path": a.path, "score": round(a.score, 6), "influence": a.influence}
                for a in self.results
            ],
            "remaining_influence": self.remaining_influence,
        }


CSV_FIELDS = ("query", "space", "rank", "path", "score", "influence", "remaining_influence")


def results_to_csv(results: Sequence[AttributionResult]) -> str:
    """A CSV table, one row per attributed image (the CLI's ``--csv`` and the app's download)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in results:
        for a in r.results:
            writer.writerow(
                [
                    r.query,
                    r.space,
                    a.rank,
                    a.path,
                    f"{a.score:.6f}",
                    f"{a.influence:.8g}",
                    f"{r.remaining_influence:.8g}",
                ]
            )
    return buf.getvalue()


def results_to_jsonl(results: Sequence[AttributionResult]) -> str:
    """One JSON object per query and space (the CLI's ``--json`` and the app's download)."""
    return "".join(json.dumps(r.to_dict()) + "\n" for r in results)


class Attributor(ABC):
    """Anything that answers: which training images influenced this generated image, and how much."""

    name: str

    @abstractmethod
    def attribute(
        self, images: Sequence[Image.Image | Path | str], k: int = 100, names: Sequence[str] | None = None
    ) -> list[AttributionResult]:
        """Attribute each query image to the training set: top-``k`` images and their influence."""


class FeatureAttributor(Attributor):
    """AbC: embed -> synth head -> index search -> calibrated influence."""

    def __init__(
        self,
        spec: SpaceSpec,
        backbone: Backbone,
        heads: Heads,
        calibrator: Calibrator,
        store: FeatureStore,
        index: AttributionIndex,
    ):
        self.spec = spec
        self.name = spec.name
        self.backbone = backbone
        self.heads = heads
        self.calibrator = calibrator
        self.store = store
        self.index = index

    @classmethod
    def load(
        cls,
        spec: SpaceSpec,
        device: str = "auto",
        index_kind: str = "flat",
        allow_download: bool = False,
        progress: bool = True,
    ) -> FeatureAttributor:
        """Load every part of ``spec``; build (or rebuild a stale) index on first use."""
        require_ready(spec)
        backbone = create_backbone(spec.backbone, spec.backbone_weights, device, allow_download)
        heads = load_heads(spec.mapper, backbone.dim) if spec.mapper is not None else identity_heads(backbone.dim)
        calibrator = spec.calibrator if isinstance(spec.calibrator, Calibrator) else load_calibrator(spec.calibrator)
        image_root = spec.image_root if spec.store.suffix == ".pth" else None
        store = FeatureStore.open(resolve_store(spec.store, spec.backbone, image_root))
        store.check_backbone(backbone.name, backbone.dim)
        index, _ = load_index(store, heads, index_kind, progress=progress, device=device)
        return cls(spec, backbone, heads, calibrator, store, index)

    def embed_queries(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Query images -> synth-head features, unit-norm float32 [nq, d]."""
        raw = self.backbone.embed_images(list(images))
        with torch.inference_mode():
            return self.heads.synth_head(torch.from_numpy(raw)).numpy()

    def attribute_features(self, xq: np.ndarray, k: int, names: Sequence[str]) -> list[AttributionResult]:
        """Already-embedded queries [nq, d] -> results."""
        out = []
        for q, name in zip(xq, names, strict=True):
            t0 = time.perf_counter()
            found = self.index.search(q, k, self.calibrator)
            t1 = time.perf_counter()
            results = [
                Attribution(r + 1, str(self.store.image_path(int(i))), float(s), float(p), int(i))
                for r, (i, s, p) in enumerate(zip(found.I, found.D, found.influence, strict=True))
            ]
            out.append(
                AttributionResult(
                    name,
                    self.name,
                    results,
                    found.remaining_influence,
                    self.calibrator,
                    {"search": (t1 - t0) * 1000},
                    found.mass_count,
                )
            )
        return out

    def attribute(
        self, images: Sequence[Image.Image | Path | str], k: int = 100, names: Sequence[str] | None = None
    ) -> list[AttributionResult]:
        loaded = [im if isinstance(im, Image.Image) else load_rgb(im) for im in images]
        if names is None:
            names = [str(im) if not isinstance(im, Image.Image) else f"image {i}" for i, im in enumerate(images)]
        t0 = time.perf_counter()
        xq = self.embed_queries(loaded)
        embed_ms = (time.perf_counter() - t0) * 1000 / max(1, len(loaded))
        results = self.attribute_features(xq, k, names)
        for r in results:
            r.timings_ms = {"embed": embed_ms, **r.timings_ms}
        return results
