"""The feature-based method (AbC, docs/method.md §2–3): embed -> synth head -> index search -> calibrated influence.

attributor = create_attributor("demo_efficientnet_lite0")
result = attributor.attribute([image], k=100)[0]   # top-100 + calibrated influence over the whole corpus
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .attribute import Attribution, AttributionResult, Attributor, QueryImage, check_k, query_names
from .backbones import Backbone, create_backbone, find_weights, get_backbone_spec
from .calibration import Calibrator
from .errors import AttributionError, CheckpointError, WeightsNotFoundError
from .evaluate.features import evaluate_feature_space
from .evaluate.metrics import SpaceResult
from .evaluate.testcase import TestCase
from .heads import Heads, identity_heads, load_heads
from .images import QUERY_MAX_SIDE, load_rgb
from .index import AttributionIndex, get_index_kind, list_index_kinds, load_index
from .paths import display_path
from .progress import CancelFlag, ProgressCallback, check_cancelled
from .registry import all_spaces, register_method
from .spaces import SpaceSpec, open_space_store, space_calibrator
from .store import FeatureStore


@register_method
class FeatureAttributor(Attributor):
    """AbC: embed -> synth head -> index search -> calibrated influence."""

    method = "feature"
    score_kind = "cosine"
    description = "feature similarity in a (tuned) attribution space, calibrated into influence (AbC)"

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
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        out: list[str] = []
        store = spec.store
        if store is None:
            out.append("a feature store (store = …)")
        elif store.suffix == ".pth":
            if not store.is_file() and not (store.with_suffix(".store") / "meta.json").is_file():
                out.append(display_path(store))
        elif not (store / "meta.json").is_file():
            out.append(display_path(store))
        if spec.mapper is not None and not spec.mapper.is_file():
            out.append(display_path(spec.mapper))
        if isinstance(spec.calibrator, Path) and not spec.calibrator.is_file():
            out.append(display_path(spec.calibrator))
        try:
            find_weights(get_backbone_spec(spec.backbone), spec.backbone_weights)
        except (WeightsNotFoundError, CheckpointError):
            out.append(f"{spec.backbone} backbone weights")
        except AttributionError:
            out.append(f"a registered backbone (unknown {spec.backbone!r})")
        return tuple(out)

    @classmethod
    def load(
        cls,
        spec: SpaceSpec,
        *,
        device: str = "auto",
        progress: bool = True,
        index_kind: str | None = None,
        index_params: dict | None = None,
        allow_download: bool = False,
        **_: Any,
    ) -> FeatureAttributor:
        """Load every part of ``spec``; build (or rebuild a stale) index on first use.

        Args:
            index_kind: the index kind; default the space's ``options.index``, else ``flat``.
            index_params: query-time knobs of the ANN kinds (``nprobe``, ``efSearch``, ``rerank``; see
                ``load_index``), over those the space's options declare.
        """
        index_kind = index_kind or spec.options.get("index", "flat")
        try:
            kind = get_index_kind(index_kind)
        except AttributionError:
            raise AttributionError(
                f"space {spec.name!r}: index {index_kind!r} is not an index kind; "
                f"choose one of {', '.join(list_index_kinds())}"
            ) from None
        declared = {p.name for p in kind.query_params()}  # the space's query-time knobs that this kind takes
        index_params = {**{k: v for k, v in spec.options.items() if k in declared}, **(index_params or {})}
        backbone = create_backbone(spec.backbone, spec.backbone_weights, device, allow_download)
        heads = load_heads(spec.mapper, backbone.dim) if spec.mapper is not None else identity_heads(backbone.dim)
        store = open_space_store(spec)
        store.check_backbone(backbone.name, backbone.dim)
        cached = spec.mapper is not None and spec.mapper != _registered_mapper(spec.name)  # ad-hoc heads
        index, _ = load_index(
            store, heads, index_kind, progress=progress, device=device, cached=cached, params=index_params or None
        )
        return cls(spec, backbone, heads, space_calibrator(spec), store, index)

    @classmethod
    def evaluate(cls, spec: SpaceSpec, test_cases: Sequence[TestCase], root: Path, **options: Any) -> list[SpaceResult]:
        return evaluate_feature_space(spec, test_cases, root, **options)

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        if not 0 <= row < len(self.store):
            raise IndexError(row)
        root = self.store.meta.image_root
        return self.store.image_path(row), Path(root) if root else None

    def embed_queries(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Query images -> synth-head features, unit-norm float32 [nq, d]."""
        raw = self.backbone.embed_images(list(images))
        with torch.inference_mode():
            return self.heads.synth_head(torch.from_numpy(raw)).numpy()

    def attribute_features(
        self,
        xq: np.ndarray,
        k: int | Sequence[int],
        names: Sequence[str],
        cancel: CancelFlag | None = None,
    ) -> list[AttributionResult]:
        """Already-embedded queries [nq, d] -> results (``k``: one for all, or one per query). The whole batch is
        scored in one matrix-matrix product on exact indexes."""
        ks = [check_k(k)] * len(names) if isinstance(k, int) else [check_k(x) for x in k]
        check_cancelled(cancel)
        t0 = time.perf_counter()
        found_all = self.index.search_many(xq, ks, self.calibrator)
        search_ms = (time.perf_counter() - t0) * 1000 / max(1, len(ks))
        out = []
        for found, name in zip(found_all, names, strict=True):
            results = [
                Attribution(
                    r + 1,
                    str(self.store.image_path(int(i))),
                    float(s),
                    float(p),
                    int(i),
                    self.store.caption(i),
                    self.store.url(i),
                )
                for r, (i, s, p) in enumerate(zip(found.I, found.D, found.influence, strict=True))
            ]
            out.append(
                AttributionResult(
                    name,
                    self.name,
                    results,
                    found.remaining_influence,
                    self.calibrator,
                    {"search": search_ms},
                    found.mass_count,
                    method=self.method,
                    score_kind=self.score_kind,
                )
            )
        return out

    def attribute(
        self,
        images: Sequence[QueryImage],
        k: int = 100,
        names: Sequence[str] | None = None,
        *,
        prompts: Sequence[str | None] | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[AttributionResult]:
        k = check_k(k)
        names = query_names(images, names)
        loaded = [im if isinstance(im, Image.Image) else load_rgb(im, max_side=QUERY_MAX_SIDE) for im in images]
        t0 = time.perf_counter()
        xq = self.embed_queries(loaded)
        embed_ms = (time.perf_counter() - t0) * 1000 / max(1, len(loaded))
        results = self.attribute_features(xq, k, names, cancel)
        for r in results:
            r.timings_ms = {"embed": embed_ms, **r.timings_ms}
        return results


def _registered_mapper(name: str) -> Path | None:
    """The heads the registered space ``name`` declares (None for identity or an unregistered name)."""
    return next((s.mapper for s in all_spaces() if s.name == name), None)
