"""Leave-K-out and the linear datamodeling score as registered judges (``attribute judge leave-k-out|lds``; their own
doors, ``attribute counterfactual`` and ``attribute lds``, run the same code): the testbed is the registered one the
options name, and the report is the one shape (``judges.report``) beside the checks' own plots."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from ...attribute.judge import Judge, JudgeReport
from ...registry import create_testbed, register_judge
from .config import CounterfactualConfig, LdsConfig

#: Where a judge run keeps the check's own files (resumable state, its table and plots) under the report folder.
RUN_FOLDER = "run"


@register_judge
class LeaveKOutJudge(Judge):
    name = "leave-k-out"
    description = "retrain without each method's top-K for a query and measure how much worse the model gets at it"
    Options = CounterfactualConfig

    def run(self, options: CounterfactualConfig, out: Path, progress: bool = True) -> JudgeReport:
        from .report import summarise, write_report
        from .run import run_counterfactual

        testbed = create_testbed(options.testbed)
        work = out / RUN_FOLDER  # the check's own files (its config, rows, plot), beside the judge's report
        rows = run_counterfactual(options, testbed, work, progress)
        markdown = write_report(rows, work)
        return JudgeReport(self.name, summarise(rows), dataclasses.asdict(testbed.resolve(options)), markdown)


@register_judge
class LdsJudge(Judge):
    name = "lds"
    description = "the linear datamodeling score: every method's scores against the losses of subset retrains"
    Options = LdsConfig

    def run(self, options: LdsConfig, out: Path, progress: bool = True) -> JudgeReport:
        from .lds_report import report_lds
        from .lds_run import run_lds

        testbed = create_testbed(options.testbed)
        work = out / RUN_FOLDER
        data = run_lds(options, testbed, work, progress)
        markdown = report_lds(data, testbed.resolve(options), work)
        folder = work / "validation" if options.track == "validation" else work
        with (folder / "table.csv").open() as f:
            rows = [
                {k: (float(v) if k in ("mean", "low", "high", "p_holm") and v else v) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
        return JudgeReport(self.name, rows, dataclasses.asdict(testbed.resolve(options)), markdown)
