"""The feature-based method (AbC, docs/method.md §2–3): embed -> synth head -> index search -> calibrated influence.

attributor = create_attributor("demo_efficientnet_lite0")
result = attributor.attribute([image], k=100)[0]   # top-100 + calibrated influence over the whole corpus
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..attribute.calibration import Calibrator, soft_influence
from ..attribute.interface import Attributor, Capabilities, Query, Ranking, Sample, TrainingRecord, elapsed_ms
from ..attribute.spaces import SpaceSpec, open_space_store, space_calibrator
from ..backbones import create_backbone, find_weights, get_backbone_spec
from ..core.config import option
from ..core.device import DEFAULT_DEVICE
from ..core.errors import AttributionError, CheckpointError, WeightsNotFoundError
from ..core.paths import display_path
from ..core.progress import CancelFlag, ProgressCallback, Tracker, check_cancelled
from ..data.store import FeatureStore
from ..heads import identity_heads, load_heads
from ..index import AttributionIndex, get_index_kind, list_index_kinds, load_index, mapped_features
from ..registry import all_spaces, register_method
from .encoder import BackboneEncoder
from .registry import Encoder


@dataclass(frozen=True)
class FeatureOptions:
    """What a feature space may set in ``options`` (its parts — backbone, store, heads, calibrator — are fields of the
    space itself): the index kind, and any parameter an index kind declares (``nprobe = 8``, ``factory = "…"``),
    checked by the kind that declares it."""

    index: str = option("flat", "index kind the space is searched with (see `attribute index --help`)")
    index_params: dict = option({}, "the index kind's build and query-time parameters, by name")

    EXTRA: ClassVar[str] = "index_params"  # the spaces file names them at the top level of ``options``

    @classmethod
    def check_extra(cls, raw: dict, extra: dict, where: str) -> dict:
        """Each extra key checked as a parameter of the chosen kind, else of the first kind that declares it."""
        kinds = [get_index_kind(k) for k in list_index_kinds()]
        chosen = next((k for k in kinds if k.name == raw.get("index", "flat")), None)
        out = {}
        for name, value in extra.items():
            owner = next((k for k in [chosen, *kinds] if k and any(p.name == name for p in k.params)), None)
            if owner is None:
                own = [f.name for f in dataclasses.fields(cls) if f.name != cls.EXTRA]  # a subclass's too
                known = own + sorted({p.name for k in kinds for p in k.params})
                raise AttributionError(f"{where}: unknown option {name!r}; known: {', '.join(known)}")
            try:
                out.update(owner.parse_params({name: value}))
            except AttributionError as exc:
                raise AttributionError(f"{where}.{name}: {exc}") from None
        return out


@register_method
class FeatureAttributor(Attributor):
    """AbC: encode -> index search -> calibrated influence. The encoder is a backbone + synth head by default
    (``features.encoder``); another registered encoder (the distilled student) makes another method of the family.

    ``load`` builds the backbone and heads; ``prepare`` opens the store (converting a released one once) and loads
    or builds its index, with progress and cancel; the first query prepares when nobody did.
    """

    method = "feature"
    score_kind = "cosine"
    description = "feature similarity in a (tuned) attribution space, calibrated into influence (AbC)"
    capabilities = Capabilities(interactive=True, needs_prompt=False, uses_prompt=False, batchable=True)
    Options = FeatureOptions

    def __init__(
        self,
        spec: SpaceSpec,
        encoder: Encoder,
        calibrator: Calibrator,
        index_kind: str = "flat",
        index_params: dict | None = None,
        device: str = DEFAULT_DEVICE,
        progress: bool = True,
    ):
        self.spec = spec
        self.name = spec.name
        self.encoder = encoder
        self.calibrator = calibrator
        self.index_kind = index_kind
        self.index_params = dict(index_params or {})
        self.device = device
        self.progress = progress
        self._store: FeatureStore | None = None
        self._index: AttributionIndex | None = None
        self._mapped: np.ndarray | None = None

    @property
    def store(self) -> FeatureStore:
        """The space's feature store (opened by :meth:`prepare`)."""
        self.prepare()
        return self._store

    @property
    def index(self) -> AttributionIndex:
        """The space's index (loaded, or built, by :meth:`prepare`)."""
        self.prepare()
        return self._index

    def prepare(self, on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> None:
        """Open the store and load its index, building (or rebuilding a stale) one with progress and cancel."""
        if self._index is not None:
            return
        tracker = Tracker(self.progress, on_progress, cancel)
        for _ in Tracker(False, on_progress, cancel).track([None], "open the feature store"):
            store = open_space_store(self.spec)  # a released .pth is converted once, here
            store.check_backbone(*self.encoder.store_identity())
        cached = self.spec.mapper is not None and self.spec.mapper != _registered_mapper(self.spec.name)  # ad hoc
        self._index, _ = load_index(
            store,
            self.encoder.store_heads,
            self.index_kind,
            progress=tracker,
            device=self.device,
            cached=cached,
            params=self.index_params or None,
        )
        self._store = store

    @property
    def prepared(self) -> bool:
        return self._index is not None

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
        device: str = DEFAULT_DEVICE,
        progress: bool = True,
        index_kind: str | None = None,
        index_params: dict | None = None,
        allow_download: bool = False,
        **_: Any,
    ) -> FeatureAttributor:
        """The backbone, heads and calibrator of ``spec`` (the store and index are opened by :meth:`prepare`).

        Args:
            index_kind: the index kind; default the space's ``options.index``, else ``flat``.
            index_params: the kind's query-time knobs (``nprobe``, ``efSearch``, ``rerank``, …; see
                ``load_index``), over those the space's options declare.
        """
        index_kind, index_params = cls.index_choice(spec, index_kind, index_params)
        backbone = create_backbone(spec.backbone, spec.backbone_weights, device, allow_download)
        heads = load_heads(spec.mapper, backbone.dim) if spec.mapper is not None else identity_heads(backbone.dim)
        encoder = BackboneEncoder(backbone, heads)
        return cls(spec, encoder, space_calibrator(spec), index_kind, index_params, device, progress)

    @classmethod
    def index_choice(cls, spec: SpaceSpec, index_kind: str | None, index_params: dict | None) -> tuple[str, dict]:
        """The index kind (asked for, else the space's ``options.index``) and its parameters (the space's that
        this kind takes, under those asked for); an unknown kind is a one-line error naming the space."""
        options = cls.options_of(spec)
        index_kind = index_kind or options.index
        try:
            kind = get_index_kind(index_kind)
        except AttributionError:
            raise AttributionError(
                f"space {spec.name!r}: index {index_kind!r} is not an index kind; "
                f"choose one of {', '.join(list_index_kinds())}"
            ) from None
        declared = {p.name for p in kind.params}  # the space's index parameters that this kind takes
        from_space = {k: v for k, v in options.index_params.items() if k in declared}
        return index_kind, {**from_space, **(index_params or {})}

    def training_paths(self) -> list[Path]:
        root = self.store.meta.image_root
        return [Path(root) / p if root else Path(p) for p in self.store.paths]

    def distractor_rows(self) -> np.ndarray | None:
        """The store's rows that are also in the space's ``corpus_store`` (its distractor corpus), matched by file;
        None when the space names no separate corpus."""
        if self.spec.corpus_store is None or self.spec.corpus_store == self.spec.store:
            return None
        corpus = open_space_store(self.spec, corpus=True)
        inside = {str(corpus.image_path(i).resolve()) for i in range(len(corpus))}
        rows = np.array([i for i, p in enumerate(self.training_paths()) if str(p.resolve()) in inside], dtype=np.int64)
        if len(rows) != len(inside):  # a corpus image the store lacks would silently leave the distractors
            raise AttributionError(
                f"space {self.name!r}: {len(inside) - len(rows)} of {len(inside)} images of its corpus store "
                f"{display_path(self.spec.corpus_store)} are not in its store {display_path(self.spec.store)}; the "
                "distractor corpus must be part of the training set (rebuild it from the store's rows)"
            )
        return rows

    def warm(self, samples: Sequence[Sample], root: Path, name: str) -> None:
        self.encoder.warm(samples, root, name, progress=self.progress)

    def mapped_store(self) -> np.ndarray:
        """The store's rows in the attribution space (through the encoder's ``store_heads``), unit-norm float32
        [N, d]; computed once per loaded space (the index is not needed for it)."""
        if self._mapped is None:
            store = open_space_store(self.spec)
            store.check_backbone(*self.encoder.store_identity())
            self._mapped = mapped_features(store, self.encoder.store_heads, progress=self.progress)
        return self._mapped

    def candidate_scores(self, queries, candidates, progress=False, cancel=None) -> np.ndarray:
        """Cosines in the attribution space [nq, n_rows + n_extra]: the store's chosen rows, then the extra images
        through the training side of the encoder (their captions reach encoders that read them)."""
        xq = self.encoder.encode_files(queries, "query")
        check_cancelled(cancel)
        xb = self.mapped_store()
        rows = np.asarray(candidates.rows, dtype=np.int64)
        q = torch.from_numpy(np.ascontiguousarray(xq, dtype=np.float32))
        out = np.empty((len(queries), len(candidates)), dtype=np.float32)
        chunk = 131072
        for c0 in range(0, len(rows), chunk):
            block = torch.from_numpy(np.ascontiguousarray(xb[rows[c0 : c0 + chunk]], dtype=np.float32))
            out[:, c0 : c0 + len(block)] = (q @ block.T).numpy()
        if candidates.extra:
            out[:, len(rows) :] = xq @ self.encoder.encode_files(candidates.extra, "training").T
        return out

    def __len__(self) -> int:
        return len(self.store)

    def training_record(self, row: int) -> TrainingRecord:
        return TrainingRecord(self.store.image_path(row), self.store.caption(row), self.store.url(row))

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        if not 0 <= row < len(self.store):
            raise IndexError(row)
        root = self.store.meta.image_root
        return self.store.image_path(row), Path(root) if root else None

    def embed(self, queries: Sequence[Query]) -> np.ndarray:
        """Queries -> unit-norm float32 features [nq, d] through the space's encoder."""
        return self.encoder.encode(queries)

    def whole_set_scores(self, queries, on_progress=None, cancel=None) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Cosine of every store image in the attribution space [nq, N] (one pass for the batch on exact kinds)."""
        t0 = time.perf_counter()
        xq = self.embed(queries)
        embed_ms = elapsed_ms(t0, len(queries))
        check_cancelled(cancel)
        t0 = time.perf_counter()
        scores = self.index.all_scores_many(xq)
        return scores, [{"embed": embed_ms, "search": elapsed_ms(t0, len(queries))}] * len(queries)

    def influence(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated soft assignment over the whole store (docs/method.md §3)."""
        return soft_influence(scores, self.calibrator)

    def rank(self, queries, ks, on_progress=None, cancel=None) -> list[Ranking]:
        """Embed the batch, then the index's top-k with exact calibrated influence over the whole store (the batch
        in one matrix-matrix product on exact kinds)."""
        t0 = time.perf_counter()
        xq = self.embed(queries)
        embed_ms = elapsed_ms(t0, len(queries))
        check_cancelled(cancel)
        t0 = time.perf_counter()
        found_all = self.index.search_many(xq, list(ks), self.calibrator)
        timings = {"embed": embed_ms, "search": elapsed_ms(t0, len(queries))}
        return [
            Ranking(f.I, f.D, f.influence, f.remaining_influence, f.mass_count, dict(timings), self.calibrator)
            for f in found_all
        ]


def _registered_mapper(name: str) -> Path | None:
    """The heads the registered space ``name`` declares (None for identity or an unregistered name)."""
    return next((s.mapper for s in all_spaces() if s.name == name), None)
