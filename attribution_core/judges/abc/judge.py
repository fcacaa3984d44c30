"""The AbC benchmark as a registered judge (``attribute judge abc``; ``attribute evaluate`` is its own door with
more flags): every space on every test case, Recall@K and mAP per prompt type, in the one report shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...attribute.judge import Judge, JudgeReport
from ...core.config import option
from ...core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ...core.paths import project_file, project_root
from ...data.testcase import first_per_type, read_test_case
from ...registry import get_space, register_judge
from ..metrics import DEFAULT_KS
from .run import run_evaluation


@dataclass(frozen=True)
class AbcOptions:
    """Options of ``attribute judge abc``."""

    test_cases: tuple[str, ...] = option(("dataset/json/test_demo.json",), "AbC test-case files")
    spaces: tuple[str, ...] = option(("demo_efficientnet_lite0", "demo_pixel"), "spaces to evaluate")
    root: str = option("", "folder the test cases' paths are relative to (default: the project root)")
    ks: tuple[int, ...] = option(DEFAULT_KS, "recall cut-offs", minimum=1)
    max_per_type: int = option(0, "synthesized images per model and prompt type (0: all)", minimum=0)
    influence: bool = option(False, "also report <type>-influence: calibrated influence on the true exemplars")
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)


@register_judge
class AbcJudge(Judge):
    name = "abc"
    description = "the AbC benchmark: Recall@K and mAP of each space's ranks of the true exemplars"
    Options = AbcOptions

    def run(self, options: AbcOptions, out: Path, progress: bool = True) -> JudgeReport:
        root = Path(options.root).resolve() if options.root else project_root()
        test_cases = [read_test_case(project_file(p)) for p in options.test_cases]
        if options.max_per_type > 0:
            test_cases = [first_per_type(tc, options.max_per_type) for tc in test_cases]
        specs = [get_space(s) for s in options.spaces]
        pairs = run_evaluation(
            test_cases, specs, root, ks=options.ks, influence=options.influence, device=options.device,
            progress=progress,
        )  # fmt: skip
        columns = list(dict.fromkeys(c for _, r in pairs for c in r.metrics))
        rows: list[dict[str, Any]] = [
            {"test_case": tc.name, "space": r.space, **{c: r.metrics.get(c, float("nan")) for c in columns}}
            for tc, r in pairs
        ]
        return JudgeReport(self.name, rows, {**options.__dict__})
