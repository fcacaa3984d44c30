"""The Attributor interface every attribution method implements, and the one template that turns a method's scores
into results.

An attribution method is one :class:`Attributor` subclass registered by name (``registry.register_method``). It is
created for a registered space (``registry.create_attributor("demo_efficientnet_lite0")``): ``load`` is cheap,
``prepare`` does the per-model precomputation (caches, index builds) with progress and cancel, then ``attribute``
answers queries: the top-``k`` training images with a score whose meaning the method declares (``score_kind``: a
cosine for feature spaces, a loss change for unlearning) and each one's influence, a share of the whole training set.

``attribute`` is written once, here (in the shape of dattri's ``cache`` + ``attribute``): names, k checks (one k or
one per query), loading the images and their prompts, ranking, influence and the result. A method provides either

- whole-set scores (:meth:`Attributor.whole_set_scores`, one score per training image) and an influence rule
  (:meth:`Attributor.influence`: a calibrator, or a share of a loss rise), or
- its own :meth:`Attributor.rank` (candidates with an exact normaliser, as the feature method's index search),

and :meth:`Attributor.training_record` (the file, caption and URL of a training row). The front doors (service,
explorer, counterfactual harness) read only what is on this interface: its :class:`Capabilities`, ``attribute``,
``scores`` and ``training_image``.

(A little over 350 lines: the interface, its template and the checks of what a query asks for — k, prompt —
are one contract, kept in one place so that every method and door applies them the same way.)
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from ..core.config import parse_options
from ..core.errors import AttributionError
from ..core.images import QUERY_MAX_SIDE, check_shape, load_rgb
from ..core.progress import CancelFlag, ProgressCallback, check_cancelled
from ..diffusion.generation import prompt_of
from .inputs import MAX_PROMPT_CHARS, QueryImage, check_k, check_ks, check_prompt, query_names
from .results import (
    CSV_FIELDS,
    SCORE_KINDS,
    Attribution,
    AttributionResult,
    results_to_csv,
    results_to_jsonl,
)

if TYPE_CHECKING:
    from .calibration import Calibrator
    from .spaces import SpaceSpec

__all__ = [
    "CSV_FIELDS",
    "MAX_PROMPT_CHARS",
    "SCORE_KINDS",
    "Attribution",
    "AttributionResult",
    "Attributor",
    "Candidates",
    "Capabilities",
    "Query",
    "QueryImage",
    "Ranking",
    "Sample",
    "TrainingRecord",
    "check_k",
    "check_ks",
    "check_prompt",
    "query_names",
    "ranking_from_scores",
    "results_to_csv",
    "results_to_jsonl",
]


@dataclass(frozen=True)
class Capabilities:
    """What a method can do, as the front doors read it (never its class)."""

    interactive: bool = True  # answers within about a second: asked inline, not run as a job with progress
    needs_prompt: bool = False  # a query cannot be answered without the prompt the image was generated from
    uses_prompt: bool = False  # reads the prompt when there is one (from the request or the PNG's metadata)
    batchable: bool = True  # a batch of queries costs less than one by one: the service micro-batches requests


@dataclass(frozen=True)
class Sample:
    """An image file and its text: a query and the prompt it was generated from, or a training-side image and the
    caption it was learnt under (None: none known)."""

    path: Path
    text: str | None = None


@dataclass(frozen=True)
class Candidates:
    """A candidate set a judge asks any method to score (dattri's ``attribute(train, test)``): some of the method's
    own training rows, then images it has never seen, optionally under a variant of its model.

    ``variant``: a model variant the scores are taken under (an AbC customised model's folder, a subset retrain);
    methods that do not read a model ignore it. ``generated_by_variant``: the queries came from that variant, so a
    method that reads the model cannot answer without it (a one-line error names ``where``).
    """

    rows: np.ndarray  # [n_rows] indices into the method's training set
    extra: tuple[Sample, ...] = ()  # [n_extra] further images, each with its caption
    variant: Path | None = None
    generated_by_variant: bool = False
    where: str = ""  # how to name the candidate set in an error (e.g. "test_demo.json, model 3")

    def __len__(self) -> int:
        return len(self.rows) + len(self.extra)


@dataclass(frozen=True)
class Query:
    """One query as a method sees it: its name, the loaded image and the prompt (when the method reads one)."""

    name: str
    image: Image.Image
    prompt: str | None = None


@dataclass
class Ranking:
    """A method's answer for one query, before it is turned into a result."""

    rows: np.ndarray  # [k] training rows, best first
    scores: np.ndarray  # [k] the method's raw scores
    influence: np.ndarray  # [k] each listed image's share of the whole training set
    remaining_influence: float  # the share outside ``rows``
    mass_count: int  # training images that carry any influence
    timings_ms: dict[str, float] = field(default_factory=dict)
    calibrator: Calibrator | None = None  # how scores became influence, when by a calibrator
    extras: dict[str, Any] = field(default_factory=dict)  # method-specific facts (settings, prompt, …)


@dataclass(frozen=True)
class TrainingRecord:
    """What a result lists of one training image."""

    path: Path  # its file
    caption: str | None = None
    url: str | None = None


class Attributor(ABC):
    """Anything that answers: which training images influenced this generated image, and how much.

    Subclasses set ``method`` (the registry name), ``score_kind``, ``description`` and ``capabilities``, and
    implement :meth:`load`, :meth:`training_record`, ``__len__`` and either :meth:`whole_set_scores` +
    :meth:`influence` or :meth:`rank`; :meth:`prepare`, :meth:`missing` and :meth:`candidate_scores` (for the
    judges) are optional.
    """

    method: ClassVar[str] = ""
    score_kind: ClassVar[str] = "cosine"
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the typed settings a space of this method names in ``options`` (a dataclass of ``config.option`` fields;
    #: None: the method reads ``spec.options`` as a plain dict, unchecked)
    Options: ClassVar[type | None] = None
    name: str  # the space it answers for

    @classmethod
    def options_of(cls, spec: SpaceSpec) -> Any:
        """The space's ``options`` parsed and checked through ``Options`` (a one-line error names the space)."""
        if cls.Options is None:
            return spec.options
        return parse_options(cls.Options, spec.options, None, f"space {spec.name!r}: options")

    @property
    def needs_prompt(self) -> bool:
        return self.capabilities.needs_prompt

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        """What the space still lacks on this machine (files, weights); empty when ready."""
        return ()

    @classmethod
    @abstractmethod
    def load(cls, spec: SpaceSpec, *, device: str = "auto", progress: bool = True, **options: Any) -> Attributor:
        """Load everything the space needs (unknown ``options`` are ignored)."""

    def prepare(self, on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> None:  # noqa: B027
        """Per-model precomputation (caches, index builds) done once before the first query, with progress and
        cancel; a no-op by default. A query prepares first when nobody did."""

    @property
    def prepared(self) -> bool:
        """Whether :meth:`prepare` has nothing left to do (a door shows progress for a first query otherwise)."""
        return True

    # --- what a method provides --------------------------------------------------------------------------------

    @abstractmethod
    def __len__(self) -> int:
        """Training images attributed over."""

    @abstractmethod
    def training_record(self, row: int) -> TrainingRecord:
        """File, caption and URL of training image ``row`` (0 <= row < len(self))."""

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        """Training image ``row``: its file and the folder it must lie in (None when the method names none).

        Raises:
            IndexError: no such row.
        """
        if not 0 <= row < len(self):
            raise IndexError(row)
        return self.training_record(row).path, None

    def whole_set_scores(
        self, queries: Sequence[Query], on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Every training image's score for each query [nq, N] (higher = more influential), and each query's
        timings (ms)."""
        raise AttributionError(f"method {self.method!r} gives no scores over the whole training set")

    def influence(self, scores: np.ndarray) -> np.ndarray:
        """Each training image's share [N] from its score [N] (the method's influence rule)."""
        raise NotImplementedError

    def calibrated_scores(self, scores: np.ndarray) -> np.ndarray:
        """What the influence rule's calibrator reads of whole-set or candidate ``scores`` [n] (the scores themselves
        by default; unlearning's are loss rises relative to the query's largest): what calibration on ground truth
        fits."""
        return scores

    def training_paths(self) -> list[Path]:
        """Every training image's file [N], absolute where the method knows its folder (judges match rows to
        their own lists by file)."""
        return [Path(self.training_record(r).path) for r in range(len(self))]

    def distractor_rows(self) -> np.ndarray | None:
        """The training rows a benchmark may use as distractors [n], or None for all of them. A space whose
        training set also holds benchmark exemplars (the demo's store: corpus + every split's exemplars) names its
        distractor corpus, so that no split's exemplars ever compete with a test case's own (AbC protocol)."""
        return None

    def warm(self, samples: Sequence[Sample], root: Path, name: str) -> None:  # noqa: B027
        """Files a judge is about to ask about, all under ``root`` (``name``: the set's name, e.g. a test case's): a
        method may embed them once and cache them. A no-op by default."""

    def candidate_scores(
        self,
        queries: Sequence[Sample],
        candidates: Candidates,
        progress: bool = False,
        cancel: CancelFlag | None = None,
    ) -> np.ndarray:
        """Each query's score of each candidate [nq, len(candidates)]: the chosen training rows first, then the extra
        images (what a judge ranks; higher = more influential). Queries are files with their prompts.

        Raises:
            AttributionError: the method cannot score a candidate set.
        """
        raise AttributionError(f"space {self.name!r}: method {self.method!r} cannot score a candidate set")

    def extras(self, query: Query) -> dict[str, Any]:
        """Method-specific facts recorded with a query's result."""
        return {}

    def rank(
        self,
        queries: Sequence[Query],
        ks: Sequence[int],
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[Ranking]:
        """The top-``ks[i]`` of each query; by default from whole-set scores and the influence rule."""
        scores, timings = self.whole_set_scores(queries, on_progress, cancel)
        return [
            ranking_from_scores(s, k, self.influence(s), t, self.extras(q))
            for s, k, t, q in zip(scores, ks, timings, queries, strict=True)
        ]

    # --- the template ------------------------------------------------------------------------------------------

    def queries(
        self, images: Sequence[QueryImage], names: Sequence[str] | None, prompts: Sequence[str | None] | None
    ) -> list[Query]:
        """Loaded query images with their names and (for methods that read them) prompts: given, else from the PNG's
        metadata. A method that needs a prompt and finds none is a one-line error naming the query."""
        names = query_names(images, names)
        prompts = list(prompts) if prompts is not None else [None] * len(images)
        if len(prompts) != len(images):
            raise AttributionError(f"{len(prompts)} prompts for {len(images)} query images")
        reads_prompt = self.capabilities.needs_prompt or self.capabilities.uses_prompt
        out = []
        for image, name, prompt in zip(images, names, prompts, strict=True):
            prompt = check_prompt((prompt or prompt_of(image)) if reads_prompt else None, name)
            if self.capabilities.needs_prompt and not prompt:
                raise AttributionError(
                    f"{name}: attribution by {self.method} needs the prompt the image was generated from; pass "
                    "--prompt TEXT (images made by `attribute diffusion sample` carry it in their metadata)"
                )
            if isinstance(image, Image.Image):  # handed in opened: the same shape rule as a file
                loaded = check_shape(image, name)
            else:
                loaded = load_rgb(image, max_side=QUERY_MAX_SIDE)
            out.append(Query(name, loaded, prompt))
        return out

    def attribute(
        self,
        images: Sequence[QueryImage],
        k: int | Sequence[int] = 100,
        names: Sequence[str] | None = None,
        *,
        prompts: Sequence[str | None] | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[AttributionResult]:
        """Attribute each query image to the training set: top-``k`` images and their influence.

        Args:
            images: generated images (PIL images or files).
            k: how many training images to list (>= 1): one for every query, or one per query.
            names: how to name each query in the results (default: its path, or "image i").
            prompts: each query's text prompt, for methods that read one (``capabilities``).
        """
        ks = check_ks(k, len(images))
        queries = self.queries(images, names, prompts)  # bad input is reported before any expensive work
        check_cancelled(cancel)
        self.prepare(on_progress, cancel)  # a no-op once prepared
        rankings = self.rank(queries, [min(x, len(self)) for x in ks], on_progress, cancel)
        return [self.result(q, r) for q, r in zip(queries, rankings, strict=True)]

    def scores(
        self,
        images: Sequence[QueryImage],
        prompts: Sequence[str | None] | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
    ) -> np.ndarray:
        """Every training image's score for each query image [nq, N] (what a counterfactual judge compares)."""
        queries = self.queries(images, None, prompts)
        check_cancelled(cancel)
        return self.whole_set_scores(queries, on_progress, cancel)[0]

    def result(self, query: Query, ranking: Ranking) -> AttributionResult:
        """A ranking as the method-neutral result."""
        listed = []
        for r, (row, score, share) in enumerate(zip(ranking.rows, ranking.scores, ranking.influence, strict=True)):
            record = self.training_record(int(row))
            listed.append(
                Attribution(r + 1, str(record.path), float(score), float(share), int(row), record.caption, record.url)
            )
        return AttributionResult(
            query.name,
            self.name,
            listed,
            ranking.remaining_influence,
            ranking.calibrator,
            ranking.timings_ms,
            ranking.mass_count,
            method=self.method,
            score_kind=self.score_kind,
            extras=ranking.extras,
        )


def ranking_from_scores(
    scores: np.ndarray,
    k: int,
    influence: np.ndarray,
    timings_ms: dict[str, float] | None = None,
    extras: dict[str, Any] | None = None,
) -> Ranking:
    """The top-``k`` of whole-set ``scores`` [N] (ties: the lower row first) with their ``influence`` [N]."""
    order = np.argsort(-scores, kind="stable")[:k]
    return Ranking(
        order,
        scores[order],
        influence[order],
        float(max(0.0, 1.0 - influence[order].sum())),
        int(np.count_nonzero(influence > 0)),
        dict(timings_ms or {}),
        extras=dict(extras or {}),
    )


def elapsed_ms(t0: float, n: int = 1) -> float:
    """Milliseconds since ``t0`` (``time.perf_counter``), per query of ``n``."""
    return (time.perf_counter() - t0) * 1000 / max(1, n)
