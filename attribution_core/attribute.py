"""The Attributor interface every attribution method implements, and the method-neutral result.

An attribution method is one :class:`Attributor` subclass registered by name (``registry.register_method``).
It is created for a registered space (``registry.create_attributor("demo_efficientnet_lite0")``), may
precompute per-model caches once (``prepare``), then answers queries (``attribute``): the top-``k`` training
images with a score whose meaning the method declares (``score_kind``: a cosine for feature spaces, a loss
change for unlearning) and each one's influence, a share of the whole training set.
"""

from __future__ import annotations

import csv
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from .errors import AttributionError
from .progress import CancelFlag, ProgressCallback

if TYPE_CHECKING:
    from .calibration import Calibrator
    from .evaluate.metrics import SpaceResult
    from .evaluate.testcase import TestCase
    from .spaces import SpaceSpec

#: What a result's ``score`` means, per declared ``score_kind``.
SCORE_KINDS = {
    "cosine": "cosine similarity in the attribution space (higher = more similar)",
    "delta_loss": "rise of the training image's diffusion loss after unlearning the query (higher = more influential)",
}


@dataclass(frozen=True)
class Attribution:
    """One attributed training image."""

    rank: int  # 1-based
    path: str  # the training image's file (image_root / stored path)
    score: float  # the method's raw score (meaning: the result's ``score_kind``)
    influence: float  # share of the whole training set
    row: int  # row in the training set's store
    caption: str | None = None  # the training image's caption, when the store has one
    url: str | None = None  # where the training image came from, when the store has it


@dataclass
class AttributionResult:
    """The answer for one query image by one space (a method over a training set)."""

    query: str
    space: str
    results: list[Attribution]
    remaining_influence: float  # the mass outside ``results``; influences + remaining == 1
    calibrator: Calibrator | None = None  # how scores became influence (feature spaces), if by a calibrator
    timings_ms: dict[str, float] = field(default_factory=dict)  # e.g. embed / search, or unlearn / score
    mass_count: int = 0  # training images that carry any influence
    method: str = "feature"  # the registered method that produced it
    score_kind: str = "cosine"  # what ``score`` means (a key of SCORE_KINDS, or the method's own)
    extras: dict[str, Any] = field(default_factory=dict)  # method-specific facts (settings, prompt, …)
    influence_from: str | None = None  # describe()'s text, for a result read back from JSON

    def describe(self) -> str:
        """One line on how the influence was computed (shown beside the results)."""
        if self.influence_from is not None:
            return self.influence_from
        if self.calibrator is not None:
            return f"calibrator: {self.calibrator.describe()}"
        return f"{self.method}; score = {self.score_kind}"

    def to_dict(self) -> dict:
        """The CLI's ``--json`` object (fields are only ever added, never removed)."""
        return {
            "query": self.query,
            "space": self.space,
            "method": self.method,
            "score_kind": self.score_kind,
            "results": [
                {
                    "rank": a.rank,
                    "path": a.path,
                    "score": round(a.score, 6),
                    "influence": a.influence,
                    "row": a.row,
                    **({"caption": a.caption} if a.caption is not None else {}),
                    **({"url": a.url} if a.url is not None else {}),
                }
                for a in self.results
            ],
            "remaining_influence": self.remaining_influence,
            "mass_count": self.mass_count,
            "influence_from": self.describe(),
            "timings_ms": self.timings_ms,
            **({"extras": self.extras} if self.extras else {}),
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> AttributionResult:
        """A result read back from :meth:`to_dict`'s JSON (a service's answer); ``describe`` keeps its text."""
        results = [
            Attribution(
                int(a["rank"]),
                str(a["path"]),
                float(a["score"]),
                float(a["influence"]),
                int(a.get("row", -1)),
                a.get("caption"),
                a.get("url"),
            )
            for a in obj["results"]
        ]
        return cls(
            str(obj["query"]),
            str(obj["space"]),
            results,
            float(obj["remaining_influence"]),
            timings_ms=dict(obj.get("timings_ms", {})),
            mass_count=int(obj.get("mass_count", 0)),
            method=str(obj.get("method", "feature")),
            score_kind=str(obj.get("score_kind", "cosine")),
            extras=dict(obj.get("extras", {})),
            influence_from=obj.get("influence_from"),
        )


CSV_FIELDS = (
    "query",
    "space",
    "rank",
    "path",
    "score",
    "influence",
    "remaining_influence",
    "method",
    "score_kind",
    "caption",
    "url",
)


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
                    r.method,
                    r.score_kind,
                    a.caption or "",
                    a.url or "",
                ]
            )
    return buf.getvalue()


def results_to_jsonl(results: Sequence[AttributionResult]) -> str:
    """One JSON object per query and space (the CLI's ``--json`` and the app's download)."""
    return "".join(json.dumps(r.to_dict()) + "\n" for r in results)


QueryImage = Image.Image | Path | str


class Attributor(ABC):
    """Anything that answers: which training images influenced this generated image, and how much.

    Subclasses set ``method`` (the registry name), ``score_kind`` and ``needs_prompt``, and implement
    :meth:`load` and :meth:`attribute`; :meth:`prepare`, :meth:`missing` and :meth:`evaluate` are optional.
    """

    method: ClassVar[str] = ""
    score_kind: ClassVar[str] = "cosine"
    needs_prompt: ClassVar[bool] = False  # True when a query needs its text prompt (unlearning)
    description: ClassVar[str] = ""
    name: str  # the space it answers for

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        """What the space still lacks on this machine (files, weights); empty when ready."""
        return ()

    @classmethod
    @abstractmethod
    def load(cls, spec: SpaceSpec, *, device: str = "auto", progress: bool = True, **options: Any) -> Attributor:
        """Load everything the space needs (unknown ``options`` are ignored)."""

    @classmethod
    def evaluate(cls, spec: SpaceSpec, test_cases: Sequence[TestCase], root: Path, **options: Any) -> list[SpaceResult]:
        """The AbC protocol on ``test_cases`` (one result per test case, same order)."""
        raise AttributionError(f"space {spec.name!r}: method {cls.method!r} cannot be evaluated on AbC test cases")

    def prepare(self, on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> None:  # noqa: B027
        """Per-model precomputation (caches) done once before the first query; a no-op by default."""

    def training_image(self, row: int) -> tuple[Path, Path | None]:
        """Training image ``row``: its file and the folder it must lie in (None when the store names none).

        Raises:
            IndexError: no such row.
        """
        raise IndexError(row)

    @abstractmethod
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
        """Attribute each query image to the training set: top-``k`` images and their influence.

        Args:
            images: generated images (PIL images or files).
            k: how many training images to list per query (>= 1).
            names: how to name each query in the results (default: its path, or "image i").
            prompts: each query's text prompt, for methods that need it (``needs_prompt``).
        """


def query_names(images: Sequence[QueryImage], names: Sequence[str] | None) -> list[str]:
    """``names``, or each image's path, or "image i"."""
    if names is not None:
        return list(names)
    return [str(im) if not isinstance(im, Image.Image) else f"image {i}" for i, im in enumerate(images)]


def check_k(k: int) -> int:
    """``k`` as an int >= 1, or a one-line error."""
    if int(k) < 1:
        raise AttributionError(f"--top-k must be at least 1 (got {k})")
    return int(k)
