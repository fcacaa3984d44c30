"""The method-neutral answer: attributed training images with their scores and influence, and its CSV/JSON forms
(the CLI's ``--csv``/``--json``, the explorer's downloads, the service's answers)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.paths import display_path

if TYPE_CHECKING:
    from .calibration import Calibrator

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

    @property
    def shown_path(self) -> str:
        """``path`` as the CLI prints it: relative to the project when it lies inside it, else as stored."""
        return display_path(self.path)


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


def with_paths(result: AttributionResult, show: Callable[[Attribution], str]) -> AttributionResult:
    """A copy of ``result`` whose listed paths are ``show(attribution)`` (how a door names files to its users)."""
    return dataclasses.replace(result, results=[dataclasses.replace(a, path=show(a)) for a in result.results])
