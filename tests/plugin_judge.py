"""A third-party judge, as a plug-in would ship it: registered from outside the library's code.

Self-retrieval: query a space with some of its own training images and count how often the image itself comes
first. A method that cannot find an exact copy of a training image is broken before any subtler judge is asked.
Loaded through ``ATTRIBUTION_PLUGINS=tests.plugin_judge`` in the tests, exactly as a user's own module would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attribution_core.attribute.judge import Judge, JudgeReport
from attribution_core.core.config import option
from attribution_core.registry import create_attributor, register_judge


@dataclass(frozen=True)
class SelfRetrievalOptions:
    spaces: tuple[str, ...] = option(("demo_pixel",), "spaces to judge")
    queries: int = option(5, "training images used as queries (the first ones)")


@register_judge
class SelfRetrievalJudge(Judge):
    name = "self-retrieval"
    description = "how often a training image, asked about, is its own top-1 (a test plug-in)"
    Options = SelfRetrievalOptions

    def run(self, options: SelfRetrievalOptions, out: Path, progress: bool = True) -> JudgeReport:
        rows = []
        for space in options.spaces:
            attributor = create_attributor(space, device="cpu", progress=False)
            n = min(options.queries, len(attributor))
            files = [attributor.training_record(r).path for r in range(n)]
            results = attributor.attribute(files, k=1)
            hits = sum(res.results[0].row == r for r, res in enumerate(results))
            rows.append({"space": space, "queries": n, "self_top1": hits / n})
        notes = [f"{r['space']}: {'finds' if r['self_top1'] == 1 else 'misses'} its own images" for r in rows]
        return JudgeReport(self.name, rows, {"spaces": list(options.spaces), "queries": options.queries}, notes=notes)
